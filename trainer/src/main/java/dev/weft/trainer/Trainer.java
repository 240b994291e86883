package dev.weft.trainer;

import dev.weft.core.Autograd;
import dev.weft.core.Bytes;
import dev.weft.core.MemoryPool;
import dev.weft.core.ProcessMemory;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.optimizers.ParameterGroups;
import dev.weft.parallel.DeviceMesh;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.ReduceOp;
import dev.weft.trainer.config.TrainConfig;
import dev.weft.trainer.data.BatchSampler;
import dev.weft.trainer.data.Prepare;
import dev.weft.trainer.data.PreparedData;
import dev.weft.trainer.data.TokenShard;
import dev.weft.trainer.data.Tokenizer;
import dev.weft.trainer.data.UnigramBaseline;
import dev.weft.trainer.schedule.LrSchedule;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The training loop of one rank (or one process), built from parts: the parallel layout
 * ({@link Parallelize}), the step ({@link StepRunner}), the training state that saves and restores
 * itself ({@link TrainingState}) and the reporter ({@link Reporter}). It does gradient accumulation over micro-batches, global-norm
 * clipping, the optimizer under a warmup-cosine schedule, periodic evaluation and checkpoints, metrics
 * as JSONL and a loss-curve PNG, and a generated sample at the end.
 *
 * <p>Every input to a step is a pure function of (config, step): the batch comes from the
 * sampler by step index and the learning rate from the schedule. Resuming from a checkpoint
 * therefore continues bit-for-bit as if the run had never stopped.
 */
public final class Trainer implements AutoCloseable {
    /**
     * What a run produced. {@code trainLosses} holds the steps this call ran; {@code valCurve} the
     * {step, val loss} points of the whole run (earlier ones read back from metrics.jsonl on resume).
     */
    public record Result(long steps, double lastTrainLoss, double lastValLoss, double unigramBaseline, String sample,
                         List<Double> trainLosses, List<double[]> valCurve, Path outDir) {}


    private final TrainConfig cfg;
    private final PrintStream out;
    private final Tokenizer tokenizer;
    private final TokenShard trainShard, valShard;
    private final BatchSampler trainSampler, valSampler;
    private final Llama model;
    private final LrSchedule schedule;
    /** Null on a single process. */
    private final DistributedContext dist;
    private final DeviceMesh mesh;
    private final Parallelize.Layout layout;
    private final ParameterGroups optimizer;
    private final StepRunner steps;
    private final PipelineRunner pipeline; // null without pipeline parallelism
    private final TrainingState state;
    private final Offloading offloading; // null: nothing offloaded
    private final long predictedPeak; // what offload: auto's plan predicted; 0 without it
    private final Snapshotter snapshots; // null: no in-memory snapshots

    public Trainer(TrainConfig cfg, PrintStream out) {
        this(cfg, out, null);
    }

    /**
     * A trainer that runs as one data-parallel rank of {@code dist} (null: a single process).
     * train.micro_batch is per rank: the global batch is micro_batch x grad_accum x world size, and
     * each rank reads its own disjoint slice of it.
     */
    public Trainer(TrainConfig cfg, PrintStream out, DistributedContext dist) {
        OffloadPlanning.Auto auto = cfg.offload().auto() ? OffloadPlanning.auto(cfg, dist == null ? null : dist.group(), out) : null;
        if (auto != null) {
            cfg = auto.config();
            if (dist == null || dist.isLeader()) out.println(auto.line());
        }
        this.predictedPeak = auto == null ? 0 : auto.predictedPeak();
        this.cfg = cfg;
        this.dist = dist;
        int world = dist == null ? 1 : dist.size();
        this.out = out;
        this.tokenizer = Tokenizer.byName(cfg.data().tokenizer());
        if (tokenizer.vocabSize() > cfg.model().vocab())
            throw new IllegalArgumentException("model.vocab = " + cfg.model().vocab() + " is smaller than the vocabulary of tokenizer '"
                    + tokenizer.name() + "' (" + tokenizer.vocabSize() + "); set model.vocab >= " + tokenizer.vocabSize());
        PreparedData prepared = Prepare.cached(cfg.data().text(), cfg.data().cacheDir(), tokenizer, cfg.data().valFraction(), out);
        this.trainShard = TokenShard.open(prepared.train());
        this.valShard = TokenShard.open(prepared.val());
        TrainConfig.Train t = cfg.train();
        DeviceMesh.Shape shape = cfg.meshShape(world);
        // the data-parallel replicas read disjoint slices of the global batch; tensor-parallel peers read the same one
        this.trainSampler = new BatchSampler(trainShard, t.seqLen(), t.microBatch(), shape.dp(), t.gradAccum(), t.seed());
        // every rank evaluates the global batch geometry, so val loss matches a single process on the same global batch
        this.valSampler = new BatchSampler(valShard, t.seqLen(), t.microBatch() * shape.dp(), 1, t.seed());
        this.mesh = dist == null ? null : new DeviceMesh(dist.group(), shape);
        if (dist != null && dist.isLeader()) {
            out.print(DeviceMesh.table(shape) + "data parallel: " + describeStage(cfg.parallel().zero()) + "\n");
            if (shape.tp() > 1)
                out.printf("tensor parallel: tp %d, column-parallel q/k/v/gate/up, row-parallel o/down, vocabulary-parallel embedding and head%s%n", shape.tp(),
                        cfg.parallel().sequenceParallel() ? ", sequence parallel" : "");
        }
        this.model = new Llama(cfg.model(), t.seed());
        TrainConfig.Optim o = cfg.optimizer();
        this.offloading = Offloading.create(cfg.offload());
        try {
            this.layout = Parallelize.apply(model, mesh, cfg, offloading);
        } catch (RuntimeException | Error e) {
            if (offloading != null) offloading.close(); // no trainer to close: the disk tier's threads and scratch file go now
            throw e;
        }
        if (offloading != null && leader()) out.println("offload: " + offloading.describe());
        this.optimizer = layout.optimizer();
        this.schedule = LrSchedule.warmupCosine(o.lr(), o.minLr(), o.warmupSteps(), t.steps());
        Parallelize.Pipeline p = layout.pipeline();
        int dpIndex = mesh == null ? 0 : mesh.dpIndex();
        int seqBlocks = shape.tp() > 1 && cfg.parallel().sequenceParallel() ? shape.tp() : 1;
        this.pipeline = p == null ? null
                : new PipelineRunner(model, p.schedule(), mesh.ppIndex(), mesh.pp(), p.layers(), p.sync(), layout.loss(), trainSampler, dpIndex, t.gradAccum(), t.microBatch(),
                        t.seqLen(), seqBlocks);
        if (p != null && leader()) out.printf("pipeline: %s schedule, %d micro-batches; %s%n", p.schedule().name(), t.gradAccum(), PipelineStages.describe(p.layers()));
        this.steps = new StepRunner(model, trainSampler, layout.sync(), layout.loss(), optimizer, o.gradClip(), t.gradAccum(), dpIndex, pipeline);
        this.state = new TrainingState(model, mesh, layout, cfg.parallel().zero(), offloading);
        this.snapshots = cfg.snapshot().enabled() ? Snapshotter.open(cfg, dist, state, offloading == null, tokenizer.name()) : null;
        if (snapshots != null) {
            steps.beforeUpdate(snapshots::beforeUpdate);
            if (leader()) out.println(snapshots.describe());
        }
    }

    private static String describeStage(int zero) {
        return switch (zero) {
            case 0 -> "DDP (every rank holds the whole training state)";
            case 1 -> "ZeRO-1 (optimizer state sharded)";
            case 2 -> "ZeRO-2 (optimizer state and gradients sharded)";
            default -> "ZeRO-3 (optimizer state, gradients and parameters sharded)";
        };
    }

    private boolean leader() {
        return dist == null || dist.isLeader();
    }

    /** Tokens one optimizer step consumes over all ranks. */
    private long tokensPerStep() {
        return cfg.train().tokensPerStep() * (mesh == null ? 1 : mesh.shape().dp());
    }

    public Llama model() {
        return model;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    /** The optimizer (its groups and state bytes). */
    public ParameterGroups optimizer() {
        return optimizer;
    }

    public StepRunner.Timing timing() {
        return steps.timing();
    }

    /** Trains to {@code train.steps}, resuming from the newest checkpoint when {@code resume} is set. */
    public Result run(boolean resume) {
        return run(resume, 0);
    }

    /**
     * Trains from the newest checkpoint (when {@code resume}) and stops after step {@code stopAfter}
     * (0: run to train.steps), saving a checkpoint there, as an interrupted run would have. The
     * learning-rate schedule still spans train.steps, so a later {@code --resume} continues the same run.
     */
    public Result run(boolean resume, long stopAfter) {
        MemoryPool pool = MemoryPool.host();
        long previousBudget = pool.budget();
        if (cfg.train().memoryBudgetMiB() > 0) pool.setBudget(cfg.train().memoryBudgetMiB() << 20);
        try {
            return train(resume, stopAfter);
        } finally {
            pool.setBudget(previousBudget);
        }
    }

    private Result train(boolean resume, long stopAfter) {
        TrainConfig.Train t = cfg.train();
        MemoryPool.host().resetPeaks(); // the peak printed at the end is training's own, not a planner probe's
        Path outDir = t.outDir();
        long start = 0, tokensSeen = 0;
        try {
            Files.createDirectories(outDir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create output directory " + outDir + ": " + e.getMessage(), e);
        }
        if (mesh != null && dist.ranksPerNode() < dist.size()) {
            boolean shared = SharedDirectory.probe(outDir, mesh.world(), dist.ranksPerNode());
            state.outDirPerNode(dist.ranksPerNode(), shared);
            if (leader()) out.println("checkpoints: " + (shared ? "one copy in the shared " + outDir
                    : "each node writes its own ranks' state to its own " + outDir + " (the nodes share no filesystem)"));
        }
        if (resume) {
            Checkpoint.State st = resume(outDir, t.seed());
            if (st != null) {
                start = st.step();
                tokensSeen = st.tokensSeen();
            }
        }
        if (snapshots != null) {
            try {
                snapshots.discardAfter(start); // a fresh run, or one resumed from disk, never restores another run's later steps
            } catch (IOException e) {
                throw new UncheckedIOException("snapshot: cannot clear the stores of job " + cfg.snapshot().job() + ": " + e.getMessage(), e);
            }
        }
        if (start == 0 && cfg.initFrom() != null) { // fine-tuning (model.init_from): weights only, a fresh optimizer
            Path from = InitFrom.modelDir(cfg.initFrom(), cfg.model());
            state.initWeights(from);
            out.println("weft: weights from " + from);
        }
        double baseline = UnigramBaseline.crossEntropy(trainShard, valShard);
        printHeader(baseline);

        List<Double> losses = new ArrayList<>();
        double lastLoss = Double.NaN, lastVal = Double.NaN;
        long trainNanos = 0;
        try (Reporter report = new Reporter(out, outDir, t.steps(), leader(), resume ? start : -1)) {
            long end = stopAfter > 0 ? Math.min(stopAfter, t.steps()) : t.steps();
            for (long step = start; step < end; step++) {
                if (dist != null) dist.beforeStep().accept(step);
                long t0 = System.nanoTime();
                double lr = schedule.lr(step);
                StepRunner.Step result = steps.run(step, lr);
                if (offloading != null) offloading.settle(); // anything the step paged in outside the stream goes back
                lastLoss = result.loss();
                losses.add(lastLoss);
                tokensSeen += tokensPerStep();
                double seconds = (System.nanoTime() - t0) / 1e9;
                boolean last = step + 1 == end;
                double val = Double.NaN;
                if (t.evalEvery() > 0 && ((step + 1) % t.evalEvery() == 0 || last)) val = lastVal = evaluate();
                // this rank's (the leader's, pipeline rank 0); every rank prints its own over the run at the end
                Map<String, Double> timings = pipeline == null ? Map.of() : Map.of("pipeline/busy_fraction", pipeline.timeline().lastBusyFraction());
                report.step(step + 1, lastLoss, lr, result.gradNorm(), tokensSeen, seconds, tokensPerStep() / seconds, optimizer.stepStats(), timings,
                        val, baseline);
                if (t.saveEvery() > 0 && (step + 1) % t.saveEvery() == 0 || last && (t.saveEvery() > 0 || end < t.steps())) {
                    if (snapshots != null) snapshots.beforeUpdate(); // the checkpoint writer pages offloaded state as the copy reads it
                    state.save(outDir, step + 1, tokensSeen, t.seed(), tokenizer.name(), t.keepCheckpoints());
                }
                if (snapshots != null && (step + 1) % cfg.snapshot().every() == 0) snapshots.capture(step + 1, tokensSeen);
                trainNanos += System.nanoTime() - t0;
            }
            if (snapshots != null) snapshots.finish();
            report.finishSteps();
            if (Double.isNaN(lastVal) && t.evalEvery() > 0 && start < t.steps()) lastVal = evaluate();
            String sample = "";
            if (mesh != null && (mesh.shape().tp() > 1 || mesh.shape().pp() > 1)) {
                if (leader() && cfg.sample().tokens() > 0)
                    out.println("\nsample: skipped (the model is split over tensor- or pipeline-parallel ranks); weft generate " + outDir.resolve("checkpoints")
                            + " samples from the checkpoint on one process");
            }
            else if (leader()) sample = sample();
            if (Double.isNaN(lastVal) && t.evalEvery() == 0) {
                out.printf("%nfinal: train loss %.4f; validation off (train.eval_every = 0), unigram baseline %.4f nats/token%n", lastLoss, baseline);
            } else {
                out.printf("%nfinal: train loss %.4f, val loss %.4f, unigram baseline %.4f nats/token (%s)%n", lastLoss, lastVal, baseline,
                        lastVal < baseline ? String.format("%.1f%% below", 100 * (1 - lastVal / baseline)) : "NOT below the baseline");
            }
            printMemory();
            if (offloading != null) out.println(offloading.tiers());
            if (snapshots != null) out.println(snapshots.summary(trainNanos));
            if (pipeline != null) {
                out.println(pipeline.timeline().summary());
                out.println(pipeline.timeline().lastStep());
            }
            report.summary();
            return new Result(t.steps(), lastLoss, lastVal, baseline, sample, losses, report.valCurve(), outDir);
        }
    }

    /**
     * The state a resumed run starts from: the newest step in memory (in-memory snapshots) or on
     * disk (checkpoints), whichever is newer, the same on every rank; null when there is neither.
     */
    private Checkpoint.State resume(Path outDir, long seed) {
        Snapshotter.Restore fromMemory = null;
        String memoryLost = null;
        if (snapshots != null) {
            try {
                fromMemory = snapshots.restore().orElse(null);
            } catch (dev.weft.checkpoint.UnrecoverableSnapshotException e) {
                memoryLost = e.getMessage();
            } catch (IOException e) {
                throw new UncheckedIOException("snapshot: restore failed: " + e.getMessage(), e);
            }
        }
        Path ckpt = Checkpoint.latest(outDir);
        long diskStep = agreedDiskStep(ckpt == null ? -1 : Checkpoint.readState(ckpt).step(), outDir);
        if (fromMemory != null && fromMemory.state().step() >= diskStep) {
            out.println(fromMemory.line());
            return fromMemory.state();
        }
        if (memoryLost != null && leader())
            out.println("snapshot: " + memoryLost + "; falling back to the persistent checkpoint" + (ckpt == null ? " (there is none: starting from step 0)" : " of step " + diskStep));
        if (ckpt == null) {
            out.println("weft: --resume given but " + outDir.resolve("checkpoints") + " holds no checkpoint; starting from step 0");
            return null;
        }
        // the memory's step is older than the disk's, or lost: the checkpoint rewrites what the snapshot load wrote
        long t0 = System.nanoTime();
        Checkpoint.State st = state.restore(ckpt, seed);
        out.printf("weft: resumed from %s (step %d, %s tokens seen) in %.0f ms%n", ckpt, st.step(), st.tokensSeen(), (System.nanoTime() - t0) / 1e6);
        return st;
    }

    /**
     * The newest checkpoint step every rank sees, checked to be the same everywhere: ranks that
     * would load different steps would run mismatched collectives, so that is an error naming them.
     */
    private long agreedDiskStep(long mine, Path outDir) {
        if (mesh == null) return mine;
        ProcessGroup world = mesh.world();
        float[] steps = new float[world.size()];
        steps[world.rank()] = mine + 1; // exact as a float up to 2^24 steps
        try (Tensor t = Tensor.of(steps, steps.length)) {
            world.allReduce(t, ReduceOp.SUM);
            float[] all = t.toArray();
            long first = (long) all[0] - 1;
            for (int r = 1; r < all.length; r++) {
                long s = (long) all[r] - 1;
                if (s != first)
                    throw new IllegalStateException("ranks found different newest checkpoints under " + outDir.resolve("checkpoints") + ": rank 0 step "
                            + first + ", rank " + r + " step " + s + " (out_dir not shared between nodes and the nodes' checkpoints out of step?); "
                            + "resuming them together would mismatch their collectives");
            }
            return first;
        }
    }

    /** Per-rank memory at the end: the pools' figures by kind, the process RSS, and the model state this rank holds. */
    private void printMemory() {
        Map<String, Long> live = MemoryPool.host().liveBytesByLabel();
        long peak = MemoryPool.host().peakLiveBytes();
        if (predictedPeak > 0) {
            long blocks = MemoryPool.host().peakLiveBlockBytes();
            out.printf("memory: peak %s in the pool's blocks (what the budget caps), planner predicted %s (%+.1f%%)%n", Bytes.human(blocks),
                    Bytes.human(predictedPeak), 100.0 * (blocks - predictedPeak) / predictedPeak);
        }
        out.printf("memory: peak live %s, weights %s, gradients %s, optimizer state %s; %s%n", Bytes.human(peak),
                Bytes.human(live.getOrDefault("parameters", 0L)), Bytes.human(live.getOrDefault("gradients", 0L)),
                Bytes.human(live.getOrDefault("optimizer state", 0L)), ProcessMemory.summary());
        if (mesh != null)
            out.printf("model state on this rank: parameters %d B, gradients %d B, optimizer state %d B (%s, %d parameters)%n",
                    live.getOrDefault("parameters", 0L), live.getOrDefault("gradients", 0L), live.getOrDefault("optimizer state", 0L),
                    describeStage(cfg.parallel().zero()).replaceAll(" \\(.*", ""), model.parameterCount());
    }

    /** Mean validation loss over eval_batches fixed batches. */
    public double evaluate() {
        int n = Math.min(cfg.train().evalBatches(), valSampler.evalBatches());
        double sum = 0;
        try (var ng = Autograd.noGrad()) {
            for (int i = 0; i < n; i++) {
                BatchSampler.Batch b = valSampler.evalBatch(i);
                if (pipeline != null) {
                    sum += pipeline.evaluate(b);
                    continue;
                }
                try (Scope s = Scope.open()) {
                    sum += layout.loss().of(model.forward(b.inputs(), b.rows(), b.seqLen()), b.targets()).item();
                }
            }
        }
        return sum / n;
    }

    /** Generates the configured sample and prints it. */
    public String sample() {
        TrainConfig.Sample s = cfg.sample();
        if (s.tokens() == 0) return "";
        int[] prompt = tokenizer.encode(s.prompt());
        if (prompt.length == 0) prompt = new int[] {tokenizer.endOfText()};
        int[] gen = new Generator(model, cfg.train().seed()).generate(prompt, s.tokens(), s.temperature(), s.topK());
        String text = tokenizer.decode(gen);
        out.println("\n--- sample (temperature " + s.temperature() + ", top-k " + s.topK() + ") ---");
        out.println(s.prompt() + text);
        out.println("---");
        return text;
    }

    private void printHeader(double baseline) {
        TrainConfig.Train t = cfg.train();
        out.printf("model: %d layers, d_model %d, %d heads (%d kv), ffn %d, vocab %d: %.2fM parameters (%.2fM non-embedding)%n",
                cfg.model().layers(), cfg.model().dModel(), cfg.model().heads(), cfg.model().kvHeads(), cfg.model().ffnDim(),
                cfg.model().vocab(), model.parameterCount() / 1e6, cfg.model().nonEmbeddingParameters() / 1e6);
        out.printf("data: %,d train / %,d val tokens (%s); %d x %d x %d%s = %,d tokens per step%n", trainShard.count(), valShard.count(),
                tokenizer.name(), t.microBatch(), t.gradAccum(), t.seqLen(), mesh == null ? "" : " x " + mesh.shape().dp() + " data-parallel ranks", tokensPerStep());
        out.printf("memory: weights %s, gradients %s, optimizer state %s (%s)%n", Bytes.human(model.parameterCount() * 4),
                Bytes.human(model.parameterCount() * 4), Bytes.human(optimizer.stateBytes()), optimizer.name());
        if (optimizer.groups().size() > 1) {
            for (ParameterGroups.Group g : optimizer.groups()) {
                long weights = 0;
                for (String n : g.parameters()) weights += model.namedParameters().get(n).numel() * 4;
                out.printf("  %s: %d tensors, weights %s, gradients %s, optimizer state %s%n", g.label(), g.parameters().size(),
                        Bytes.human(weights), Bytes.human(weights), Bytes.human(g.optimizer().stateBytes()));
            }
        }
        out.printf("unigram baseline (val cross-entropy of train token frequencies): %.4f nats/token%n", baseline);
    }

    @Override
    public void close() {
        if (snapshots != null) snapshots.close();
        layout.close();
        if (offloading != null) offloading.close();
        model.close();
        trainShard.close();
        valShard.close();
    }
}
