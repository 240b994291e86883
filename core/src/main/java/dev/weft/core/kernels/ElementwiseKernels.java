package dev.weft.core.kernels;

import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static dev.weft.core.kernels.VectorMath.F;
import static dev.weft.core.kernels.VectorMath.LANES;
import static dev.weft.core.kernels.VectorMath.SPECIES;
import static dev.weft.core.kernels.VectorMath.load;
import static dev.weft.core.kernels.VectorMath.store;

/**
 * Binary arithmetic on runs of float32, the inner loop of broadcasting elementwise ops. Either
 * operand may be a single value repeated along the run (a broadcast dimension of size 1), so
 * {@code [B,T,d] + [d]} and {@code [B,T,d] * [B,T,1]} both run at vector speed.
 */
public final class ElementwiseKernels {
    public static final int ADD = 0, SUB = 1, MUL = 2, DIV = 3;

    private ElementwiseKernels() {}

    /**
     * {@code out[oo+i] = a[ao + i*sa] op b[bo + i*sb]} for i in [0, n), where a stride is 1 or 0
     * (0 repeats the one value). The op is a loop invariant, so the JIT unswitches the switch.
     */
    public static void binary(int op, MemorySegment a, long ao, int sa, MemorySegment b, long bo, int sb,
                              MemorySegment out, long oo, int n) {
        int i = 0;
        int bound = SPECIES.loopBound(n);
        if (sa == 1 && sb == 1) {
            for (; i < bound; i += LANES) store(apply(op, load(a, ao + i), load(b, bo + i)), out, oo + i);
        } else if (sa == 1) {
            FloatVector vb = FloatVector.broadcast(SPECIES, b.getAtIndex(F, bo));
            for (; i < bound; i += LANES) store(apply(op, load(a, ao + i), vb), out, oo + i);
        } else if (sb == 1) {
            FloatVector va = FloatVector.broadcast(SPECIES, a.getAtIndex(F, ao));
            for (; i < bound; i += LANES) store(apply(op, va, load(b, bo + i)), out, oo + i);
        } // both repeated: the scalar loop below does it
        for (; i < n; i++) out.setAtIndex(F, oo + i, apply(op, a.getAtIndex(F, ao + (long) i * sa), b.getAtIndex(F, bo + (long) i * sb)));
    }

    private static FloatVector apply(int op, FloatVector x, FloatVector y) {
        return switch (op) {
            case ADD -> x.add(y);
            case SUB -> x.sub(y);
            case MUL -> x.mul(y);
            default -> x.div(y);
        };
    }

    private static float apply(int op, float x, float y) {
        return switch (op) {
            case ADD -> x + y;
            case SUB -> x - y;
            case MUL -> x * y;
            default -> x / y;
        };
    }

    /** {@code out[oo+i] = x[xo+i] * s + c} for i in [0, n); out may be x. */
    public static void affine(MemorySegment x, long xo, float s, float c, MemorySegment out, long oo, int n) {
        int i = 0;
        FloatVector vs = FloatVector.broadcast(SPECIES, s), vc = FloatVector.broadcast(SPECIES, c);
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) store(load(x, xo + i).fma(vs, vc), out, oo + i);
        for (; i < n; i++) out.setAtIndex(F, oo + i, Math.fma(x.getAtIndex(F, xo + i), s, c));
    }

    /** {@code dst[do+i] += src[so+i]} for i in [0, n), serially (callers parallelise around it). */
    public static void accumulate(MemorySegment src, long so, MemorySegment dst, long dOff, int n) {
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) store(load(dst, dOff + i).add(load(src, so + i)), dst, dOff + i);
        for (; i < n; i++) dst.setAtIndex(F, dOff + i, dst.getAtIndex(F, dOff + i) + src.getAtIndex(F, so + i));
    }

    /** {@code dst[do+i] = v} for i in [0, n). */
    public static void fill(MemorySegment dst, long dOff, int n, float v) {
        int i = 0;
        FloatVector vv = FloatVector.broadcast(SPECIES, v);
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) store(vv, dst, dOff + i);
        for (; i < n; i++) dst.setAtIndex(F, dOff + i, v);
    }

    /** The sum of x[off..off+n) accumulated in double per block of vector adds, in a fixed order. */
    public static double sumDouble(MemorySegment x, long off, int n) {
        double total = 0;
        int i = 0;
        int bound = SPECIES.loopBound(n);
        while (i < bound) {
            // float lanes for up to 64 vectors, then flush to double: bounded rounding error, vector speed
            FloatVector acc = FloatVector.zero(SPECIES);
            int stop = Math.min(bound, i + 64 * LANES);
            for (; i < stop; i += LANES) acc = acc.add(load(x, off + i));
            total += VectorMath.sumLanes(acc);
        }
        for (; i < n; i++) total += x.getAtIndex(F, off + i);
        return total;
    }
}
