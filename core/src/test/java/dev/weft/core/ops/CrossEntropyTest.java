package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.GradCheck;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class CrossEntropyTest {
    private static final int IGNORE = -100;

    /** Mean over non-ignored rows of logsumexp(row) - row[target], in double. */
    private static double reference(float[] x, int v, int[] targets) {
        double total = 0;
        int count = 0;
        for (int r = 0; r < targets.length; r++) {
            if (targets[r] == IGNORE) continue;
            double m = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < v; j++) m = Math.max(m, x[r * v + j]);
            double s = 0;
            for (int j = 0; j < v; j++) s += Math.exp(x[r * v + j] - m);
            total += m + Math.log(s) - x[r * v + targets[r]];
            count++;
        }
        return count == 0 ? 0 : total / count;
    }

    private static int[] targets(int n, int v, long seed, boolean withIgnored) {
        java.util.Random rnd = new java.util.Random(seed);
        int[] t = new int[n];
        for (int r = 0; r < n; r++) t[r] = withIgnored && r % 3 == 1 ? IGNORE : rnd.nextInt(v);
        return t;
    }

    private static Tensor logits(long seed, float scale, int n, int v) {
        float[] x = GradCheck.random(seed, n, v).toArray();
        for (int i = 0; i < x.length; i++) x[i] *= scale;
        return Tensor.of(x, n, v);
    }

    @Test
    void forwardMatchesTheFormula() {
        try (Scope s = Scope.open()) {
            for (int[] nv : new int[][] {{1, 1}, {1, 3}, {3, 7}, {5, 17}, {4, 33}, {7, 1000}, {3, 50257}}) {
                for (boolean ignored : new boolean[] {false, true}) {
                    Tensor x = logits(nv[0] + nv[1], 4f, nv[0], nv[1]);
                    int[] t = targets(nv[0], nv[1], nv[1], ignored);
                    double ref = reference(x.toArray(), nv[1], t);
                    assertEquals(ref, CrossEntropy.loss(x, t, IGNORE).item(), 1e-5 * (1 + ref), nv[0] + "x" + nv[1]);
                }
            }
        }
    }

    @Test
    void gradientIsSoftmaxMinusOneHotOverCount() {
        try (Scope s = Scope.open()) {
            int n = 6, v = 37;
            Tensor x = logits(1, 3f, n, v).requiresGrad(true);
            int[] t = targets(n, v, 2, true);
            float[] xv = x.toArray();
            Autograd.backward(Elementwise.scale(CrossEntropy.loss(x, t, IGNORE), 2f));
            float[] g = x.grad().toArray();
            int count = 0;
            for (int target : t) if (target != IGNORE) count++;
            for (int r = 0; r < n; r++) {
                double m = Double.NEGATIVE_INFINITY, sum = 0;
                for (int j = 0; j < v; j++) m = Math.max(m, xv[r * v + j]);
                for (int j = 0; j < v; j++) sum += Math.exp(xv[r * v + j] - m);
                for (int j = 0; j < v; j++) {
                    double expect = t[r] == IGNORE ? 0 : 2.0 / count * (Math.exp(xv[r * v + j] - m) / sum - (j == t[r] ? 1 : 0));
                    assertEquals(expect, g[r * v + j], 1e-6, "row " + r + " col " + j);
                }
            }
            x.clearGrad();
        }
    }

    @Test
    void gradients() {
        try (Scope s = Scope.open()) {
            for (int[] nv : new int[][] {{1, 1}, {1, 3}, {3, 7}, {5, 17}, {4, 33}}) {
                int[] t = targets(nv[0], nv[1], 3, nv[0] > 2);
                GradCheck.check("cross_entropy " + nv[0] + "x" + nv[1], in -> CrossEntropy.loss(in[0], t, IGNORE), logits(4, 2f, nv[0], nv[1]));
            }
            int[] t = {2, IGNORE, 0};
            GradCheck.check("cross_entropy of a transposed view", in -> CrossEntropy.loss(in[0].transpose(0, 1), t, IGNORE), logits(5, 2f, 5, 3));
        }
    }

    @Test
    void largeLogitsAreStable() {
        try (Scope s = Scope.open()) {
            float[] x = {1e4f, 1e4f + 1, 1e4f - 2, -1e4f, 50f, 90f, 100f, -3e4f};
            Tensor l = Tensor.of(x, 2, 4).requiresGrad(true);
            int[] t = {1, 3};
            Tensor loss = CrossEntropy.loss(l, t, IGNORE);
            assertEquals(reference(x, 4, t), loss.item(), 1e-3);
            loss.backward();
            for (float g : l.grad().toArray()) assertTrue(Float.isFinite(g), "gradient " + g);
            l.clearGrad();
        }
    }

    @Test
    void allRowsIgnoredGivesZeroLossAndZeroGradient() {
        try (Scope s = Scope.open()) {
            Tensor x = logits(6, 1f, 3, 17).requiresGrad(true);
            Tensor loss = CrossEntropy.loss(x, new int[] {IGNORE, IGNORE, IGNORE}, IGNORE);
            assertEquals(0f, loss.item());
            loss.backward();
            for (float g : x.grad().toArray()) assertEquals(0f, g);
            x.clearGrad();
            assertEquals(0f, CrossEntropy.loss(Tensor.zeros(0, 5), new int[0], IGNORE).item());
        }
    }

    @Test
    void badTargetsAreRejectedWithRowAndRange() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(3, 10);
            var e = assertThrows(IllegalArgumentException.class, () -> CrossEntropy.loss(x, new int[] {1, 10, 2}, IGNORE));
            assertTrue(e.getMessage().contains("target 10") && e.getMessage().contains("row 1") && e.getMessage().contains("10 classes"), e.getMessage());
            var neg = assertThrows(IllegalArgumentException.class, () -> CrossEntropy.loss(x, new int[] {1, 2, -1}, IGNORE));
            assertTrue(neg.getMessage().contains("target -1") && neg.getMessage().contains("row 2"), neg.getMessage());
            var count = assertThrows(IllegalArgumentException.class, () -> CrossEntropy.loss(x, new int[] {1, 2}, IGNORE));
            assertTrue(count.getMessage().contains("2 targets") && count.getMessage().contains("3 rows"), count.getMessage());
            assertThrows(IllegalArgumentException.class, () -> CrossEntropy.loss(Tensor.zeros(2, 3, 4), new int[] {0, 0}, IGNORE));
        }
    }
}
