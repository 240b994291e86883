package dev.weft.launcher;

import dev.weft.core.Bytes;
import dev.weft.core.DType;
import dev.weft.core.MemoryPool;
import dev.weft.core.ProcessMemory;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.core.model.LlamaConfig;
import dev.weft.core.ops.Matmul;
import dev.weft.optimizers.AdamW;
import dev.weft.parallel.GradientSync;
import dev.weft.trainer.Parallelize;
import dev.weft.trainer.StepRunner;
import dev.weft.trainer.data.BatchSampler;
import dev.weft.trainer.data.MicroBatches;
import org.bytedeco.openblas.global.openblas;
import org.bytedeco.javacpp.FloatPointer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.SplittableRandom;
import java.util.concurrent.Callable;

/**
 * {@code weft bench model}: the single-process training step on the reference config, with every
 * figure set against a baseline measured in the same run (sgemm called directly through the
 * JavaCPP OpenBLAS API).
 */
@Command(name = "model", mixinStandardHelpOptions = true,
        description = {"Benchmark the training step: our GEMM path vs OpenBLAS called directly, the step-time split,",
                "tokens/s and MFU against the sgemm throughput measured in the same run."})
public final class ModelBenchCommand implements Callable<Integer> {
    @Option(names = "--steps", defaultValue = "10", description = "Timed steps (default: ${DEFAULT-VALUE})")
    int steps;
    @Option(names = "--warmup", defaultValue = "2", description = "Untimed warm-up steps (default: ${DEFAULT-VALUE})")
    int warmup;
    @Option(names = "--layers", defaultValue = "4") int layers;
    @Option(names = "--d-model", defaultValue = "256") int dModel;
    @Option(names = "--heads", defaultValue = "4") int heads;
    @Option(names = "--kv-heads", defaultValue = "4") int kvHeads;
    @Option(names = "--ffn", defaultValue = "768") int ffn;
    @Option(names = "--seq", defaultValue = "256") int seq;
    @Option(names = "--vocab", defaultValue = "4096") int vocab;
    @Option(names = "--batch", defaultValue = "8") int batch;

    @Override
    public Integer call() {
        if (steps < 1 || warmup < 0) throw new IllegalArgumentException("--steps must be >= 1 and --warmup >= 0");
        LlamaConfig c = new LlamaConfig(layers, dModel, heads, kvHeads, ffn, vocab, seq, 10000f, 1e-5f, false, 0.02);
        System.out.printf("reference config: %d layers, d_model %d, %d heads (%d kv), SwiGLU ffn %d, seq %d, vocab %d, batch %d, AdamW%n",
                layers, dModel, heads, kvHeads, ffn, seq, vocab, batch);
        // weft's own measurements first: OpenBLAS's worker threads keep spinning for a while after a
        // multi-threaded call and would steal the cores from whatever runs next.
        StepFigures step = stepBench(c);
        int rows = batch * seq;
        int[][] shapes = {{rows, c.dModel(), c.dModel()}, {rows, c.ffnDim(), c.dModel()}, {rows, c.dModel(), c.ffnDim()}, {rows, c.vocab(), c.dModel()}};
        long[] ours = new long[shapes.length], direct = new long[shapes.length];
        for (int i = 0; i < shapes.length; i++) ours[i] = oursLinear(shapes[i]);
        double sgemm = withBlasThreads(() -> {
            for (int i = 0; i < shapes.length; i++) direct[i] = directLinear(shapes[i]);
            return squareSgemm();
        });

        System.out.printf("%nsgemm baseline (OpenBLAS called directly via JavaCPP, its threads on %d cores, 2048^3): %.1f GFLOP/s%n",
                dev.weft.core.kernels.Parallel.threads(), sgemm);
        System.out.println("\nGEMM path: x[M,K] . W[N,K]^T (the model's projections), weft's linear() against cblas_sgemm called directly");
        System.out.println("| M x N x K | weft linear GFLOP/s | OpenBLAS direct GFLOP/s | ratio |");
        System.out.println("|---|---|---|---|");
        for (int i = 0; i < shapes.length; i++) {
            double flops = 2.0 * shapes[i][0] * shapes[i][1] * shapes[i][2];
            System.out.printf("| %d x %d x %d | %.1f | %.1f | %.3f |%n", shapes[i][0], shapes[i][1], shapes[i][2], flops / ours[i],
                    flops / direct[i], (double) direct[i] / ours[i]);
        }
        step.print(c, batch, seq, sgemm);
        return 0;
    }

    /**
     * Runs {@code body} with OpenBLAS's own threading on all cores, its default configuration when
     * called directly (weft keeps it single-threaded and splits products over its own pool).
     */
    static <T> T withBlasThreads(java.util.function.Supplier<T> body) {
        dev.weft.core.kernels.Gemm.setBlasThreads(dev.weft.core.kernels.Parallel.threads());
        try {
            return body.get();
        } finally {
            dev.weft.core.kernels.Gemm.setBlasThreads(1);
        }
    }

    /** Throughput of one large square sgemm, called straight through JavaCPP with OpenBLAS's threads on all cores. */
    private static double squareSgemm() {
        int n = 2048;
        try (FloatPointer a = new FloatPointer(n * n); FloatPointer b = new FloatPointer(n * n); FloatPointer cc = new FloatPointer(n * n)) {
            fill(a, n * n);
            fill(b, n * n);
            openblas.cblas_sgemm(openblas.CblasRowMajor, openblas.CblasNoTrans, openblas.CblasNoTrans, n, n, n, 1f, a, n, b, n, 0f, cc, n);
            long best = Long.MAX_VALUE;
            for (int r = 0; r < 5; r++) {
                long t = System.nanoTime();
                openblas.cblas_sgemm(openblas.CblasRowMajor, openblas.CblasNoTrans, openblas.CblasNoTrans, n, n, n, 1f, a, n, b, n, 0f, cc, n);
                best = Math.min(best, System.nanoTime() - t);
            }
            return 2.0 * n * n * n / best;
        }
    }

    /** Best time of weft's linear() (tensor allocation, FFM downcall, panel split) on x[M,K] . W[N,K]^T. */
    private static long oursLinear(int[] s) {
        int m = s[0], n = s[1], k = s[2];
        try (Scope sc = Scope.open()) {
            Tensor x = Tensor.full(0.5f, m, k), w = Tensor.full(0.25f, n, k);
            Matmul.linear(x, w).close();
            return best(() -> Matmul.linear(x, w).close());
        }
    }

    /** Best time of cblas_sgemm called through JavaCPP on the same product. */
    private static long directLinear(int[] s) {
        int m = s[0], n = s[1], k = s[2];
        try (FloatPointer a = new FloatPointer((long) m * k); FloatPointer b = new FloatPointer((long) n * k); FloatPointer cc = new FloatPointer((long) m * n)) {
            fill(a, (long) m * k);
            fill(b, (long) n * k);
            return best(() -> openblas.cblas_sgemm(openblas.CblasRowMajor, openblas.CblasNoTrans, openblas.CblasTrans, m, n, k, 1f, a, k, b, k, 0f, cc, n));
        }
    }

    /** Per-phase totals of the timed steps. */
    private record StepFigures(long[] nanos, int steps, int warmup, java.util.Map<String, Long> backwardByOp, long peakLive, long peakReserved,
                               long weights, long optimizerState) {
        void print(LlamaConfig c, int batch, int seq, double sgemm) {
            double total = (nanos[0] + nanos[1] + nanos[2] + nanos[3]) / 1e9 / steps;
            double flops = c.trainingFlops(batch, seq);
            System.out.printf("%nstep time split over %d steps (after %d warm-up):%n", steps, warmup);
            String[] names = {"data", "forward", "backward", "optimizer"};
            for (int i = 0; i < 4; i++) System.out.printf("  %-10s %8.1f ms  (%4.1f%%)%n", names[i], nanos[i] / 1e6 / steps, 100.0 * nanos[i] / (total * 1e9 * steps));
            System.out.printf("  %-10s %8.1f ms%n", "total", total * 1e3);
            if (!backwardByOp.isEmpty()) {
                System.out.println("  backward by op (-Dweft.profile=true):");
                backwardByOp.entrySet().stream().sorted((x, y) -> Long.compare(y.getValue(), x.getValue()))
                        .forEach(e -> System.out.printf("    %-22s %8.1f ms%n", e.getKey(), e.getValue() / 1e6 / (warmup + steps)));
            }
            double achieved = flops / total / 1e9;
            System.out.printf("%nnon-embedding parameters: %,d; model FLOPs per step: %.2f GFLOP%n", c.nonEmbeddingParameters(), flops / 1e9);
            System.out.printf("tokens/s: %,.0f%n", batch * seq / total);
            System.out.printf("achieved: %.1f GFLOP/s; MFU vs measured sgemm (%.1f GFLOP/s): %.1f%%%n", achieved, sgemm, 100 * achieved / sgemm);
            System.out.printf("memory: peak live %s, peak reserved %s (weights %s, optimizer state %s); %s%n", Bytes.human(peakLive),
                    Bytes.human(peakReserved), Bytes.human(weights), Bytes.human(optimizerState), ProcessMemory.summary());
        }
    }

    /** The trainer's own step (StepRunner, one process) on random tokens, timed per phase. */
    private StepFigures stepBench(LlamaConfig c) {
        Llama model = new Llama(c, 1);
        AdamW opt = new AdamW(model.namedParameters(), AdamW.Settings.defaults());
        SplittableRandom rnd = new SplittableRandom(7);
        MicroBatches random = (step, micro, rank) -> {
            int[] ids = new int[batch * seq], targets = new int[batch * seq];
            for (int j = 0; j < ids.length; j++) {
                ids[j] = rnd.nextInt(c.vocab());
                targets[j] = rnd.nextInt(c.vocab());
            }
            return new BatchSampler.Batch(ids, targets, batch, seq);
        };
        GradientSync none = GradientSync.none(model.namedParameters());
        StepRunner runner = new StepRunner(model, random, none, Parallelize.Loss.CROSS_ENTROPY, opt, 1.0, 1, 0);
        MemoryPool.host().resetPeaks();
        for (int i = 0; i < warmup; i++) runner.run(i, 1e-4);
        StepRunner.Timing before = runner.timing();
        for (int i = 0; i < steps; i++) runner.run(warmup + i, 1e-4);
        StepRunner.Timing after = runner.timing();
        long[] t = {after.data() - before.data(), after.forward() - before.forward(), after.backward() - before.backward(),
                after.optimizer() - before.optimizer()};
        StepFigures f = new StepFigures(t, steps, warmup, dev.weft.core.Autograd.backwardProfile(), MemoryPool.host().peakLiveBytes(),
                MemoryPool.host().peakReservedBytes(), model.parameterCount() * DType.F32.bytes(), opt.stateBytes());
        opt.close();
        model.close();
        return f;
    }

    private static long best(Runnable r) {
        long best = Long.MAX_VALUE;
        for (int i = 0; i < 7; i++) {
            long t = System.nanoTime();
            r.run();
            best = Math.min(best, System.nanoTime() - t);
        }
        return best;
    }

    private static void fill(FloatPointer p, long n) {
        for (long i = 0; i < n; i++) p.put(i, (i % 17) * 0.01f);
    }
}
