package dev.weft.core.kernels;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** VectorMath.exp against StrictMath.exp, and the vector form against the scalar form lane by lane. */
class ExpTest {
    /** Distance in units in the last place of the float nearest the true value. */
    private static double ulps(float got, double exact) {
        float nearest = (float) exact;
        return Math.abs(got - exact) / Math.ulp(nearest);
    }

    @Test
    void withinTwoUlpsOverTheWholeRangeAndVectorEqualsScalar() {
        double worst = 0;
        float[] xs = new float[VectorMath.LANES];
        for (int k = 0; k < 400_000; k += VectorMath.LANES) {
            for (int l = 0; l < xs.length; l++) xs[l] = -87f + 175.7f * (k + l) / 400_000f;
            FloatVector v = VectorMath.exp(FloatVector.fromArray(VectorMath.SPECIES, xs, 0));
            for (int l = 0; l < xs.length; l++) {
                float scalar = VectorMath.exp(xs[l]);
                assertEquals(Float.floatToRawIntBits(scalar), Float.floatToRawIntBits(v.lane(l)), "lane " + l + " at x = " + xs[l]);
                worst = Math.max(worst, ulps(scalar, StrictMath.exp(xs[l])));
            }
        }
        assertTrue(worst <= 2, "worst error " + worst + " ulp");
    }

    @Test
    void edgesOfTheRange() {
        assertEquals(1f, VectorMath.exp(0f));
        assertEquals(0f, VectorMath.exp(Float.NEGATIVE_INFINITY));
        assertEquals(0f, VectorMath.exp(-200f));
        assertEquals(Float.POSITIVE_INFINITY, VectorMath.exp(89f));
        assertEquals(Float.POSITIVE_INFINITY, VectorMath.exp(Float.POSITIVE_INFINITY));
        assertTrue(Float.isNaN(VectorMath.exp(Float.NaN)));
        // near overflow and in the subnormal range the two-factor scaling keeps the result finite and close
        assertTrue(ulps(VectorMath.exp(88.7f), StrictMath.exp(88.7f)) <= 2);
        float sub = VectorMath.exp(-100f);
        assertTrue(sub > 0 && Math.abs(sub - StrictMath.exp(-100.0)) <= Float.MIN_VALUE * 2, "exp(-100) = " + sub);
        FloatVector inf = VectorMath.exp(FloatVector.broadcast(VectorMath.SPECIES, Float.NEGATIVE_INFINITY));
        assertEquals(0f, inf.lane(0));
        FloatVector nan = VectorMath.exp(FloatVector.broadcast(VectorMath.SPECIES, Float.NaN));
        assertTrue(Float.isNaN(nan.lane(0)));
    }

    @Test
    void sumLanesIsThePairwiseTree() {
        float[] xs = new float[VectorMath.LANES];
        for (int i = 0; i < xs.length; i++) xs[i] = (float) Math.pow(1.7, i) * (i % 2 == 0 ? 1 : -1) + 1e-3f * i;
        float[] t = xs.clone();
        for (int h = t.length / 2; h >= 1; h /= 2)
            for (int i = 0; i < h; i++) t[i] = t[i] + t[i + h];
        assertEquals(Float.floatToRawIntBits(t[0]), Float.floatToRawIntBits(VectorMath.sumLanes(FloatVector.fromArray(VectorMath.SPECIES, xs, 0))));
    }
}
