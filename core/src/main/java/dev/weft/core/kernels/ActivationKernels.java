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
 * SiLU and the SwiGLU gate, forward and backward in one pass each over element ranges. The
 * sigmoid is recomputed in backward from the saved input instead of storing it: one exp is
 * cheaper than another activation-sized tensor.
 */
public final class ActivationKernels {
    private ActivationKernels() {}

    private static FloatVector sigmoid(FloatVector x, FloatVector one) {
        return one.div(one.add(VectorMath.exp(x.neg())));
    }

    private static float sigmoid(float x) {
        return 1f / (1f + VectorMath.exp(-x));
    }

    /** {@code y = x * sigmoid(x)} over [from, to). */
    public static void silu(MemorySegment x, MemorySegment y, int from, int to) {
        FloatVector one = FloatVector.broadcast(SPECIES, 1f);
        int i = from;
        for (int bound = from + SPECIES.loopBound(to - from); i < bound; i += LANES) {
            FloatVector v = load(x, i);
            store(v.mul(sigmoid(v, one)), y, i);
        }
        for (; i < to; i++) {
            float v = x.getAtIndex(F, i);
            y.setAtIndex(F, i, v * sigmoid(v));
        }
    }

    /** {@code gx = g * s * (1 + x * (1 - s))}, s = sigmoid(x), over [from, to). */
    public static void siluBackward(MemorySegment x, MemorySegment g, MemorySegment gx, int from, int to) {
        FloatVector one = FloatVector.broadcast(SPECIES, 1f);
        int i = from;
        for (int bound = from + SPECIES.loopBound(to - from); i < bound; i += LANES) {
            FloatVector v = load(x, i);
            FloatVector s = sigmoid(v, one);
            store(load(g, i).mul(s).mul(v.mul(one.sub(s)).add(one)), gx, i);
        }
        for (; i < to; i++) {
            float v = x.getAtIndex(F, i), s = sigmoid(v);
            gx.setAtIndex(F, i, g.getAtIndex(F, i) * s * (1f + v * (1f - s)));
        }
    }

    /** {@code y = silu(gate) * up} over [from, to). */
    public static void swiglu(MemorySegment gate, MemorySegment up, MemorySegment y, int from, int to) {
        FloatVector one = FloatVector.broadcast(SPECIES, 1f);
        int i = from;
        for (int bound = from + SPECIES.loopBound(to - from); i < bound; i += LANES) {
            FloatVector a = load(gate, i);
            store(a.mul(sigmoid(a, one)).mul(load(up, i)), y, i);
        }
        for (; i < to; i++) {
            float a = gate.getAtIndex(F, i);
            y.setAtIndex(F, i, a * sigmoid(a) * up.getAtIndex(F, i));
        }
    }

    /**
     * Gradients of {@code silu(gate) * up}: {@code gUp = g * silu(gate)},
     * {@code gGate = g * up * s * (1 + gate * (1 - s))}. Either output may be null when not needed.
     */
    public static void swigluBackward(MemorySegment gate, MemorySegment up, MemorySegment g,
                                      MemorySegment gGate, MemorySegment gUp, int from, int to) {
        FloatVector one = FloatVector.broadcast(SPECIES, 1f);
        int i = from;
        for (int bound = from + SPECIES.loopBound(to - from); i < bound; i += LANES) {
            FloatVector a = load(gate, i), gv = load(g, i);
            FloatVector s = sigmoid(a, one);
            if (gUp != null) store(gv.mul(a.mul(s)), gUp, i);
            if (gGate != null) store(gv.mul(load(up, i)).mul(s).mul(a.mul(one.sub(s)).add(one)), gGate, i);
        }
        for (; i < to; i++) {
            float a = gate.getAtIndex(F, i), gv = g.getAtIndex(F, i), s = sigmoid(a);
            if (gUp != null) gUp.setAtIndex(F, i, gv * a * s);
            if (gGate != null) gGate.setAtIndex(F, i, gv * up.getAtIndex(F, i) * s * (1f + a * (1f - s)));
        }
    }
}
