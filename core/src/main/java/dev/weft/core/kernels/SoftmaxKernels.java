package dev.weft.core.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;

import static dev.weft.core.kernels.VectorMath.F;
import static dev.weft.core.kernels.VectorMath.LANES;
import static dev.weft.core.kernels.VectorMath.SPECIES;
import static dev.weft.core.kernels.VectorMath.load;
import static dev.weft.core.kernels.VectorMath.store;

/**
 * Row-wise log-sum-exp and softmax gradients for cross-entropy over logits[N, V]. A row (up to a
 * few hundred KiB) stays in cache between its max pass and its exp pass, so two passes beat an
 * online rescaling pass that would need two exps per element.
 */
public final class SoftmaxKernels {
    private SoftmaxKernels() {}

    /** log Σ exp(x[off..off+n)), max-subtracted so that no exp overflows. */
    public static float logSumExp(MemorySegment x, long off, int n) {
        float m = max(x, off, n);
        if (m == Float.NEGATIVE_INFINITY || Float.isNaN(m) || m == Float.POSITIVE_INFINITY) return m;
        return (float) (m + StrictMath.log(sumExp(x, off, n, m)));
    }

    /** The largest of x[off..off+n). */
    public static float max(MemorySegment x, long off, int n) {
        int bound = SPECIES.loopBound(n);
        int i = 0;
        float m = Float.NEGATIVE_INFINITY;
        if (bound > 0) {
            FloatVector vm = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
            for (; i < bound; i += LANES) vm = vm.max(load(x, off + i));
            m = vm.reduceLanes(VectorOperators.MAX);
        }
        for (; i < n; i++) m = Math.max(m, x.getAtIndex(F, off + i));
        return m;
    }

    /** Σ exp(x[off..off+n) - m), in double. */
    public static double sumExp(MemorySegment x, long off, int n, float m) {
        int bound = SPECIES.loopBound(n);
        FloatVector vmax = FloatVector.broadcast(SPECIES, m);
        double total = 0;
        int i = 0;
        while (i < bound) {
            // float lanes for up to 64 vectors, then flush to double: bounded error at vector speed
            FloatVector acc = FloatVector.zero(SPECIES);
            int stop = Math.min(bound, i + 64 * LANES);
            for (; i < stop; i += LANES) acc = acc.add(VectorMath.exp(load(x, off + i).sub(vmax)));
            total += VectorMath.sumLanes(acc);
        }
        for (; i < n; i++) total += VectorMath.exp(x.getAtIndex(F, off + i) - m);
        return total;
    }

    /**
     * {@code out[oo+j] = scale * exp(x[xo+j] - lse)} for j in [0, n): the softmax row times scale.
     * Callers subtract scale at the target afterwards.
     */
    public static void scaledSoftmax(MemorySegment x, long xo, float lse, float scale, MemorySegment out, long oo, int n) {
        FloatVector vl = FloatVector.broadcast(SPECIES, lse), vs = FloatVector.broadcast(SPECIES, scale);
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES)
            store(VectorMath.exp(load(x, xo + i).sub(vl)).mul(vs), out, oo + i);
        for (; i < n; i++) out.setAtIndex(F, oo + i, scale * VectorMath.exp(x.getAtIndex(F, xo + i) - lse));
    }

    /**
     * The cross-entropy gradient of logit rows [from, to) of width {@code v}: {@code scale} times
     * (softmax - onehot(target)), given each row's log-sum-exp. The rows hold the vocabulary's
     * columns from {@code first} (0 for the whole vocabulary; a block of it under tensor
     * parallelism, where a target outside the block has no onehot here). A row whose target is
     * {@code ignore}, or a zero scale, gets zeros.
     */
    public static void crossEntropyGradient(MemorySegment x, MemorySegment lse, int[] targets, int ignore, float scale, int first, int v, int from, int to,
                                            MemorySegment out) {
        for (int r = from; r < to; r++) {
            long o = (long) r * v;
            int t = targets[r];
            if (t == ignore || scale == 0f) {
                ElementwiseKernels.fill(out, o, v, 0f);
                continue;
            }
            scaledSoftmax(x, o, lse.getAtIndex(F, r), scale, out, o, v);
            if (t >= first && t < first + v) out.setAtIndex(F, o + t - first, out.getAtIndex(F, o + t - first) - scale);
        }
    }
}
