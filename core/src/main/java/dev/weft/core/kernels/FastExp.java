package dev.weft.core.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * A vectorised {@code exp} for softmax: range reduction {@code x = n·ln2 + r} with |r| ≤ ln2/2
 * (ln2 split in two parts so {@code n·ln2} is exact), a degree-7 Taylor polynomial for {@code e^r}
 * (truncation error below 1e-8 relative on that interval) and {@code 2^n} built directly in the
 * exponent bits. Relative error is a few float ulps over the whole clamped range.
 *
 * <p>Why not {@code lanewise(EXP)}: on the JDKs we run, that call is several times slower than this
 * polynomial in the attention kernels (see FlashAttention's notes); softmax needs neither
 * denormals nor overflow handling, so arguments are clamped to [-87, 88] where 2^n stays normal.
 */
final class FastExp {
    private static final float LOG2E = 1.4426950408889634f;
    // ln2 = LN2_HI + LN2_LO; LN2_HI has 9 significant bits, so n * LN2_HI is exact for |n| < 2^15.
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.1219444005469058e-4f;
    /** 1.5 * 2^23: adding it rounds a float of magnitude < 2^22 to an integer held in the low mantissa bits. */
    private static final float ROUNDER = 12582912f;
    private static final float MIN_ARG = -87f, MAX_ARG = 88f;
    private static final float C2 = 1f / 2, C3 = 1f / 6, C4 = 1f / 24, C5 = 1f / 120, C6 = 1f / 720, C7 = 1f / 5040;

    private static final VectorSpecies<Float> S = VectorMath.SPECIES;

    private FastExp() {}

    /** e^x lane by lane, for vectors of {@link VectorMath#SPECIES}. */
    static FloatVector exp(FloatVector x) {
        FloatVector xc = x.max(MIN_ARG).min(MAX_ARG);
        FloatVector t = xc.fma(FloatVector.broadcast(S, LOG2E), FloatVector.broadcast(S, ROUNDER));
        FloatVector n = t.sub(ROUNDER);
        FloatVector r = n.fma(FloatVector.broadcast(S, -LN2_HI), xc);
        r = n.fma(FloatVector.broadcast(S, -LN2_LO), r);
        FloatVector p = FloatVector.broadcast(S, C7).fma(r, FloatVector.broadcast(S, C6));
        p = p.fma(r, FloatVector.broadcast(S, C5));
        p = p.fma(r, FloatVector.broadcast(S, C4));
        p = p.fma(r, FloatVector.broadcast(S, C3));
        p = p.fma(r, FloatVector.broadcast(S, C2));
        p = p.fma(r, FloatVector.broadcast(S, 1f));
        p = p.fma(r, FloatVector.broadcast(S, 1f));
        // The low bits of t hold n (two's complement); shifting them into the exponent field and
        // adding the bias gives the float 2^n. The rounder's own bits shift out past bit 31.
        IntVector twoN = ((IntVector) t.reinterpretAsInts()).lanewise(VectorOperators.LSHL, 23).add(127 << 23);
        return p.mul(twoN.reinterpretAsFloats());
    }
}
