package dev.weft.parallel;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;

import java.util.Arrays;

/**
 * Runs every collective on one rank of a group and checks the result against a straightforward
 * reference. Every rank can compute every rank's input (a pure function of rank, index and a
 * salt), so each rank checks its own result locally; the same routine runs on the in-JVM
 * transport and inside the Aeron rank processes. Returns a hash of the bits of every result
 * that is the same on all ranks (all-reduce, all-gather), so callers can check that ranks, reruns
 * and transports agree bit for bit.
 */
final class CollectiveChecks {
    private CollectiveChecks() {}

    /** Rank r's input element i: awkward values (mixed signs and magnitudes) so summation order matters. */
    static float value(int rank, long i, int salt) {
        long h = (rank * 0x9E3779B97F4A7C15L) ^ (i * 0xC2B2AE3D27D4EB4FL) ^ (salt * 0x165667B19E3779F9L);
        h ^= h >>> 29;
        h *= 0xBF58476D1CE4E5B9L;
        h ^= h >>> 32;
        return (float) ((h % 20001) / 997.0) * ((h & 0x100) != 0 ? 1e-3f : 1f);
    }

    static float[] input(int rank, int numel, int salt) {
        float[] a = new float[numel];
        for (int i = 0; i < numel; i++) a[i] = value(rank, i, salt);
        return a;
    }

    static float reduceRef(ReduceOp op, int n, long i, int salt) {
        double acc = op == ReduceOp.MAX ? Double.NEGATIVE_INFINITY : op == ReduceOp.MIN ? Double.POSITIVE_INFINITY : 0;
        for (int r = 0; r < n; r++) {
            double v = value(r, i, salt);
            acc = switch (op) {
                case SUM, AVG -> acc + v;
                case MAX -> Math.max(acc, v);
                case MIN -> Math.min(acc, v);
            };
        }
        return (float) (op == ReduceOp.AVG ? acc / n : acc);
    }

    static long checkAll(ProcessGroup g, int[] sizes) {
        int n = g.size(), r = g.rank();
        long hash = 17;
        try (Scope scope = Scope.open()) {
            int salt = 1;
            for (int numel : sizes) {
                for (ReduceOp op : ReduceOp.values()) {
                    salt++;
                    // synchronous all-reduces take the same-host shared-memory path where there is
                    // one, asynchronous ones the frames. Each is deterministic (the hash, compared
                    // across ranks, covers both), but from 3 ranks the ring sums in another order than
                    // the shared memory's rank order, so the two agree with the reference, not bit for bit.
                    Tensor t = Tensor.of(input(r, numel, salt), numel);
                    g.allReduce(t, op);
                    float[] got = t.toArray();
                    for (int i = 0; i < numel; i++) expectReduced("allReduce " + op + " numel=" + numel, op, got[i], reduceRef(op, n, i, salt), i);
                    Tensor framed = Tensor.of(input(r, numel, salt), numel);
                    g.allReduceAsync(framed, op).await();
                    float[] viaFrames = framed.toArray();
                    for (int i = 0; i < numel; i++) expectReduced("allReduceAsync " + op + " numel=" + numel, op, viaFrames[i], reduceRef(op, n, i, salt), i);
                    hash = mix(mix(hash, got), viaFrames);
                }
                // reduce-scatter and all-gather as well, synchronous and asynchronous (both through
                // shared memory on one host, through frames otherwise)
                for (boolean async : new boolean[]{false, true}) {
                    String how = async ? "Async" : "";
                    for (ReduceOp op : new ReduceOp[]{ReduceOp.SUM, ReduceOp.AVG, ReduceOp.MAX}) {
                        salt++;
                        Tensor in = Tensor.of(input(r, numel * n, salt), numel * n);
                        float[] before = in.toArray();
                        Tensor out = Tensor.zeros(numel);
                        if (async) g.reduceScatterAsync(in, out, op).await();
                        else g.reduceScatter(in, out, op);
                        float[] got = out.toArray();
                        for (int i = 0; i < numel; i++)
                            expectReduced("reduceScatter" + how + " " + op + " numel=" + numel, op, got[i], reduceRef(op, n, (long) r * numel + i, salt), i);
                        check(Arrays.equals(before, in.toArray()), "reduceScatter" + how + " modified its input");
                    }
                    {
                        salt++;
                        Tensor in = Tensor.of(input(r, numel, salt), numel);
                        Tensor out = Tensor.zeros(numel * n);
                        if (async) g.allGatherAsync(in, out).await();
                        else g.allGather(in, out);
                        float[] got = out.toArray();
                        for (int q = 0; q < n; q++)
                            for (int i = 0; i < numel; i++) expectExact("allGather" + how + " numel=" + numel, got[q * numel + i], value(q, i, salt), q * numel + i);
                        hash = mix(hash, got);
                    }
                }
                if (numel > 0) {
                    // in place: the output is this rank's own block of the input (reduce-scatter) or
                    // the input is this rank's own block of the output (all-gather), as ZeRO uses them
                    salt++;
                    Tensor in = Tensor.of(input(r, numel * n, salt), numel * n);
                    Tensor mine = in.narrow(0, r * numel, numel);
                    g.reduceScatter(in, mine, ReduceOp.SUM);
                    float[] got = mine.toArray();
                    for (int i = 0; i < numel; i++)
                        expectReduced("reduceScatter in place numel=" + numel, ReduceOp.SUM, got[i], reduceRef(ReduceOp.SUM, n, (long) r * numel + i, salt), i);
                    salt++;
                    Tensor full = Tensor.zeros(numel * n);
                    Tensor own = full.narrow(0, r * numel, numel);
                    own.copyFrom(Tensor.of(input(r, numel, salt), numel));
                    g.allGather(own, full);
                    float[] all = full.toArray();
                    for (int q = 0; q < n; q++)
                        for (int i = 0; i < numel; i++) expectExact("allGather in place numel=" + numel, all[q * numel + i], value(q, i, salt), q * numel + i);
                }
                {
                    salt++;
                    int root = numel % n;
                    Tensor t = Tensor.of(input(r, numel, salt), numel);
                    g.broadcast(t, root);
                    float[] got = t.toArray();
                    for (int i = 0; i < numel; i++) expectExact("broadcast root=" + root + " numel=" + numel, got[i], value(root, i, salt), i);
                }
                {
                    salt++;
                    int root = (numel + 1) % n;
                    Tensor t = Tensor.of(input(r, numel, salt), numel);
                    g.reduce(t, root, ReduceOp.SUM);
                    float[] got = t.toArray();
                    for (int i = 0; i < numel; i++) {
                        if (r == root) expectReduced("reduce numel=" + numel, ReduceOp.SUM, got[i], reduceRef(ReduceOp.SUM, n, i, salt), i);
                        else expectExact("reduce (non-root unchanged) numel=" + numel, got[i], value(r, i, salt), i);
                    }
                }
                {
                    salt++;
                    Tensor in = Tensor.of(input(r, numel * n, salt), numel * n);
                    Tensor out = Tensor.zeros(numel * n);
                    g.allToAll(in, out);
                    float[] got = out.toArray();
                    // block q of my output is block r of rank q's input
                    for (int q = 0; q < n; q++)
                        for (int i = 0; i < numel; i++)
                            expectExact("allToAll numel=" + numel, got[q * numel + i], value(q, (long) r * numel + i, salt), q * numel + i);
                }
                if (n > 1) {
                    salt++;
                    int next = (r + 1) % n, prev = (r + n - 1) % n;
                    Tensor out = Tensor.of(input(r, numel, salt), numel);
                    Tensor in = Tensor.zeros(numel);
                    Work s = g.sendAsync(out, next, 7);
                    g.recv(in, prev, 7);
                    s.await();
                    float[] got = in.toArray();
                    for (int i = 0; i < numel; i++) expectExact("send/recv numel=" + numel, got[i], value(prev, i, salt), i);
                }
                g.barrier();
            }
        }
        return hash;
    }

    private static void expectReduced(String what, ReduceOp op, float got, float want, long i) {
        boolean ok = switch (op) {
            case MAX, MIN -> Float.floatToIntBits(got) == Float.floatToIntBits(want);
            // summation order differs from the double-precision reference: allow float rounding
            case SUM, AVG -> Math.abs(got - want) <= 1e-5f * Math.max(1f, Math.abs(want)) * 4;
        };
        check(ok, what + ": element " + i + " is " + got + ", expected " + want);
    }

    private static void expectExact(String what, float got, float want, long i) {
        check(Float.floatToIntBits(got) == Float.floatToIntBits(want), what + ": element " + i + " is " + got + ", expected " + want);
    }

    private static void check(boolean ok, String message) {
        if (!ok) throw new AssertionError(message);
    }

    static long mix(long hash, float[] values) {
        for (float v : values) hash = hash * 0x100000001B3L ^ Float.floatToRawIntBits(v);
        return hash;
    }
}
