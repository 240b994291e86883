package dev.weft.parallel.pipeline;

import java.util.ArrayList;
import java.util.List;

/**
 * The pipeline schedules weft knows, built as {@link Schedule} data. Each builder lays out the
 * computations of every rank in order and then adds the transfers: a receive right before the
 * computation that needs it, a send right after the one that produced it. Sends are posted
 * asynchronously (buffered), so the computation order alone decides whether a schedule can stall;
 * {@link ScheduleValidator} proves each one cannot.
 *
 * <p>p is the number of pipeline ranks ({@code parallel.pp}) and m the number of micro-batches per
 * step ({@code train.grad_accum}).
 */
public final class Schedules {
    /** The names {@link #byName} accepts. */
    public static final List<String> NAMES = List.of("gpipe", "1f1b", "interleaved", "zbh1");

    private Schedules() {}

    /**
     * The schedule called {@code name} ({@code gpipe | 1f1b | interleaved | zbh1}). {@code v} is the
     * number of virtual stages per rank, used by interleaved only; the others take 1.
     */
    public static Schedule byName(String name, int p, int m, int v) {
        String key = name == null ? "" : name.trim().toLowerCase(java.util.Locale.ROOT);
        if (!key.equals("interleaved") && v > 1 && NAMES.contains(key))
            throw new IllegalArgumentException("pipeline schedule '" + key + "' runs one stage per rank; " + v
                    + " virtual stages need the 'interleaved' schedule");
        return switch (key) {
            case "gpipe" -> gpipe(p, m);
            case "1f1b" -> oneFOneB(p, m);
            case "interleaved" -> interleaved1F1B(p, m, v);
            case "zbh1" -> zbh1(p, m);
            default -> throw new IllegalArgumentException("unknown pipeline schedule '" + name + "'; valid names: " + String.join(", ", NAMES));
        };
    }

    /**
     * GPipe: every rank runs all m forwards, then all m backwards. Simple and valid for any m, but it
     * holds all m micro-batches' activations at once.
     */
    public static Schedule gpipe(int p, int m) {
        check(p, m);
        List<List<Action>> compute = new ArrayList<>();
        for (int r = 0; r < p; r++) {
            List<Action> order = new ArrayList<>();
            for (int mb = 0; mb < m; mb++) order.add(Action.forward(mb, r));
            for (int mb = 0; mb < m; mb++) order.add(Action.backward(mb, r));
            compute.add(order);
        }
        return withTransfers(p, p, m, "gpipe", compute);
    }

    /**
     * 1F1B (PipeDream-flush): rank r runs p-1-r forwards to fill the pipeline, then alternates one
     * forward and one backward, then drains the remaining backwards. Same bubble as GPipe, but rank r
     * holds at most p-r micro-batches' activations instead of m.
     */
    public static Schedule oneFOneB(int p, int m) {
        check(p, m);
        atLeastOnePerRank("1f1b", p, m);
        List<List<Action>> compute = new ArrayList<>();
        for (int r = 0; r < p; r++) {
            List<Action> order = new ArrayList<>();
            int warmup = p - 1 - r, f = 0, b = 0;
            while (f < warmup) order.add(Action.forward(f++, r));
            while (f < m) {
                order.add(Action.forward(f++, r));
                order.add(Action.backward(b++, r));
            }
            while (b < m) order.add(Action.backward(b++, r));
            compute.add(order);
        }
        return withTransfers(p, p, m, "1f1b", compute);
    }

    /**
     * Interleaved 1F1B (Megatron-LM's virtual pipeline): each rank holds v chunks of the model, stage
     * c·p + r on rank r, so a micro-batch visits every rank v times and the bubble shrinks by v.
     * Micro-batches move through a rank's chunks in groups of p: forward step k of a rank runs chunk
     * (k / p) mod v on micro-batch (k / (p·v))·p + k mod p; backward steps walk the chunks in reverse.
     * Rank r warms up with 2(p-1-r) + (v-1)p forwards, as Megatron does.
     */
    public static Schedule interleaved1F1B(int p, int m, int v) {
        check(p, m);
        if (v < 2) throw new IllegalArgumentException("interleaved needs at least 2 virtual stages per rank, got " + v + "; with one it is 1f1b");
        atLeastOnePerRank("interleaved", p, m);
        if (m % p != 0)
            throw new IllegalArgumentException("interleaved needs train.grad_accum (" + m + " micro-batches) to be a multiple of parallel.pp (" + p
                    + "), as Megatron-LM requires: micro-batches pass through each rank's chunks in groups of pp");
        int total = m * v;
        List<List<Action>> compute = new ArrayList<>();
        for (int r = 0; r < p; r++) {
            List<Action> order = new ArrayList<>();
            int warmup = Math.min(total, 2 * (p - 1 - r) + (v - 1) * p), f = 0, b = 0;
            while (f < warmup) order.add(interleavedStep(true, f++, p, v, r));
            while (f < total) {
                order.add(interleavedStep(true, f++, p, v, r));
                order.add(interleavedStep(false, b++, p, v, r));
            }
            while (b < total) order.add(interleavedStep(false, b++, p, v, r));
            compute.add(order);
        }
        return withTransfers(p, p * v, m, "interleaved", compute);
    }

    private static Action interleavedStep(boolean forward, int k, int p, int v, int rank) {
        int group = k % (p * v);
        int chunk = forward ? group / p : v - 1 - group / p;
        int mb = k / (p * v) * p + k % p;
        int stage = chunk * p + rank;
        return forward ? Action.forward(mb, stage) : Action.backward(mb, stage);
    }

    /**
     * ZB-H1 (Qi et al. 2023, "Zero Bubble Pipeline Parallelism", the memory-efficient handcrafted
     * schedule): backward splits into B (input gradient, which the previous stage waits for) and W
     * (weight gradient, which nobody waits for). Rank r warms up with p-1-r forwards as in 1F1B, then
     * runs r rounds of F + B with W held back, then F + B + W rounds (W of the oldest held micro-batch),
     * then B + W until the backwards are done, and finally the r held W's fill the bubble that 1F1B
     * leaves at the end. Every rank then holds at most p micro-batches in flight (forwarded and not
     * yet weight-updated), 1F1B's peak on its first rank; of those, rank r > 0 holds up to r + 1 for
     * W only, which keeps less than a whole activation. With F = B = W the bubble is a third of
     * 1F1B's. The first rank would hold nothing back and runs each backward whole.
     */
    public static Schedule zbh1(int p, int m) {
        check(p, m);
        atLeastOnePerRank("zbh1", p, m);
        List<List<Action>> compute = new ArrayList<>();
        for (int r = 0; r < p; r++) {
            List<Action> order = new ArrayList<>();
            int f = 0, b = 0, w = 0;
            while (f < p - 1 - r) order.add(Action.forward(f++, r));
            for (int i = 0; i < r && f < m; i++) {
                order.add(Action.forward(f++, r));
                order.add(Action.backwardInput(b++, r));
            }
            while (f < m) {
                order.add(Action.forward(f++, r));
                if (r == 0) {
                    order.add(Action.backward(b++, r));
                    w++;
                } else {
                    order.add(Action.backwardInput(b++, r));
                    order.add(Action.backwardWeight(w++, r));
                }
            }
            while (b < m) {
                if (r == 0) {
                    order.add(Action.backward(b++, r));
                    w++;
                } else {
                    order.add(Action.backwardInput(b++, r));
                    order.add(Action.backwardWeight(w++, r));
                }
            }
            while (w < m) order.add(Action.backwardWeight(w++, r));
            compute.add(order);
        }
        return withTransfers(p, p, m, "zbh1", compute);
    }

    /** Adds each computation's receive before it and its send after it, where its neighbour stage is on another rank. */
    private static Schedule withTransfers(int p, int stages, int m, String name, List<List<Action>> compute) {
        List<List<Action>> perRank = new ArrayList<>(p);
        for (int r = 0; r < p; r++) {
            List<Action> actions = new ArrayList<>();
            for (Action a : compute.get(r)) {
                int s = a.stage(), mb = a.microBatch();
                boolean fromBelow = s > 0 && (s - 1) % p != r, toAbove = s < stages - 1 && (s + 1) % p != r;
                switch (a.kind()) {
                    case FORWARD -> {
                        if (fromBelow) actions.add(new Action(Action.Kind.RECV_ACTIVATION, mb, s - 1));
                        actions.add(a);
                        if (toAbove) actions.add(new Action(Action.Kind.SEND_ACTIVATION, mb, s + 1));
                    }
                    case BACKWARD, BACKWARD_INPUT -> {
                        if (toAbove) actions.add(new Action(Action.Kind.RECV_GRADIENT, mb, s + 1));
                        actions.add(a);
                        if (fromBelow) actions.add(new Action(Action.Kind.SEND_GRADIENT, mb, s - 1));
                    }
                    default -> actions.add(a);
                }
            }
            perRank.add(actions);
        }
        return new Schedule(p, stages, m, name, perRank);
    }

    private static void check(int p, int m) {
        if (p < 1) throw new IllegalArgumentException("parallel.pp must be at least 1, got " + p);
        if (m < 1) throw new IllegalArgumentException("train.grad_accum (micro-batches per step) must be at least 1, got " + m);
    }

    private static void atLeastOnePerRank(String name, int p, int m) {
        if (m < p)
            throw new IllegalArgumentException(name + " needs at least as many micro-batches as pipeline ranks (train.grad_accum >= parallel.pp), got train.grad_accum = "
                    + m + " < parallel.pp = " + p + ": with fewer its steady phase is empty and ranks idle through most of the step."
                    + " Raise train.grad_accum to " + p + " or more, or use gpipe");
    }
}
