package dev.weft.parallel.pipeline;

import dev.weft.parallel.pipeline.Action.Kind;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.ToDoubleFunction;

/**
 * Replays a schedule against {@link Costs} on an idealised machine: each rank runs its actions in
 * order, a computation takes its cost, a send costs its rank nothing and its data arrives
 * {@code transfer} later, and a receive waits for that arrival. Ranks start together at time 0.
 */
public final class ScheduleSimulator {
    private ScheduleSimulator() {}

    /** What one rank did: compute time, and the most micro-batches (and bytes) it held at once. */
    public record RankFigures(double busy, int peakLiveActivations, int peakHeldForWeights, int peakInFlight, long peakBytes) {}

    /**
     * The outcome of a replay. {@code peakLiveActivations}: micro-batches forwarded whose backward's
     * input half has not run; {@code peakHeldForWeights}: those whose input half ran and weight half has
     * not; {@code peakInFlight}: forwarded and not yet fully backwarded (the two together), the measure
     * by which ZB-H1 matches 1F1B; {@code peakBytes}: the largest priced sum, by {@link Costs}' bytes.
     */
    public record Simulation(String schedule, List<RankFigures> ranks, double makespan) {
        public Simulation {
            ranks = List.copyOf(ranks);
        }

        public double totalBusy() {
            double sum = 0;
            for (RankFigures r : ranks) sum += r.busy;
            return sum;
        }

        /** (rank-time - busy time) / rank-time, rank-time being ranks x makespan. */
        public double bubbleFraction() {
            double total = ranks.size() * makespan;
            return total == 0 ? 0 : (total - totalBusy()) / total;
        }

        public RankFigures rank(int r) {
            return ranks.get(r);
        }
    }

    /** Validates {@code schedule} (see {@link ScheduleValidator}), then replays it. */
    public static Simulation simulate(Schedule schedule, Costs costs) {
        return simulate(schedule, java.util.Collections.nCopies(schedule.stages(), costs));
    }

    /**
     * The same replay with costs per stage ({@code perStage.get(s)} for stage s): measured stages
     * are rarely equal, as the first holds the embedding and the last the head and the loss. A
     * transfer takes its sending stage's latency.
     */
    public static Simulation simulate(Schedule schedule, List<Costs> perStage) {
        if (perStage.size() != schedule.stages())
            throw new IllegalArgumentException(schedule.stages() + " stages need as many costs, got " + perStage.size());
        return replay(schedule, perStage, a -> perStage.get(a.stage()).of(a.kind()));
    }

    /**
     * The replay with each computation's own time ({@code time} of the action: a measured step's,
     * say) in place of a mean per stage, and every transfer taking {@code transfer}; no bytes. Set
     * beside the same step measured, it tells what the order of the actions and their times explain
     * from what the runtime added (waits beyond the transfer, bookkeeping between actions).
     */
    public static Simulation simulate(Schedule schedule, ToDoubleFunction<Action> time, double transfer) {
        return replay(schedule, java.util.Collections.nCopies(schedule.stages(), Costs.of(0, 0, 0, transfer)), time);
    }

    private static Simulation replay(Schedule schedule, List<Costs> perStage, ToDoubleFunction<Action> time) {
        ScheduleValidator.validate(schedule);
        int ranks = schedule.ranks();
        double[] clock = new double[ranks], busy = new double[ranks];
        int[] next = new int[ranks], live = new int[ranks], held = new int[ranks];
        int[] peakLive = new int[ranks], peakHeld = new int[ranks], peakInFlight = new int[ranks];
        long[] bytes = new long[ranks], peakBytes = new long[ranks];
        Map<Action, Double> arrival = new HashMap<>(); // by the receive that will take it
        boolean moved = true;
        while (moved) {
            moved = false;
            for (int r = 0; r < ranks; r++) {
                List<Action> actions = schedule.actions(r);
                while (next[r] < actions.size()) {
                    Action a = actions.get(next[r]);
                    Kind k = a.kind();
                    Costs costs = perStage.get(a.localStage());
                    if (k.isSend()) {
                        arrival.put(a.counterpart(), clock[r] + costs.transfer());
                    } else if (k.isTransfer()) {
                        Double at = arrival.get(a);
                        if (at == null) break; // its send has not been replayed yet
                        clock[r] = Math.max(clock[r], at);
                    } else {
                        double t = time.applyAsDouble(a);
                        if (!(t >= 0) || Double.isInfinite(t)) throw new IllegalArgumentException(a + " takes " + t + ": times must be finite and >= 0");
                        clock[r] += t;
                        busy[r] += t;
                        switch (k) {
                            case FORWARD -> {
                                live[r]++;
                                bytes[r] += costs.bytesPerActivation();
                            }
                            case BACKWARD -> {
                                live[r]--;
                                bytes[r] -= costs.bytesPerActivation();
                            }
                            case BACKWARD_INPUT -> {
                                live[r]--;
                                held[r]++;
                                bytes[r] += costs.bytesHeldForWeights() - costs.bytesPerActivation();
                            }
                            case BACKWARD_WEIGHT -> {
                                held[r]--;
                                bytes[r] -= costs.bytesHeldForWeights();
                            }
                            default -> {}
                        }
                        peakLive[r] = Math.max(peakLive[r], live[r]);
                        peakHeld[r] = Math.max(peakHeld[r], held[r]);
                        peakInFlight[r] = Math.max(peakInFlight[r], live[r] + held[r]);
                        peakBytes[r] = Math.max(peakBytes[r], bytes[r]);
                    }
                    next[r]++;
                    moved = true;
                }
            }
        }
        List<RankFigures> figures = new ArrayList<>(ranks);
        double makespan = 0;
        for (int r = 0; r < ranks; r++) {
            figures.add(new RankFigures(busy[r], peakLive[r], peakHeld[r], peakInFlight[r], peakBytes[r]));
            makespan = Math.max(makespan, clock[r]);
        }
        return new Simulation(schedule.name(), figures, makespan);
    }
}
