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
 * Row kernels of RMS normalisation, {@code y = x * rstd * w} with {@code rstd = 1/sqrt(mean(x²) + eps)}
 * per row of length d. Forward keeps only rstd per row; backward rebuilds the normalised row from x.
 */
public final class NormKernels {
    private NormKernels() {}

    /** Rows [from, to) of x[rows, d] into y, writing each row's rstd. */
    public static void rmsNormForward(MemorySegment x, MemorySegment w, MemorySegment y, MemorySegment rstd,
                                      int d, float eps, int from, int to) {
        int bound = SPECIES.loopBound(d);
        for (int r = from; r < to; r++) {
            long o = (long) r * d;
            double ss = sumOfSquares(x, o, d);
            float rs = (float) (1.0 / Math.sqrt(ss / d + eps));
            rstd.setAtIndex(F, r, rs);
            int i = 0;
            for (; i < bound; i += LANES) store(load(x, o + i).mul(rs).mul(load(w, i)), y, o + i);
            for (; i < d; i++) y.setAtIndex(F, o + i, x.getAtIndex(F, o + i) * rs * w.getAtIndex(F, i));
        }
    }

    /**
     * Backward over rows [from, to): {@code gx = rstd * g * w - x * rstd³ * Σ(g w x) / d} (when gx is
     * not null) and {@code gwAcc += g * x * rstd} summed over the rows in order (when gwAcc is not null).
     */
    public static void rmsNormBackward(MemorySegment x, MemorySegment w, MemorySegment rstd, MemorySegment g,
                                       MemorySegment gx, MemorySegment gwAcc, long gwOff, int d, int from, int to) {
        int bound = SPECIES.loopBound(d);
        for (int r = from; r < to; r++) {
            long o = (long) r * d;
            float rs = rstd.getAtIndex(F, r);
            if (gx != null) {
                FloatVector acc = FloatVector.zero(SPECIES);
                int i = 0;
                for (; i < bound; i += LANES) acc = load(g, o + i).mul(load(w, i)).fma(load(x, o + i), acc);
                double dot = VectorMath.sumLanes(acc);
                for (; i < d; i++) dot += (double) g.getAtIndex(F, o + i) * w.getAtIndex(F, i) * x.getAtIndex(F, o + i);
                float c = (float) ((double) rs * rs * rs * dot / d);
                FloatVector vr = FloatVector.broadcast(SPECIES, rs), vc = FloatVector.broadcast(SPECIES, -c);
                for (i = 0; i < bound; i += LANES)
                    store(load(x, o + i).mul(vc).add(load(g, o + i).mul(load(w, i)).mul(vr)), gx, o + i);
                for (; i < d; i++) gx.setAtIndex(F, o + i, rs * g.getAtIndex(F, o + i) * w.getAtIndex(F, i) - c * x.getAtIndex(F, o + i));
            }
            if (gwAcc != null) {
                FloatVector vr = FloatVector.broadcast(SPECIES, rs);
                int i = 0;
                for (; i < bound; i += LANES)
                    store(load(g, o + i).mul(load(x, o + i)).fma(vr, load(gwAcc, gwOff + i)), gwAcc, gwOff + i);
                for (; i < d; i++)
                    gwAcc.setAtIndex(F, gwOff + i, Math.fma(g.getAtIndex(F, o + i) * x.getAtIndex(F, o + i), rs, gwAcc.getAtIndex(F, gwOff + i)));
            }
        }
    }

    /** Σ x² over x[off..off+n), float lanes flushed to double every 64 vectors. */
    static double sumOfSquares(MemorySegment x, long off, int n) {
        double total = 0;
        int i = 0;
        int bound = SPECIES.loopBound(n);
        while (i < bound) {
            FloatVector acc = FloatVector.zero(SPECIES);
            int stop = Math.min(bound, i + 64 * LANES);
            for (; i < stop; i += LANES) {
                FloatVector v = load(x, off + i);
                acc = v.fma(v, acc);
            }
            total += VectorMath.sumLanes(acc);
        }
        for (; i < n; i++) {
            double v = x.getAtIndex(F, off + i);
            total += v * v;
        }
        return total;
    }
}
