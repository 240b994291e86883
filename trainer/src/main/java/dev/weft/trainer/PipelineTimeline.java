package dev.weft.trainer;

import dev.weft.core.MemoryPool;
import dev.weft.parallel.pipeline.Action;
import dev.weft.parallel.pipeline.Schedule;

import java.util.List;
import java.util.Locale;

/**
 * When one rank's pipeline computed: the start and end of every action its schedule gives it (the
 * forwards and backwards, whole or split, and the transfers), against the step's wall span. The
 * computations' share of that span is what the schedule's bubble leaves; the mean time of each kind
 * on each stage is what {@link dev.weft.parallel.pipeline.ScheduleSimulator} needs to predict that
 * bubble, and the transfers' ends, set beside the peers', how long data took to arrive.
 *
 * <p>The arrays are sized once from the schedule, so recording a step allocates nothing. The first
 * {@value #WARMUP_STEPS} steps this process runs are left out of the totals: they run the JIT's cold
 * code and fill the memory pools, and would set the mean apart from the steady state.
 */
final class PipelineTimeline {
    static final int WARMUP_STEPS = 2;
    /** The computations, in the order of their columns in {@link #kindNanos}. */
    private static final List<Action.Kind> KINDS =
            List.of(Action.Kind.FORWARD, Action.Kind.BACKWARD, Action.Kind.BACKWARD_INPUT, Action.Kind.BACKWARD_WEIGHT);
    private static final String[] SYMBOLS = {"F", "B", "I", "W"};

    private final int rank, ranks, virtualStages;
    private final List<Action> actions;
    private final int[] column; // per action of this rank: slot * KINDS + kind for a computation, -1 for a transfer
    private final long[] started, ended;
    private final MemoryPool pool = MemoryPool.host();

    private long stepStart, stepLiveBytes, lastWall, lastBusy, stepPeakHeld;
    private int steps, timedSteps;
    private long wallNanos, busyNanos, peakHeldBytes;
    private final long[] kindNanos, kindCount; // over the timed steps, by column
    private long[] stepBusy = new long[16], stepWall = new long[16]; // per timed step; grown once per step at most, never per action

    PipelineTimeline(Schedule schedule, int rank) {
        this.rank = rank;
        this.ranks = schedule.ranks();
        this.virtualStages = schedule.virtualStages();
        this.actions = schedule.actions(rank);
        this.column = new int[actions.size()];
        for (int i = 0; i < column.length; i++) {
            Action a = actions.get(i);
            int kind = KINDS.indexOf(a.kind());
            column[i] = kind < 0 ? -1 : a.stage() / ranks * KINDS.size() + kind;
        }
        this.started = new long[column.length];
        this.ended = new long[column.length];
        this.kindNanos = new long[virtualStages * KINDS.size()];
        this.kindCount = new long[virtualStages * KINDS.size()];
    }

    void stepStarted() {
        stepLiveBytes = pool.liveBytes();
        stepPeakHeld = 0;
        stepStart = System.nanoTime();
    }

    /** Action {@code index} of this rank's list begins. */
    void started(int index) {
        started[index] = System.nanoTime();
    }

    /**
     * Action {@code index} ends. After a computation the pool's live bytes above the step's start are
     * sampled: the activations the schedule holds in flight, plus what the computation just made.
     */
    void ended(int index) {
        ended[index] = System.nanoTime();
        if (column[index] >= 0) stepPeakHeld = Math.max(stepPeakHeld, pool.liveBytes() - stepLiveBytes);
    }

    /** The step ends: its wall span runs to here (after the closing loss sum, which every rank of the pipeline leaves together). */
    void stepEnded() {
        long end = System.nanoTime();
        lastWall = end - stepStart;
        lastBusy = 0;
        for (int i = 0; i < column.length; i++) if (column[i] >= 0) lastBusy += ended[i] - started[i];
        if (++steps <= WARMUP_STEPS) return;
        if (timedSteps == stepBusy.length) {
            stepBusy = java.util.Arrays.copyOf(stepBusy, 2 * timedSteps);
            stepWall = java.util.Arrays.copyOf(stepWall, 2 * timedSteps);
        }
        stepBusy[timedSteps] = lastBusy;
        stepWall[timedSteps] = lastWall;
        timedSteps++;
        wallNanos += lastWall;
        busyNanos += lastBusy;
        peakHeldBytes = Math.max(peakHeldBytes, stepPeakHeld);
        for (int i = 0; i < column.length; i++) {
            int c = column[i];
            if (c < 0) continue;
            kindNanos[c] += ended[i] - started[i];
            kindCount[c]++;
        }
    }

    /** The share of the last step's wall span this rank spent computing. */
    double lastBusyFraction() {
        return lastWall == 0 ? 0 : (double) lastBusy / lastWall;
    }

    /**
     * One line for the end of the run, which {@code weft bench pipeline} reads:
     * {@code pipeline timeline: rank 1 of 2, 4 timed steps after 2 warm-up, wall 3.248100 s, busy
     * 2.401200 s (bubble 0.2607); stage 1: F 32 x 12.345 ms, B 32 x 23.456 ms; peak held 1234567 B; busy/wall per
     * step 601.2/812.0 ms, ...}. The steps one by one let a reader tell a schedule's bubble from a stall
     * that another process's load put into one step.
     */
    String summary() {
        StringBuilder out = new StringBuilder(String.format(Locale.ROOT,
                "pipeline timeline: rank %d of %d, %d timed steps after %d warm-up, wall %.6f s, busy %.6f s (bubble %.4f)", rank, ranks,
                timedSteps, WARMUP_STEPS, wallNanos / 1e9, busyNanos / 1e9, wallNanos == 0 ? Double.NaN : 1 - (double) busyNanos / wallNanos));
        for (int slot = 0; slot < virtualStages; slot++) {
            out.append("; stage ").append(slot * ranks + rank).append(':');
            boolean first = true;
            for (int k = 0; k < KINDS.size(); k++) {
                int c = slot * KINDS.size() + k;
                if (kindCount[c] == 0) continue;
                out.append(first ? " " : ", ").append(String.format(Locale.ROOT, "%s %d x %.3f ms", SYMBOLS[k], kindCount[c], kindNanos[c] / 1e6 / kindCount[c]));
                first = false;
            }
        }
        out.append("; peak held ").append(peakHeldBytes).append(" B; busy/wall per step");
        for (int i = 0; i < timedSteps; i++) out.append(i == 0 ? " " : ", ").append(String.format(Locale.ROOT, "%.3f/%.3f ms", stepBusy[i] / 1e6, stepWall[i] / 1e6));
        return out.toString();
    }

    /**
     * The last step's actions with their start and end on the monotonic clock, which the ranks of one
     * node share: set beside the sender's, a receive's end tells how long its data took to arrive.
     * {@code pipeline last step (rank 1, ns): recvA0<0 51234 51900, F0@1 51901 73000, ...}.
     */
    String lastStep() {
        StringBuilder out = new StringBuilder("pipeline last step (rank ").append(rank).append(", ns):");
        for (int i = 0; i < actions.size(); i++)
            out.append(i == 0 ? " " : ", ").append(actions.get(i)).append(' ').append(started[i]).append(' ').append(ended[i]);
        return out.toString();
    }
}
