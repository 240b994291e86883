package dev.weft.core.kernels;

import jdk.incubator.vector.FloatVector;

import java.lang.foreign.MemorySegment;

import static dev.weft.core.kernels.VectorMath.F;
import static dev.weft.core.kernels.VectorMath.LANES;
import static dev.weft.core.kernels.VectorMath.SPECIES;
import static dev.weft.core.kernels.VectorMath.load;
import static dev.weft.core.kernels.VectorMath.store;

/**
 * Rotary position embedding in the "rotate half" layout: element i of a head pairs with i + D/2.
 * Rotation by the angle table ({@code out1 = x1 cos - x2 sin}, {@code out2 = x2 cos + x1 sin}) or,
 * for backward, by its inverse (the transpose: negate sin).
 */
public final class RopeKernels {
    private RopeKernels() {}

    /**
     * Rotates rows [from, to) of x[B*T, H, D] into out. Row r is position {@code firstPos + r % T};
     * {@code cos/sin[pos * D/2 + i]} hold the angle table.
     */
    public static void rotate(MemorySegment x, MemorySegment out, float[] cos, float[] sin, int seqLen, int heads,
                              int headDim, int firstPos, boolean inverse, int from, int to) {
        int half = headDim / 2;
        int bound = SPECIES.loopBound(half);
        float sign = inverse ? -1f : 1f;
        for (int r = from; r < to; r++) {
            int tab = (firstPos + r % seqLen) * half;
            for (int h = 0; h < heads; h++) {
                long o = ((long) r * heads + h) * headDim;
                int i = 0;
                for (; i < bound; i += LANES) {
                    FloatVector c = FloatVector.fromArray(SPECIES, cos, tab + i);
                    FloatVector s = FloatVector.fromArray(SPECIES, sin, tab + i).mul(sign);
                    FloatVector x1 = load(x, o + i), x2 = load(x, o + half + i);
                    store(x1.mul(c).sub(x2.mul(s)), out, o + i);
                    store(x2.mul(c).add(x1.mul(s)), out, o + half + i);
                }
                for (; i < half; i++) {
                    float c = cos[tab + i], s = sign * sin[tab + i];
                    float x1 = x.getAtIndex(F, o + i), x2 = x.getAtIndex(F, o + half + i);
                    out.setAtIndex(F, o + i, x1 * c - x2 * s);
                    out.setAtIndex(F, o + half + i, x2 * c + x1 * s);
                }
            }
        }
    }
}
