package dev.weft.core.ops;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.FlashAttention;
import dev.weft.core.kernels.Gemm;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

import java.util.Random;

/**
 * A benchmark, not a test: prints attention forward and backward throughput on the reference shape
 * next to the throughput of one large sgemm measured in the same run. Runs only when asked:
 * {@code ./build test -pl core -Dtest=AttentionBenchmarkTest -Dweft.bench=true}
 * (optionally {@code -Dweft.bench.tiles=64x64,32x32,...}, {@code -Dweft.bench.plan=PER_TILE}, and the shape
 * through {@code weft.bench.b/t/hq/hkv/d}).
 */
@EnabledIfSystemProperty(named = "weft.bench", matches = "true")
class AttentionBenchmarkTest {

    @Test
    void attentionAgainstSgemm() {
        int b = Integer.getInteger("weft.bench.b", 8), t = Integer.getInteger("weft.bench.t", 256);
        int hq = Integer.getInteger("weft.bench.hq", 4), hkv = Integer.getInteger("weft.bench.hkv", 4);
        int d = Integer.getInteger("weft.bench.d", 64);
        FlashAttention.BackwardPlan plan = FlashAttention.BackwardPlan.valueOf(System.getProperty("weft.bench.plan", "AUTO"));
        String tiles = System.getProperty("weft.bench.tiles", Attention.tiles(d)[0] + "x" + Attention.tiles(d)[1]);
        try (Scope s = Scope.open()) {
            double gemm = sgemmGflops(1024);
            Random rnd = new Random(1);
            Tensor q = random(rnd, b, t, hq, d), k = random(rnd, b, t, hkv, d), v = random(rnd, b, t, hkv, d);
            Tensor dOut = random(rnd, b, t, hq, d);
            Tensor out = Tensor.empty(b, t, hq, d), lse = Tensor.empty(b, hq, t);
            Tensor dq = Tensor.empty(b, t, hq, d), dk = Tensor.empty(b, t, hkv, d), dv = Tensor.empty(b, t, hkv, d);
            FlashAttention.Shape shape = new FlashAttention.Shape(b, t, hq, hkv, d);
            float scale = (float) (1 / Math.sqrt(d));
            double fwdFlops = 4.0 * b * hq * t * (double) t * d / 2, bwdFlops = 2.5 * fwdFlops;
            System.out.printf("sgemm 1024^3: %.1f GFLOP/s%n", gemm);
            for (String tile : tiles.split(",")) {
                int qTile = Integer.parseInt(tile.split("x")[0]), kvTile = Integer.parseInt(tile.split("x")[1]);
                double fwd = bestSeconds(() -> FlashAttention.forward(shape, scale, qTile, kvTile, q.data(), k.data(), v.data(),
                        out.data(), lse.data()));
                double bwd = bestSeconds(() -> FlashAttention.backward(shape, scale, qTile, kvTile, plan, q.data(), k.data(), v.data(),
                        out.data(), lse.data(), dOut.data(), dq.data(), dk.data(), dv.data()));
                double fwdG = fwdFlops / fwd / 1e9, bwdG = bwdFlops / bwd / 1e9, allG = (fwdFlops + bwdFlops) / (fwd + bwd) / 1e9;
                System.out.printf("attention B=%d T=%d Hq=%d Hkv=%d D=%d tiles %dx%d, backward plan %s: forward %.3f ms (%.1f GFLOP/s), "
                                + "backward %.3f ms (%.1f GFLOP/s), fwd+bwd %.1f GFLOP/s = %.0f%% of sgemm%n",
                        b, t, hq, hkv, d, qTile, kvTile, plan, fwd * 1e3, fwdG, bwd * 1e3, bwdG, allG, 100 * allG / gemm);
            }
            System.out.printf("sgemm 1024^3 again: %.1f GFLOP/s%n", sgemmGflops(1024));
        }
    }

    private static double sgemmGflops(int n) {
        try (Scope s = Scope.open()) {
            Random rnd = new Random(2);
            Tensor a = random(rnd, n, n), bm = random(rnd, n, n), c = Tensor.empty(n, n);
            double sec = bestSeconds(() -> Gemm.sgemm(false, false, n, n, n, 1f, a.data(), 0, n, bm.data(), 0, n, 0f, c.data(), 0, n));
            return 2.0 * n * n * (double) n / sec / 1e9;
        }
    }

    /**
     * Best of many timed runs after a second of warm-up (so the JIT has compiled the vector loops),
     * in seconds. The best, not the mean, because the machine is shared and noise only adds time.
     */
    private static double bestSeconds(Runnable body) {
        long warmEnd = System.nanoTime() + 1_000_000_000L;
        while (System.nanoTime() < warmEnd) body.run();
        double best = Double.MAX_VALUE;
        for (int rep = 0; rep < 20; rep++) {
            long t0 = System.nanoTime();
            body.run();
            best = Math.min(best, (System.nanoTime() - t0) / 1e9);
        }
        return best;
    }

    private static Tensor random(Random rnd, int... shape) {
        float[] x = new float[Math.toIntExact(Tensor.numel(shape))];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        return Tensor.of(x, shape);
    }
}
