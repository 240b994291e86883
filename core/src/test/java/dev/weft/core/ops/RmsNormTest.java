package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.GradCheck;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

class RmsNormTest {
    private static float[] reference(float[] x, float[] w, int d, float eps) {
        float[] y = new float[x.length];
        for (int r = 0; r < x.length / d; r++) {
            double ss = 0;
            for (int i = 0; i < d; i++) ss += (double) x[r * d + i] * x[r * d + i];
            double rstd = 1 / Math.sqrt(ss / d + eps);
            for (int i = 0; i < d; i++) y[r * d + i] = (float) (x[r * d + i] * rstd * w[i]);
        }
        return y;
    }

    @Test
    void forwardMatchesTheFormula() {
        try (Scope s = Scope.open()) {
            for (int[] shape : new int[][] {{1}, {3}, {2, 7}, {3, 17}, {2, 5, 33}, {4, 256}, {2, 300, 40}}) {
                int d = shape[shape.length - 1];
                Tensor x = GradCheck.random(1, shape), w = GradCheck.random(2, d);
                Tensor y = RmsNorm.apply(x, w, 1e-5f);
                assertArrayEquals(shape, y.shape());
                assertArrayEquals(reference(x.toArray(), w.toArray(), d, 1e-5f), y.toArray(), 2e-5f, Arrays.toString(shape));
            }
        }
    }

    @Test
    void gradients() {
        try (Scope s = Scope.open()) {
            for (int[] shape : new int[][] {{3}, {2, 7}, {3, 17}, {2, 3, 33}, {70, 5}}) {
                int d = shape[shape.length - 1];
                GradCheck.check("rmsnorm " + Arrays.toString(shape), in -> RmsNorm.apply(in[0], in[1], 1e-5f),
                        GradCheck.random(3, shape), GradCheck.random(4, d));
            }
            // d = 1 normalises to ±1: only differentiable with an eps that keeps it smooth at this step size
            GradCheck.check("rmsnorm d=1", in -> RmsNorm.apply(in[0], in[1], 0.5f), GradCheck.random(5, 4, 1), GradCheck.random(6, 1));
            GradCheck.check("rmsnorm of a transposed view", in -> RmsNorm.apply(in[0].transpose(0, 1), in[1], 1e-5f),
                    GradCheck.random(7, 7, 3), GradCheck.random(8, 7));
        }
    }

    @Test
    void onlyTheInputOrOnlyTheWeightNeedsGrad() {
        try (Scope s = Scope.open()) {
            Tensor x = GradCheck.random(9, 130, 17), w = GradCheck.random(10, 17).requiresGrad(true);
            Autograd.backward(RmsNorm.apply(x, w, 1e-5f), Tensor.ones(130, 17));
            assertNull(x.grad());
            assertNotNull(w.grad());
            w.clearGrad();
            w.requiresGrad(false);
            x.requiresGrad(true);
            Autograd.backward(RmsNorm.apply(x, w, 1e-5f), Tensor.ones(130, 17));
            assertNotNull(x.grad());
            assertNull(w.grad());
            x.clearGrad();
        }
    }

    @Test
    void badWeightShapeIsNamed() {
        try (Scope s = Scope.open()) {
            var e = assertThrows(IllegalArgumentException.class, () -> RmsNorm.apply(Tensor.zeros(2, 8), Tensor.ones(7), 1e-5f));
            assertTrue(e.getMessage().contains("[8]") && e.getMessage().contains("[7]"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> RmsNorm.apply(Tensor.zeros(2, 8), Tensor.ones(8), -1f));
        }
    }
}
