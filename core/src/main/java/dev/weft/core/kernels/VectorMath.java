package dev.weft.core.kernels;

import dev.weft.core.Tensor;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
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
 *
 * <p><b>Same bits in every tier.</b> A method runs interpreted, then C1-compiled, then
 * C2-compiled, and exact resume needs all three to give identical results. Arithmetic lanewise
 * operations do, but two Vector API operations do not: {@code reduceLanes(ADD)} on floats sums the
 * lanes in another order once intrinsified, and {@code lanewise(EXP)} switches from
 * {@code Math.exp} per lane to the JDK's SVML vector exp, which rounds differently. So kernels
 * sum lanes with {@link #sumLanes} (a fixed pairwise tree of shuffles and adds) and take
 * exponentials with {@link #exp(FloatVector)}, both built from exactly rounded operations only.
 * KernelDeterminismTest holds every kernel to this.
 */
public final class VectorMath {
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    static final int LANES = SPECIES.length();
    static final ByteOrder ORDER = ByteOrder.nativeOrder();
    static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int GRAIN = 1 << 15;

    private VectorMath() {}

    /** Shuffles that fold the upper half of the lanes onto the lower: i -> i ^ LANES/2, then ^ LANES/4, ... */
    private static final VectorShuffle<Float>[] FOLDS = folds();

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] folds() {
        int n = Integer.numberOfTrailingZeros(LANES);
        VectorShuffle<Float>[] f = new VectorShuffle[n];
        for (int k = 0; k < n; k++) {
            int h = LANES >> (k + 1);
            f[k] = VectorShuffle.fromOp(SPECIES, i -> i ^ h);
        }
        return f;
    }

    /** The sum of the lanes of {@code v} in a fixed pairwise order (see the class comment for why not reduceLanes). */
    public static float sumLanes(FloatVector v) {
        for (VectorShuffle<Float> fold : FOLDS) v = v.add(v.rearrange(fold));
        return v.lane(0);
    }

    // exp(x) = 2^n * e^r with n = round(x / ln 2) and |r| <= ln2 / 2: Cody–Waite reduction with ln 2
    // split in two (the high part has few mantissa bits, so n * LN2_HI is exact), then Cephes' degree-5
    // minimax polynomial for (e^r - 1 - r) / r^2. Within 2 ulp of the true value over the float range.
    private static final float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
    private static final float ROUNDER = 12582912f; // 1.5 * 2^23: adding it rounds to an integer, ties to even
    private static final float EXP_MAX = 88.72283935546875f; // above: +infinity
    private static final float EXP_MIN = -103.972084045410f; // below: 0 (under the smallest subnormal)
    private static final float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f, P3 = 4.1665795894e-2f,
            P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    /** e^x per lane, the same bits as {@link #exp(float)} on each lane in every compilation tier. */
    public static FloatVector exp(FloatVector x) {
        FloatVector c = x.max(EXP_MIN).min(EXP_MAX);
        FloatVector n = c.fma(LOG2E, ROUNDER).sub(ROUNDER);
        FloatVector r = n.fma(bc(-LN2_HI), c);
        r = n.fma(bc(-LN2_LO), r);
        FloatVector p = r.fma(P0, P1).fma(r, bc(P2)).fma(r, bc(P3)).fma(r, bc(P4)).fma(r, bc(P5));
        FloatVector y = p.fma(r.mul(r), r.add(1f));
        // 2^n as two factors, so that n in [-150, 128] (subnormal and near-overflow results) stays representable
        IntVector ni = (IntVector) n.convert(VectorOperators.F2I, 0);
        IntVector lo = ni.lanewise(VectorOperators.ASHR, 1), hi = ni.sub(lo);
        y = y.mul(lo.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats())
                .mul(hi.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
        VectorMask<Float> under = x.compare(VectorOperators.LT, EXP_MIN), over = x.compare(VectorOperators.GT, EXP_MAX);
        return y.blend(0f, under).blend(Float.POSITIVE_INFINITY, over);
    }

    private static FloatVector bc(float v) {
        return FloatVector.broadcast(SPECIES, v);
    }

    /** e^x, exactly the arithmetic of {@link #exp(FloatVector)} on one value. */
    public static float exp(float x) {
        if (x < EXP_MIN) return 0f;
        if (x > EXP_MAX) return Float.POSITIVE_INFINITY;
        if (Float.isNaN(x)) return x;
        float n = Math.fma(x, LOG2E, ROUNDER) - ROUNDER;
        float r = Math.fma(n, -LN2_HI, x);
        r = Math.fma(n, -LN2_LO, r);
        float p = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(r, P0, P1), r, P2), r, P3), r, P4), r, P5);
        float y = Math.fma(p, r * r, r + 1f);
        int ni = (int) n, lo = ni >> 1, hi = ni - lo;
        return y * Float.intBitsToFloat((lo + 127) << 23) * Float.intBitsToFloat((hi + 127) << 23);
    }

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
                total += sumLanes(acc);
                acc = FloatVector.zero(SPECIES);
                block = 0;
            }
        }
        total += sumLanes(acc);
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
        float s = sumLanes(acc);
        for (; i < n; i++) s += x.getAtIndex(F, off + i);
        return s;
    }

    /** The dot product of x[xo..xo+n) and y[yo..yo+n). */
    public static float dot(MemorySegment x, long xo, MemorySegment y, long yo, int n) {
        FloatVector acc = FloatVector.zero(SPECIES);
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) acc = load(x, xo + i).fma(load(y, yo + i), acc);
        float s = sumLanes(acc);
        for (; i < n; i++) s += x.getAtIndex(F, xo + i) * y.getAtIndex(F, yo + i);
        return s;
    }

    private static void checkSame(Tensor a, Tensor b) {
        if (a.numel() != b.numel())
            throw new IllegalArgumentException("size mismatch: " + a + " vs " + b);
    }
}
