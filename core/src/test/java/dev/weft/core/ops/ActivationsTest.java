package dev.weft.core.ops;

import dev.weft.core.GradCheck;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

class ActivationsTest {
    private static double silu(double x) {
        return x / (1 + Math.exp(-x));
    }

    /** Values spread over [-6, 6] so the sigmoid's curved part and both tails are exercised. */
    private static Tensor spread(long seed, int... shape) {
        float[] v = GradCheck.random(seed, shape).toArray();
        for (int i = 0; i < v.length; i++) v[i] *= 6;
        return Tensor.of(v, shape);
    }

    @Test
    void forwardMatchesTheFormula() {
        try (Scope s = Scope.open()) {
            for (int[] shape : new int[][] {{1}, {3}, {7}, {17}, {2, 33}, {5, 1000}}) {
                Tensor g = spread(1, shape), u = spread(2, shape);
                float[] gv = g.toArray(), uv = u.toArray(), sv = Activations.silu(g).toArray(), wv = Activations.swiglu(g, u).toArray();
                for (int i = 0; i < gv.length; i++) {
                    assertEquals(silu(gv[i]), sv[i], 1e-6 * (1 + Math.abs(gv[i])), Arrays.toString(shape) + " silu " + gv[i]);
                    assertEquals(silu(gv[i]) * uv[i], wv[i], 1e-5 * (1 + Math.abs(gv[i] * uv[i])), Arrays.toString(shape) + " swiglu");
                }
            }
        }
    }

    @Test
    void extremeInputsStayFinite() {
        try (Scope s = Scope.open()) {
            float[] x = {-1000f, -100f, -20f, 0f, 20f, 100f, 1000f, -1000f, -100f, -20f, 0f, 20f, 100f, 1000f, -90f, 90f, -88.8f};
            float[] y = Activations.silu(Tensor.of(x, x.length)).toArray();
            for (int i = 0; i < x.length; i++) {
                assertTrue(Float.isFinite(y[i]), "silu(" + x[i] + ") = " + y[i]);
                assertEquals(silu(x[i]), y[i], 1e-4 * Math.max(1, Math.abs(x[i])), "silu(" + x[i] + ")");
            }
        }
    }

    @Test
    void gradients() {
        try (Scope s = Scope.open()) {
            for (int[] shape : new int[][] {{1}, {3}, {7}, {17}, {3, 33}}) {
                GradCheck.check("silu " + Arrays.toString(shape), in -> Activations.silu(in[0]), spread(3, shape));
                GradCheck.check("swiglu " + Arrays.toString(shape), in -> Activations.swiglu(in[0], in[1]), spread(4, shape), spread(5, shape));
            }
            GradCheck.check("swiglu of views", in -> Activations.swiglu(in[0].transpose(0, 1), in[1]), spread(6, 5, 3), spread(7, 3, 5));
            GradCheck.check("swiglu with the same tensor twice", in -> Activations.swiglu(in[0], in[0]), spread(8, 17));
        }
    }

    @Test
    void shapeMismatchIsNamed() {
        try (Scope s = Scope.open()) {
            var e = assertThrows(IllegalArgumentException.class, () -> Activations.swiglu(Tensor.zeros(2, 3), Tensor.zeros(3, 2)));
            assertTrue(e.getMessage().contains("[2, 3]") && e.getMessage().contains("[3, 2]"), e.getMessage());
        }
    }
}
