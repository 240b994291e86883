package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.MemoryPool;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.FlashAttention.BackwardPlan;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** Tiled causal attention against a naive double-precision reference that materialises every score. */
class AttentionTest {

    /** Inputs and the upstream gradient of one case, in [B, T, H, D] order. */
    record Case(int b, int t, int hq, int hkv, int d, float[] q, float[] k, float[] v, float[] dOut, float scale) {
        static Case random(int b, int t, int hq, int hkv, int d, long seed) {
            Random rnd = new Random(seed);
            return new Case(b, t, hq, hkv, d, gaussian(rnd, b * t * hq * d), gaussian(rnd, b * t * hkv * d),
                    gaussian(rnd, b * t * hkv * d), gaussian(rnd, b * t * hq * d), (float) (1 / Math.sqrt(d)));
        }

        private static float[] gaussian(Random rnd, int n) {
            float[] x = new float[n];
            for (int i = 0; i < n; i++) x[i] = (float) rnd.nextGaussian();
            return x;
        }
    }

    /** Reference results: output and the gradients of q, k, v for upstream gradient dOut. */
    record Reference(double[] out, double[] dq, double[] dk, double[] dv) {
        static Reference of(Case c) {
            int b = c.b, t = c.t, hq = c.hq, hkv = c.hkv, d = c.d, group = hq / hkv;
            double[] out = new double[b * t * hq * d], dq = new double[out.length];
            double[] dk = new double[b * t * hkv * d], dv = new double[dk.length];
            for (int bi = 0; bi < b; bi++)
                for (int h = 0; h < hq; h++) {
                    int g = h / group;
                    // Full T x T masked scores, softmax row by row.
                    double[][] p = new double[t][t];
                    for (int i = 0; i < t; i++) {
                        double max = Double.NEGATIVE_INFINITY;
                        for (int j = 0; j < t; j++) {
                            if (j > i) { p[i][j] = Double.NEGATIVE_INFINITY; continue; }
                            double sc = 0;
                            for (int x = 0; x < d; x++) sc += (double) c.q[qi(c, bi, i, h, x)] * c.k[ki(c, bi, j, g, x)];
                            p[i][j] = sc * c.scale;
                            max = Math.max(max, p[i][j]);
                        }
                        double sum = 0;
                        for (int j = 0; j < t; j++) sum += p[i][j] = j > i ? 0 : Math.exp(p[i][j] - max);
                        for (int j = 0; j < t; j++) p[i][j] /= sum;
                    }
                    for (int i = 0; i < t; i++)
                        for (int x = 0; x < d; x++) {
                            double o = 0;
                            for (int j = 0; j < t; j++) o += p[i][j] * c.v[ki(c, bi, j, g, x)];
                            out[qi(c, bi, i, h, x)] = o;
                        }
                    // dP = dO Vᵀ, dS = P ∘ (dP − rowsum(P ∘ dP)), dQ = scale dS K, dK = scale dSᵀ Q, dV = Pᵀ dO.
                    for (int i = 0; i < t; i++) {
                        double[] dp = new double[t];
                        double rowDot = 0;
                        for (int j = 0; j <= i; j++) {
                            for (int x = 0; x < d; x++) dp[j] += (double) c.dOut[qi(c, bi, i, h, x)] * c.v[ki(c, bi, j, g, x)];
                            rowDot += p[i][j] * dp[j];
                        }
                        for (int j = 0; j <= i; j++) {
                            double ds = p[i][j] * (dp[j] - rowDot);
                            for (int x = 0; x < d; x++) {
                                dq[qi(c, bi, i, h, x)] += c.scale * ds * c.k[ki(c, bi, j, g, x)];
                                dk[ki(c, bi, j, g, x)] += c.scale * ds * c.q[qi(c, bi, i, h, x)];
                                dv[ki(c, bi, j, g, x)] += p[i][j] * c.dOut[qi(c, bi, i, h, x)];
                            }
                        }
                    }
                }
            return new Reference(out, dq, dk, dv);
        }

        private static int qi(Case c, int b, int t, int h, int x) {
            return ((b * c.t + t) * c.hq + h) * c.d + x;
        }

        private static int ki(Case c, int b, int t, int g, int x) {
            return ((b * c.t + t) * c.hkv + g) * c.d + x;
        }
    }

    @ParameterizedTest(name = "B={0} T={1} Hq={2} Hkv={3} D={4} tiles {5}x{6}")
    @CsvSource({
            "1, 1, 1, 1, 6, 64, 64",
            "2, 5, 4, 2, 20, 64, 64",
            "1, 33, 4, 1, 6, 64, 64",
            "1, 70, 2, 2, 20, 64, 64",  // T > tile: two query tiles, two key tiles
            "2, 70, 4, 2, 16, 32, 16",  // query tile larger than key tile: rows that see none of a key tile
            "1, 33, 4, 1, 20, 8, 32",   // key tile larger than query tile: whole query tiles before a key tile's start
            "1, 70, 4, 4, 6, 7, 5",     // tiles that divide nothing
            "1, 130, 2, 1, 64, 64, 64", // the production tile size with a ragged last tile
    })
    void forwardAndBackwardMatchNaiveReference(int b, int t, int hq, int hkv, int d, int qTile, int kvTile) {
        Case c = Case.random(b, t, hq, hkv, d, 31L * t + d + hq * 7 + hkv);
        Reference ref = Reference.of(c);
        for (BackwardPlan plan : new BackwardPlan[] {BackwardPlan.PER_KV_HEAD, BackwardPlan.PER_TILE}) {
            try (Scope s = Scope.open()) {
                Tensor q = Tensor.of(c.q, b, t, hq, d).requiresGrad(true);
                Tensor k = Tensor.of(c.k, b, t, hkv, d).requiresGrad(true);
                Tensor v = Tensor.of(c.v, b, t, hkv, d).requiresGrad(true);
                Tensor out = Attention.causal(q, k, v, c.scale, qTile, kvTile, plan);
                assertArrayEquals(new int[] {b, t, hq, d}, out.shape());
                assertClose("out", ref.out, out.toArray());
                Autograd.backward(out, Tensor.of(c.dOut, b, t, hq, d));
                assertClose(plan + " dq", ref.dq, q.grad().toArray());
                assertClose(plan + " dk", ref.dk, k.grad().toArray());
                assertClose(plan + " dv", ref.dv, v.grad().toArray());
                q.clearGrad();
                k.clearGrad();
                v.clearGrad();
            }
        }
    }

    @Test
    void publicEntryPointUsesProductionTilesAndMatchesReference() {
        Case c = Case.random(1, 150, 4, 2, 32, 7);
        Reference ref = Reference.of(c);
        try (Scope s = Scope.open()) {
            Tensor q = Tensor.of(c.q, 1, 150, 4, 32);
            Tensor k = Tensor.of(c.k, 1, 150, 2, 32);
            Tensor v = Tensor.of(c.v, 1, 150, 2, 32);
            assertClose("out", ref.out, Attention.causal(q, k, v, c.scale).toArray());
        }
    }

    @Test
    void acceptsViewsOfProjectionOutputsAndOnlyReturnsRequestedGradients() {
        Case c = Case.random(2, 9, 2, 1, 8, 3);
        Reference ref = Reference.of(c);
        try (Scope s = Scope.open()) {
            // q as the projection produces it: [B, T, Hq*D], viewed as heads.
            Tensor qFlat = Tensor.of(c.q, 2, 9, 16).requiresGrad(true);
            Tensor k = Tensor.of(c.k, 2, 9, 1, 8);
            Tensor v = Tensor.of(c.v, 2, 9, 1, 8).requiresGrad(true);
            Tensor out = Attention.causal(qFlat.view(2, 9, 2, 8), k, v, c.scale);
            Autograd.backward(out, Tensor.of(c.dOut, 2, 9, 2, 8));
            assertClose("dq", ref.dq, qFlat.grad().toArray());
            assertClose("dv", ref.dv, v.grad().toArray());
            assertNull(k.grad());
            qFlat.clearGrad();
            v.clearGrad();
        }
    }

    /**
     * Scores of magnitude ~100: exp without the running maximum would overflow, and the maximum
     * changes from tile to tile, so the rescaling of partial rows is exercised.
     */
    @Test
    void largeScoresUseTheRunningMaximum() {
        Case base = Case.random(1, 45, 2, 1, 16, 17);
        Case c = new Case(base.b(), base.t(), base.hq(), base.hkv(), base.d(), base.q(), base.k(), base.v(), base.dOut(), 8f);
        Reference ref = Reference.of(c);
        try (Scope s = Scope.open()) {
            Tensor q = Tensor.of(c.q(), 1, 45, 2, 16).requiresGrad(true);
            Tensor k = Tensor.of(c.k(), 1, 45, 1, 16).requiresGrad(true);
            Tensor v = Tensor.of(c.v(), 1, 45, 1, 16).requiresGrad(true);
            Tensor out = Attention.causal(q, k, v, c.scale(), 8, 8);
            assertClose("out", ref.out, out.toArray());
            Autograd.backward(out, Tensor.of(c.dOut(), 1, 45, 2, 16));
            assertClose("dq", ref.dq, q.grad().toArray());
            assertClose("dk", ref.dk, k.grad().toArray());
            assertClose("dv", ref.dv, v.grad().toArray());
            q.clearGrad();
            k.clearGrad();
            v.clearGrad();
        }
    }

    @Test
    void emptySequenceGivesEmptyOutput() {
        try (Scope s = Scope.open()) {
            Tensor q = Tensor.zeros(2, 0, 4, 8).requiresGrad(true), kv = Tensor.zeros(2, 0, 2, 8).requiresGrad(true);
            Tensor out = Attention.causal(q, kv, kv, 1f);
            assertArrayEquals(new int[] {2, 0, 4, 8}, out.shape());
            Autograd.backward(out, Tensor.zeros(2, 0, 4, 8));
            assertEquals(0, q.grad().numel());
            q.clearGrad();
            kv.clearGrad();
        }
    }

    @Test
    void tilesKeepEveryTileProductOnOneOpenBlasThread() {
        assertArrayEquals(new int[] {64, 64}, Attention.tiles(64));
        assertArrayEquals(new int[] {64, 32}, Attention.tiles(128));
        assertArrayEquals(new int[] {32, 32}, Attention.tiles(256));
        assertArrayEquals(new int[] {64, 64}, Attention.tiles(6));
        for (int d = 1; d <= 1024; d++) {
            int[] t = Attention.tiles(d);
            assertTrue(t[0] >= t[1] && t[1] >= 16 && t[0] <= 64, "tiles for D=" + d);
            if ((long) t[0] * t[1] * d > 4 * 65536 && !(t[0] == 16 && t[1] == 16))
                fail("tile product " + t[0] + "x" + t[1] + "x" + d + " exceeds OpenBLAS's single-thread size");
        }
    }

    @Test
    void resultsAreBitwiseRepeatable() {
        Case c = Case.random(2, 100, 4, 2, 24, 11);
        try (Scope s = Scope.open()) {
            float[][] first = null;
            for (int run = 0; run < 4; run++) {
                BackwardPlan plan = run < 2 ? BackwardPlan.PER_KV_HEAD : BackwardPlan.PER_TILE;
                if (run == 2) first = null;
                Tensor q = Tensor.of(c.q, 2, 100, 4, 24).requiresGrad(true);
                Tensor k = Tensor.of(c.k, 2, 100, 2, 24).requiresGrad(true);
                Tensor v = Tensor.of(c.v, 2, 100, 2, 24).requiresGrad(true);
                Tensor out = Attention.causal(q, k, v, c.scale, 32, 32, plan);
                float[] o = out.toArray();
                Autograd.backward(out, Tensor.of(c.dOut, 2, 100, 4, 24));
                float[][] now = {o, q.grad().toArray(), k.grad().toArray(), v.grad().toArray()};
                q.clearGrad();
                k.clearGrad();
                v.clearGrad();
                if (first == null) first = now;
                else for (int i = 0; i < now.length; i++) assertArrayEquals(first[i], now[i], plan + ": result " + i + " differs between runs");
            }
        }
    }

    @Test
    void withoutGradientsKeepsOnlyTheOutput() {
        Case c = Case.random(1, 40, 2, 2, 16, 5);
        try (Scope s = Scope.open()) {
            Tensor q = Tensor.of(c.q, 1, 40, 2, 16), k = Tensor.of(c.k, 1, 40, 2, 16), v = Tensor.of(c.v, 1, 40, 2, 16);
            long before = MemoryPool.host().liveBytes();
            Tensor out = Attention.causal(q, k, v, c.scale);
            assertTrue(out.isLeaf());
            // The log-sum-exp and the scratch tiles went back to the pool; only the output is live.
            assertEquals(out.numel() * 4, MemoryPool.host().liveBytes() - before);
        }
    }

    @Test
    void rejectsBadShapesWithClearMessages() {
        try (Scope s = Scope.open()) {
            Tensor q = Tensor.zeros(1, 4, 4, 8), kv = Tensor.zeros(1, 4, 2, 8);
            assertMessage("q must be 4-D", () -> Attention.causal(Tensor.zeros(4, 4, 8), kv, kv, 1f));
            assertMessage("k must be 4-D", () -> Attention.causal(q, Tensor.zeros(4, 2, 8), kv, 1f));
            assertMessage("must have the same shape", () -> Attention.causal(q, kv, Tensor.zeros(1, 4, 1, 8), 1f));
            assertMessage("B, T and D must agree", () -> Attention.causal(q, Tensor.zeros(1, 5, 2, 8), Tensor.zeros(1, 5, 2, 8), 1f));
            assertMessage("B, T and D must agree", () -> Attention.causal(q, Tensor.zeros(1, 4, 2, 6), Tensor.zeros(1, 4, 2, 6), 1f));
            assertMessage("4 query heads must be a multiple of the 3 key/value heads",
                    () -> Attention.causal(q, Tensor.zeros(1, 4, 3, 8), Tensor.zeros(1, 4, 3, 8), 1f));
            assertMessage("scale must be finite", () -> Attention.causal(q, kv, kv, Float.NaN));
        }
    }

    private static void assertMessage(String expected, Runnable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().contains(expected), "message '" + e.getMessage() + "' should contain '" + expected + "'");
    }

    /** Max error relative to the largest reference magnitude; float32 tiles against double should agree to ~1e-6. */
    static void assertClose(String what, double[] ref, float[] got) {
        assertClose(what, ref, got, 2e-5);
    }

    static void assertClose(String what, double[] ref, float[] got, double tolerance) {
        assertEquals(ref.length, got.length, what + " length");
        double scale = 1e-3, worst = 0;
        int at = -1;
        for (double r : ref) scale = Math.max(scale, Math.abs(r));
        for (int i = 0; i < ref.length; i++) {
            double e = Math.abs(ref[i] - got[i]);
            if (!(e <= worst)) { worst = e; at = i; }
        }
        assertTrue(worst / scale < tolerance, what + ": error " + worst + " (relative " + worst / scale + ") at " + at
                + ": expected " + (at < 0 ? 0 : ref[at]) + " got " + (at < 0 ? 0 : got[at]));
    }
}
