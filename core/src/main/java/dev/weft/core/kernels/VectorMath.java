package dev.weft.core.kernels;

import dev.weft.core.Tensor;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Elementwise float32 kernels on contiguous memory, written with the Vector API. This class (and
 * the kernels package) is the only place that touches {@code jdk.incubator.vector}, so an API
 * change there stays here.
 *
 * <p>Offsets and lengths are in elements; segments hold float32 in native byte order.
 */
public final class VectorMath {
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    static final int LANES = SPECIES.length();
    static final ByteOrder ORDER = ByteOrder.nativeOrder();
    static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int GRAIN = 1 << 15;

    private VectorMath() {}

    static FloatVector load(MemorySegment s, long i) {
        return FloatVector.fromMemorySegment(SPECIES, s, i * 4, ORDER);
    }

    static void store(FloatVector v, MemorySegment s, long i) {
        v.intoMemorySegment(s, i * 4, ORDER);
    }

    /** {@code dst += src} over whole contiguous tensors of equal size. */
    public static void addInPlace(Tensor dst, Tensor src) {
        checkSame(dst, src);
        axpy(1f, src.data(), dst.data(), Math.toIntExact(dst.numel()));
    }

    /** {@code y[i] += a * x[i]} for i in [0, n). */
    public static void axpy(float a, MemorySegment x, MemorySegment y, int n) {
        Parallel.forRange(n, GRAIN, (from, to) -> {
            int i = from;
            FloatVector va = FloatVector.broadcast(SPECIES, a);
            for (int bound = from + SPECIES.loopBound(to - from); i < bound; i += LANES) {
                store(load(x, i).fma(va, load(y, i)), y, i);
            }
            for (; i < to; i++) y.setAtIndex(F, i, Math.fma(a, x.getAtIndex(F, i), y.getAtIndex(F, i)));
        });
    }

    /** {@code x[i] *= a}. */
    public static void scaleInPlace(MemorySegment x, float a, int n) {
        Parallel.forRange(n, GRAIN, (from, to) -> {
            int i = from;
            for (int bound = from + SPECIES.loopBound(to - from); i < bound; i += LANES) store(load(x, i).mul(a), x, i);
            for (; i < to; i++) x.setAtIndex(F, i, x.getAtIndex(F, i) * a);
        });
    }

    /** Sum of squares in double precision per vector lane, accumulated in a fixed order. */
    public static double sumOfSquares(MemorySegment x, int n) {
        FloatVector acc = FloatVector.zero(SPECIES);
        double total = 0;
        int i = 0;
        int block = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) {
            FloatVector v = load(x, i);
            acc = v.fma(v, acc);
            if (++block == 256) { // flush to double now and then to bound float rounding error
                total += acc.reduceLanes(VectorOperators.ADD);
                acc = FloatVector.zero(SPECIES);
                block = 0;
            }
        }
        total += acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) {
            double v = x.getAtIndex(F, i);
            total += v * v;
        }
        return total;
    }

    /** The sum of x[0..n), in a fixed order. */
    public static float sum(MemorySegment x, long off, int n) {
        FloatVector acc = FloatVector.zero(SPECIES);
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) acc = acc.add(load(x, off + i));
        float s = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) s += x.getAtIndex(F, off + i);
        return s;
    }

    /** The dot product of x[xo..xo+n) and y[yo..yo+n). */
    public static float dot(MemorySegment x, long xo, MemorySegment y, long yo, int n) {
        FloatVector acc = FloatVector.zero(SPECIES);
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) acc = load(x, xo + i).fma(load(y, yo + i), acc);
        float s = acc.reduceLanes(VectorOperators.ADD);
        for (; i < n; i++) s += x.getAtIndex(F, xo + i) * y.getAtIndex(F, yo + i);
        return s;
    }

    private static void checkSame(Tensor a, Tensor b) {
        if (a.numel() != b.numel())
            throw new IllegalArgumentException("size mismatch: " + a + " vs " + b);
    }
}
