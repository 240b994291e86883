package dev.weft.trainer;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.core.ops.Elementwise;
import dev.weft.optimizers.GradientClipping;
import dev.weft.optimizers.Optimizer;
import dev.weft.parallel.GradientSync;
import dev.weft.trainer.data.BatchSampler;
import dev.weft.trainer.data.MicroBatches;

/**
 * One optimizer step: the micro-batch loop (forward, loss, backward on each of grad_accum
 * micro-batches), the gradient sync, global-norm clipping over the data-parallel group, the
 * optimizer step and, under ZeRO, the re-gather of the weights. Times each phase.
 */
public final class StepRunner {
    /** Time spent per phase, in nanoseconds, over the steps run. */
    public record Timing(long data, long forward, long backward, long optimizer, long steps) {}

    /** What a step produced: the mean loss over the global batch and the gradient norm before clipping. */
    public record Step(double loss, double gradNorm) {}

    private final Llama model;
    private final MicroBatches sampler;
    private final GradientSync sync;
    private final Parallelize.Loss lossFn;
    private final Optimizer optimizer;
    private final double gradClip;
    private final int accum, dpRank;
    private final PipelineRunner pipeline; // null: this rank runs the whole model
    private long tData, tForward, tBackward, tOptimizer, steps;

    public StepRunner(Llama model, MicroBatches sampler, GradientSync sync, Parallelize.Loss loss, Optimizer optimizer, double gradClip, int accum,
                      int dpRank) {
        this(model, sampler, sync, loss, optimizer, gradClip, accum, dpRank, null);
    }

    StepRunner(Llama model, MicroBatches sampler, GradientSync sync, Parallelize.Loss loss, Optimizer optimizer, double gradClip, int accum,
               int dpRank, PipelineRunner pipeline) {
        this.pipeline = pipeline;
        this.model = model;
        this.sampler = sampler;
        this.sync = sync;
        this.lossFn = loss;
        this.optimizer = optimizer;
        this.gradClip = gradClip;
        this.accum = accum;
        this.dpRank = dpRank;
    }

    private Runnable beforeUpdate = () -> {};

    /** Runs {@code r} just before each optimizer step writes the weights and state (a snapshot copy still reading them waits there). */
    void beforeUpdate(Runnable r) {
        this.beforeUpdate = r;
    }

    public Step run(long step, double lr) {
        double lossSum = 0;
        sync.beginStep();
        if (pipeline != null) { // the schedule interleaves the micro-batches' forwards and backwards: timed as one
            long a = System.nanoTime();
            lossSum = pipeline.run(step);
            tBackward += System.nanoTime() - a;
        }
        for (int micro = 0; pipeline == null && micro < accum; micro++) {
            sync.beginMicroStep(micro == accum - 1);
            long a = System.nanoTime();
            BatchSampler.Batch b = sampler.batch(step, micro, dpRank);
            long bt = System.nanoTime();
            tData += bt - a;
            try (Scope s = Scope.open()) {
                Tensor logits = model.forward(b.inputs(), b.rows(), b.seqLen());
                Tensor loss = lossFn.of(logits, b.targets());
                lossSum += loss.item();
                Tensor scaled = accum == 1 ? loss : Elementwise.scale(loss, 1f / accum);
                long ft = System.nanoTime();
                tForward += ft - bt;
                scaled.backward();
                tBackward += System.nanoTime() - ft;
            }
        }
        long o = System.nanoTime();
        sync.finishGradients();
        lossSum = sync.mean(lossSum);
        double norm = GradientClipping.clip(sync.normParameters().values(), sync.optimizerParameters().values(), gradClip, sync.groupSum());
        beforeUpdate.run();
        optimizer.step(lr);
        sync.afterOptimizerStep();
        tOptimizer += System.nanoTime() - o;
        steps++;
        return new Step(lossSum / accum, norm);
    }

    public Timing timing() {
        return new Timing(tData, tForward, tBackward, tOptimizer, steps);
    }
}
