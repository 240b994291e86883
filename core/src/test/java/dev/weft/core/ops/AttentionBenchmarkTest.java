package dev.weft.core.ops;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.FlashAttention;
import dev.weft.core.kernels.Gemm;
import dev.weft.core.kernels.Parallel;
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
            Random rnd = new Random(1);
            int n = 1024;
            Tensor ga = random(rnd, n, n), gb = random(rnd, n, n), gc = Tensor.empty(n, n);
            Runnable gemm = () -> Gemm.sgemm(false, false, n, n, n, 1f, ga.data(), 0, n, gb.data(), 0, n, 0f, gc.data(), 0, n);
            Tensor q = random(rnd, b, t, hq, d), k = random(rnd, b, t, hkv, d), v = random(rnd, b, t, hkv, d);
            Tensor dOut = random(rnd, b, t, hq, d);
            Tensor out = Tensor.empty(b, t, hq, d), lse = Tensor.empty(b, hq, t);
            Tensor dq = Tensor.empty(b, t, hq, d), dk = Tensor.empty(b, t, hkv, d), dv = Tensor.empty(b, t, hkv, d);
            FlashAttention.Shape shape = new FlashAttention.Shape(b, t, hq, hkv, d);
            float scale = (float) (1 / Math.sqrt(d));
            double gemmFlops = 2.0 * n * n * (double) n;
            double fwdFlops = 4.0 * b * hq * t * (double) t * d / 2, bwdFlops = 2.5 * fwdFlops;
            for (String tile : tiles.split(",")) {
                int qTile = Integer.parseInt(tile.split("x")[0]), kvTile = Integer.parseInt(tile.split("x")[1]);
                Runnable fwd = () -> FlashAttention.forward(shape, scale, qTile, kvTile, q.data(), k.data(), v.data(), out.data(), lse.data());
                Runnable bwd = () -> FlashAttention.backward(shape, scale, qTile, kvTile, plan, q.data(), k.data(), v.data(),
                        out.data(), lse.data(), dOut.data(), dq.data(), dk.data(), dv.data());
                System.out.printf("B=%d T=%d Hq=%d Hkv=%d D=%d, tiles %dx%d, backward plan %s, %d threads%n",
                        b, t, hq, hkv, d, qTile, kvTile, plan, Parallel.threads());
                // Blocked: each kernel runs alone, the figure to compare kernels by. Interleaved: one
                // sgemm between attention calls, as in a training step; OpenBLAS's worker threads keep
                // spinning for a while after each threaded call and compete with the Java threads.
                double[] blocked = {bestOf(gemm), bestOf(fwd), bestOf(bwd)};
                report("blocked    ", blocked, gemmFlops, fwdFlops, bwdFlops);
                report("interleaved", bestInterleaved(gemm, fwd, bwd), gemmFlops, fwdFlops, bwdFlops);
                blocked[0] = bestOf(gemm);
                report("blocked    ", blocked, gemmFlops, fwdFlops, bwdFlops);
            }
        }
    }

    private static void report(String how, double[] best, double gemmFlops, double fwdFlops, double bwdFlops) {
        double gemmG = gemmFlops / best[0] / 1e9;
        double fwdG = fwdFlops / best[1] / 1e9, bwdG = bwdFlops / best[2] / 1e9;
        double allG = (fwdFlops + bwdFlops) / (best[1] + best[2]) / 1e9;
        System.out.printf("  %s: sgemm 1024^3 %.1f GFLOP/s; attention forward %.3f ms (%.1f GFLOP/s), backward %.3f ms "
                + "(%.1f GFLOP/s), fwd+bwd %.1f GFLOP/s = %.0f%% of sgemm%n", how, gemmG, best[1] * 1e3, fwdG, best[2] * 1e3, bwdG,
                allG, 100 * allG / gemmG);
    }

    private static double bestOf(Runnable body) {
        return bestInterleaved(body)[0];
    }

    /**
     * Best time of each body in seconds, after a second of warm-up of each (so the JIT has compiled
     * the vector loops). The bodies take turns, so that all of them see the same load on this
     * shared machine; the best, not the mean, because other work only ever adds time.
     */
    private static double[] bestInterleaved(Runnable... bodies) {
        for (Runnable body : bodies) {
            long warmEnd = System.nanoTime() + 1_000_000_000L;
            while (System.nanoTime() < warmEnd) body.run();
        }
        double[] best = new double[bodies.length];
        java.util.Arrays.fill(best, Double.MAX_VALUE);
        for (int round = 0; round < 40; round++) {
            for (int i = 0; i < bodies.length; i++) {
                long t0 = System.nanoTime();
                bodies[i].run();
                best[i] = Math.min(best[i], (System.nanoTime() - t0) / 1e9);
            }
        }
        return best;
    }

    private static Tensor random(Random rnd, int... shape) {
        float[] x = new float[Math.toIntExact(Tensor.numel(shape))];
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        return Tensor.of(x, shape);
    }
}
