package dev.weft.core.ops;

import dev.weft.core.GradCheck;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

class ReductionsTest {
    private static final int[][] SHAPES = {{1}, {7}, {3, 17}, {2, 3, 5}, {33, 1, 3}, {2, 1, 7, 4}};

    @Test
    void fullSumAndMeanMatchDoubleLoops() {
        try (Scope s = Scope.open()) {
            for (int n : new int[] {1, 3, 17, 70_001, 200_003}) {
                Tensor a = GradCheck.random(n, n);
                double ref = 0;
                for (float v : a.toArray()) ref += v;
                Tensor sum = Reductions.sum(a), mean = Reductions.mean(a);
                assertArrayEquals(new int[0], sum.shape());
                assertEquals(ref, sum.item(), 1e-6 * n);
                assertEquals(ref / n, mean.item(), 1e-6);
                assertEquals(sum.item(), Reductions.sum(a).item(), "same input, same bits");
            }
        }
    }

    @Test
    void sumAndMeanAlongEachDimensionMatchLoops() {
        try (Scope s = Scope.open()) {
            for (int[] shape : SHAPES) {
                Tensor a = GradCheck.random(1, shape);
                for (int dim = -shape.length; dim < shape.length; dim++) {
                    for (boolean keep : new boolean[] {false, true}) {
                        int d = dim < 0 ? dim + shape.length : dim;
                        Tensor sum = Reductions.sum(a, dim, keep), mean = Reductions.mean(a, dim, keep);
                        int[] expectShape = keep ? shape.clone() : new int[shape.length - 1];
                        if (keep) expectShape[d] = 1;
                        else for (int k = 0, j = 0; k < shape.length; k++) if (k != d) expectShape[j++] = shape[k];
                        assertArrayEquals(expectShape, sum.shape());
                        assertArrayEquals(expectShape, mean.shape());
                        float[] ref = reference(a, d);
                        float[] sv = sum.toArray(), mv = mean.toArray();
                        for (int i = 0; i < ref.length; i++) {
                            assertEquals(ref[i], sv[i], 1e-5, Arrays.toString(shape) + " dim " + dim);
                            assertEquals(ref[i] / shape[d], mv[i], 1e-5, Arrays.toString(shape) + " dim " + dim);
                        }
                    }
                }
            }
        }
    }

    private static float[] reference(Tensor a, int d) {
        int[] s = a.shape();
        int outer = 1, inner = 1;
        for (int k = 0; k < d; k++) outer *= s[k];
        for (int k = d + 1; k < s.length; k++) inner *= s[k];
        float[] v = a.toArray(), r = new float[outer * inner];
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < s[d]; j++)
                for (int i = 0; i < inner; i++) r[o * inner + i] += v[(o * s[d] + j) * inner + i];
        return r;
    }

    @Test
    void wideColumnReductionMatchesLoops() {
        // inner > the 1024-column work item, so several items per row.
        try (Scope s = Scope.open()) {
            Tensor a = GradCheck.random(3, 3, 5, 2500);
            float[] ref = reference(a, 1), got = Reductions.sum(a, 1, false).toArray();
            assertArrayEquals(ref, got, 1e-5f);
        }
    }

    @Test
    void gradients() {
        try (Scope s = Scope.open()) {
            for (int[] shape : SHAPES) {
                GradCheck.check("sum " + Arrays.toString(shape), in -> Reductions.sum(in[0]), GradCheck.random(2, shape));
                GradCheck.check("mean " + Arrays.toString(shape), in -> Reductions.mean(in[0]), GradCheck.random(3, shape));
                for (int dim = -1; dim < shape.length; dim++) {
                    int dd = dim;
                    GradCheck.check("sum dim " + dim + " " + Arrays.toString(shape), in -> Reductions.sum(in[0], dd, false), GradCheck.random(4, shape));
                    GradCheck.check("mean dim " + dim + " " + Arrays.toString(shape), in -> Reductions.mean(in[0], dd, true), GradCheck.random(5, shape));
                }
            }
            GradCheck.check("sum of a transposed view", in -> Reductions.sum(in[0].transpose(0, 1), 1, false), GradCheck.random(6, 3, 7));
        }
    }

    @Test
    void badDimensionIsNamed() {
        try (Scope s = Scope.open()) {
            var e = assertThrows(IllegalArgumentException.class, () -> Reductions.sum(Tensor.zeros(2, 3), 2, false));
            assertTrue(e.getMessage().contains("dim 2") && e.getMessage().contains("[2, 3]"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Reductions.mean(Tensor.zeros(2, 3), -3, true));
        }
    }
}
