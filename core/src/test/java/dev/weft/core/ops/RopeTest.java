package dev.weft.core.ops;

import dev.weft.core.GradCheck;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

class RopeTest {
    /** The Hugging Face formula, in double: out = x cos + rotate_half(x) sin, rotate_half(x) = cat(-x2, x1). */
    private static float[] reference(Tensor x, int offset, double theta) {
        int[] s = x.shape();
        int b = s[0], t = s[1], h = s[2], d = s[3], half = d / 2;
        float[] v = x.toArray(), out = new float[v.length];
        for (int bi = 0; bi < b; bi++)
            for (int ti = 0; ti < t; ti++)
                for (int hi = 0; hi < h; hi++) {
                    int o = ((bi * t + ti) * h + hi) * d;
                    for (int i = 0; i < d; i++) {
                        int f = i % half;
                        double angle = (offset + ti) * Math.pow(theta, -2.0 * f / d);
                        double rotated = i < half ? -v[o + i + half] : v[o + i - half];
                        out[o + i] = (float) (v[o + i] * Math.cos(angle) + rotated * Math.sin(angle));
                    }
                }
        return out;
    }

    @Test
    void matchesTheHuggingFaceFormula() {
        try (Scope s = Scope.open()) {
            for (int[] shape : new int[][] {{1, 1, 1, 2}, {2, 3, 1, 6}, {1, 5, 3, 34}, {2, 7, 2, 64}, {1, 17, 4, 66}}) {
                for (int offset : new int[] {0, 5}) {
                    Tensor x = GradCheck.random(1, shape);
                    Tensor y = Rope.apply(x, offset, 10000f);
                    assertArrayEquals(shape, y.shape());
                    assertArrayEquals(reference(x, offset, 10000), y.toArray(), 2e-6f, Arrays.toString(shape) + " offset " + offset);
                }
            }
            Tensor x = GradCheck.random(2, 1, 9, 2, 128);
            assertArrayEquals(reference(x, 3, 500000), Rope.apply(x, 3, 500000f).toArray(), 2e-6f, "Llama 3 theta");
        }
    }

    @Test
    void pairsElementIWithIPlusHalfNotNeighbours() {
        // D = 4, theta = 100: frequencies 1 and 0.1; element 0 pairs with 2, element 1 with 3.
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new float[] {1, 2, 3, 4}, 1, 1, 1, 4);
            float[] y = Rope.apply(x, 2, 100f).toArray();
            double a = 2, b = 0.2;
            assertEquals(1 * Math.cos(a) - 3 * Math.sin(a), y[0], 1e-6);
            assertEquals(2 * Math.cos(b) - 4 * Math.sin(b), y[1], 1e-6);
            assertEquals(3 * Math.cos(a) + 1 * Math.sin(a), y[2], 1e-6);
            assertEquals(4 * Math.cos(b) + 2 * Math.sin(b), y[3], 1e-6);
        }
    }

    @Test
    void offsetContinuesTheSequence() {
        // Positions k.. of a long sequence equal a short sequence started at offset k (also after the table grows).
        try (Scope s = Scope.open()) {
            int t = 40, k = 29, d = 18;
            Tensor x = GradCheck.random(3, 1, t, 2, d);
            float[] full = Rope.apply(x, 0, 1000f).toArray();
            Tensor tail = x.narrow(1, k, t - k).contiguous();
            float[] part = Rope.apply(tail, k, 1000f).toArray();
            assertArrayEquals(Arrays.copyOfRange(full, k * 2 * d, t * 2 * d), part);
            float[] far = Rope.apply(tail, 5000, 1000f).toArray(); // grows the table past what was cached
            assertEquals(part.length, far.length);
            assertArrayEquals(reference(tail, 5000, 1000), far, 5e-4f);
        }
    }

    @Test
    void gradients() {
        try (Scope s = Scope.open()) {
            for (int[] shape : new int[][] {{1, 1, 1, 2}, {2, 3, 1, 6}, {1, 5, 3, 34}, {1, 3, 2, 66}}) {
                GradCheck.check("rope " + Arrays.toString(shape), in -> Rope.apply(in[0], 7, 10000f), GradCheck.random(4, shape));
            }
            GradCheck.check("rope of a transposed view", in -> Rope.apply(in[0].transpose(1, 2), 0, 10000f), GradCheck.random(5, 1, 2, 3, 8));
        }
    }

    @Test
    void badShapesAreRejected() {
        try (Scope s = Scope.open()) {
            var odd = assertThrows(IllegalArgumentException.class, () -> Rope.apply(Tensor.zeros(1, 2, 1, 5), 0, 10000f));
            assertTrue(odd.getMessage().contains("even") && odd.getMessage().contains("5"), odd.getMessage());
            var rank = assertThrows(IllegalArgumentException.class, () -> Rope.apply(Tensor.zeros(2, 4), 0, 10000f));
            assertTrue(rank.getMessage().contains("[2, 4]"), rank.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Rope.apply(Tensor.zeros(1, 2, 1, 4), -1, 10000f));
        }
    }
}
