package dev.weft.trainer;

import dev.weft.core.Autograd;
import dev.weft.core.Bytes;
import dev.weft.core.MemoryPool;
import dev.weft.core.ProcessMemory;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.core.ops.CrossEntropy;
import dev.weft.core.ops.Elementwise;
import dev.weft.optimizers.ParameterGroups;
import dev.weft.parallel.DataParallel;
import dev.weft.parallel.DeviceMesh;
import dev.weft.parallel.FullyShardedDataParallel;
import dev.weft.trainer.config.TrainConfig;
import dev.weft.trainer.data.BatchSampler;
import dev.weft.trainer.data.Prepare;
import dev.weft.trainer.data.PreparedData;
import dev.weft.trainer.data.TokenShard;
import dev.weft.trainer.data.Tokenizer;
import dev.weft.trainer.data.UnigramBaseline;
import dev.weft.trainer.metrics.LossPlot;
import dev.weft.trainer.metrics.MetricsLog;
import dev.weft.trainer.metrics.ProgressBar;
import dev.weft.trainer.schedule.LrSchedule;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The single-process training loop: gradient accumulation over micro-batches, global-norm
 * clipping, AdamW under a warmup-cosine schedule, periodic evaluation and checkpoints, metrics
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

    public Trainer(TrainConfig cfg, PrintStream out) {
        this(cfg, out, null);
    }

    /**
     * A trainer that runs as one data-parallel rank of {@code dist} (null: a single process).
     * train.micro_batch is per rank: the global batch is micro_batch x grad_accum x world size, and
     * each rank reads its own disjoint slice of it.
     */
    public Trainer(TrainConfig cfg, PrintStream out, DistributedContext dist) {
        this.cfg = cfg;
        this.dist = dist;
        int world = dist == null ? 1 : dist.size();
        this.out = out;
        this.tokenizer = Tokenizer.byName(cfg.data().tokenizer());
        if (tokenizer.vocabSize() > cfg.model().vocab())
            throw new IllegalArgumentException("model.vocab = " + cfg.model().vocab() + " is smaller than the vocabulary of tokenizer '"
                    + tokenizer.name() + "' (" + tokenizer.vocabSize() + "); set model.vocab >= " + tokenizer.vocabSize());
        PreparedData prepared = Prepare.ensure(cfg.data().text(), cfg.data().cacheDir(), tokenizer, cfg.data().valFraction(), out);
        this.trainShard = TokenShard.open(prepared.train());
        this.valShard = TokenShard.open(prepared.val());
        TrainConfig.Train t = cfg.train();
        this.trainSampler = new BatchSampler(trainShard, t.seqLen(), t.microBatch(), world, t.gradAccum(), t.seed());
        // every rank evaluates the global batch geometry, so val loss matches a single process on the same global batch
        this.valSampler = new BatchSampler(valShard, t.seqLen(), t.microBatch() * world, 1, t.seed());
        DeviceMesh.Shape shape = cfg.meshShape(world);
        this.mesh = dist == null ? null : new DeviceMesh(dist.group(), shape);
        if (dist != null && dist.isLeader()) out.print(DeviceMesh.table(shape) + "data parallel: " + describeStage(cfg.parallel().zero()) + "\n");
        this.model = new Llama(cfg.model(), t.seed());
        TrainConfig.Optim o = cfg.optimizer();
        this.layout = Parallelize.apply(model, mesh, cfg);
        this.optimizer = layout.optimizer();
        this.schedule = LrSchedule.warmupCosine(o.lr(), o.minLr(), o.warmupSteps(), t.steps());
        this.steps = new StepRunner(model, trainSampler, layout.sync(), optimizer, o.gradClip(), t.gradAccum(), mesh == null ? 0 : mesh.dpIndex());
    }

    /** The ranks that write a checkpoint together, and where each one's optimizer state and weights lie. */
    private Checkpoint.Writers writers() {
        Map<String, Tensor> params = model.namedParameters();
        if (mesh == null) return Checkpoint.Writers.single(params);
        boolean holdsAShare = cfg.parallel().zero() > 0 || mesh.dpIndex() == 0; // DDP ranks hold replicas: one writes
        Chunks.Placement placement = new Chunks.Placement() {
            @Override public long[] shardOf(String name) { return layout.sync().shardOf(name); }
            @Override public int[] globalShape(String name) { return params.get(name).shape(); }
        };
        if (!(layout.sync() instanceof FullyShardedDataParallel fsdp))
            return new Checkpoint.Writers(mesh.dpIndex(), mesh.dp().size(), () -> mesh.dp().barrier(), holdsAShare, placement, null, null);
        return new Checkpoint.Writers(mesh.dpIndex(), mesh.dp().size(), () -> mesh.dp().barrier(), true, placement,
                heldWeights(fsdp, mesh.dpIndex() == 0), name -> weightRange(fsdp, name));
    }

    /**
     * Under ZeRO-3, the weights this rank holds: its shards of the sharded parameters, and the
     * replicated ones whole when {@code withReplicated} (rank 0 writes them; every rank reads them).
     */
    private Map<String, Tensor> heldWeights(FullyShardedDataParallel fsdp, boolean withReplicated) {
        Map<String, Tensor> held = new LinkedHashMap<>();
        model.namedParameters().forEach((name, p) -> {
            if (!fsdp.isSharded(name)) {
                if (withReplicated) held.put(name, p);
            } else if (fsdp.optimizerParameters().containsKey(name)) {
                held.put(name, fsdp.optimizerParameters().get(name));
            }
        });
        return held;
    }

    private Chunks.Range weightRange(FullyShardedDataParallel fsdp, String name) {
        Tensor p = model.namedParameters().get(name);
        if (!fsdp.isSharded(name)) return Chunks.Range.whole(p);
        long[] shard = fsdp.shardOf(name);
        return new Chunks.Range(p.shape(), shard[0], shard[1]);
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
        return cfg.train().tokensPerStep() * (dist == null ? 1 : dist.size());
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
        Path outDir = t.outDir();
        long start = 0, tokensSeen = 0;
        try {
            Files.createDirectories(outDir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create output directory " + outDir + ": " + e.getMessage(), e);
        }
        if (resume) {
            Path ckpt = Checkpoint.latest(outDir);
            if (ckpt == null) {
                out.println("weft: --resume given but " + outDir.resolve("checkpoints") + " holds no checkpoint; starting from step 0");
            } else {
                if (layout.sync() instanceof FullyShardedDataParallel fsdp) {
                    Checkpoint.loadWeights(ckpt, heldWeights(fsdp, true), name -> weightRange(fsdp, name));
                } else {
                    Checkpoint.loadModel(ckpt, model);
                    if (mesh != null) DataParallel.verifyIdenticalWeights(mesh.dp(), model.namedParameters());
                }
                Checkpoint.State st = Checkpoint.loadTraining(ckpt, optimizer, writers().placement());
                if (st.seed() != t.seed())
                    throw new IllegalArgumentException(ckpt + " was trained with train.seed = " + st.seed() + ", the config says " + t.seed()
                            + "; resuming with another seed would not continue the same run");
                start = st.step();
                tokensSeen = st.tokensSeen();
                out.printf("weft: resumed from %s (step %d, %s tokens seen)%n", ckpt, start, tokensSeen);
            }
        }
        Path metricsFile = outDir.resolve("metrics.jsonl");
        List<Map<String, Object>> history = leader() ? keepHistoryUpTo(metricsFile, resume ? start : -1) : new ArrayList<>();
        double baseline = UnigramBaseline.crossEntropy(trainShard, valShard);
        printHeader(baseline);

        List<Double> losses = new ArrayList<>();
        Map<String, double[]> statTotals = new LinkedHashMap<>(); // optimizer step stats: {sum, count}
        double lastLoss = Double.NaN, lastVal = Double.NaN;
        ProgressBar bar = new ProgressBar(out, t.steps(), ProgressBar.isTerminal());
        try (MetricsLog metrics = leader() ? openMetrics(metricsFile, true) : null) {
            long end = stopAfter > 0 ? Math.min(stopAfter, t.steps()) : t.steps();
            for (long step = start; step < end; step++) {
                if (dist != null) dist.beforeStep().accept(step);
                long t0 = System.nanoTime();
                double lr = schedule.lr(step);
                StepRunner.Step result = steps.run(step, lr);
                lastLoss = result.loss();
                losses.add(lastLoss);
                tokensSeen += tokensPerStep();
                double seconds = (System.nanoTime() - t0) / 1e9;
                Map<String, Object> rec = new LinkedHashMap<>();
                rec.put("step", step + 1);
                rec.put("loss", lastLoss);
                rec.put("lr", lr);
                rec.put("grad_norm", result.gradNorm());
                rec.put("tokens", tokensSeen);
                rec.put("step_seconds", seconds);
                rec.put("tokens_per_second", tokensPerStep() / seconds);
                optimizer.stepStats().forEach((k, v) -> {
                    rec.put(k, v);
                    double[] tot = statTotals.computeIfAbsent(k, x -> new double[2]);
                    tot[0] += v;
                    tot[1]++;
                });
                boolean last = step + 1 == end;
                if (t.evalEvery() > 0 && ((step + 1) % t.evalEvery() == 0 || last)) {
                    lastVal = evaluate();
                    rec.put("val_loss", lastVal);
                    bar.message(String.format("step %d: val loss %.4f (unigram baseline %.4f)", step + 1, lastVal, baseline));
                }
                if (metrics != null) metrics.log(rec);
                history.add(rec);
                bar.update(step + 1, lastLoss, tokensPerStep() / seconds);
                if (t.saveEvery() > 0 && (step + 1) % t.saveEvery() == 0 || last && (t.saveEvery() > 0 || end < t.steps())) {
                    Checkpoint.save(outDir, new Checkpoint.State(step + 1, tokensSeen, t.seed(), optimizer.steps(), optimizer.name()),
                            model, tokenizer.name(), optimizer, t.keepCheckpoints(), writers());
                }
            }
        }
        bar.finish();
        if (Double.isNaN(lastVal) && t.evalEvery() > 0 && start < t.steps()) lastVal = evaluate();
        if (leader()) writePlot(outDir, history);
        String sample = leader() ? sample() : "";
        if (Double.isNaN(lastVal) && t.evalEvery() == 0) {
            out.printf("%nfinal: train loss %.4f; validation off (train.eval_every = 0), unigram baseline %.4f nats/token%n", lastLoss, baseline);
        } else {
            out.printf("%nfinal: train loss %.4f, val loss %.4f, unigram baseline %.4f nats/token (%s)%n", lastLoss, lastVal, baseline,
                    lastVal < baseline ? String.format("%.1f%% below", 100 * (1 - lastVal / baseline)) : "NOT below the baseline");
        }
        Map<String, Long> live = MemoryPool.host().liveBytesByLabel();
        out.printf("memory: peak live %s, weights %s, gradients %s, optimizer state %s; %s%n", Bytes.human(MemoryPool.host().peakLiveBytes()),
                Bytes.human(live.getOrDefault("parameters", 0L)), Bytes.human(live.getOrDefault("gradients", 0L)),
                Bytes.human(live.getOrDefault("optimizer state", 0L)), ProcessMemory.summary());
        if (mesh != null)
            out.printf("model state on this rank: parameters %d B, gradients %d B, optimizer state %d B (%s, %d parameters)%n",
                    live.getOrDefault("parameters", 0L), live.getOrDefault("gradients", 0L), live.getOrDefault("optimizer state", 0L),
                    describeStage(cfg.parallel().zero()).replaceAll(" \\(.*", ""), model.parameterCount());
        if (!statTotals.isEmpty()) {
            List<String> parts = new ArrayList<>();
            statTotals.forEach((k, tot) -> parts.add(String.format("%s %.3f", k, tot[0] / tot[1])));
            out.println("optimizer stats, mean per step: " + String.join(", ", parts));
        }
        if (leader()) out.println("metrics: " + metricsFile + ", loss curve: " + outDir.resolve("loss.png"));
        List<double[]> valCurve = new ArrayList<>();
        for (Map<String, Object> r : history)
            if (r.get("val_loss") instanceof Number v) valCurve.add(new double[]{((Number) r.get("step")).doubleValue(), v.doubleValue()});
        return new Result(t.steps(), lastLoss, lastVal, baseline, sample, losses, valCurve, outDir);
    }

    /** Mean validation loss over eval_batches fixed batches. */
    public double evaluate() {
        int n = Math.min(cfg.train().evalBatches(), valSampler.evalBatches());
        double sum = 0;
        try (var ng = Autograd.noGrad()) {
            for (int i = 0; i < n; i++) {
                BatchSampler.Batch b = valSampler.evalBatch(i);
                try (Scope s = Scope.open()) {
                    sum += CrossEntropy.loss(model.forward(b.inputs(), b.rows(), b.seqLen()), b.targets(), -1).item();
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
                tokenizer.name(), t.microBatch(), t.gradAccum(), t.seqLen(), dist == null ? "" : " x " + dist.size() + " ranks", tokensPerStep());
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

    /** Metrics logged before {@code upTo}; a resumed run drops what a crashed run logged past its checkpoint. */
    private static List<Map<String, Object>> keepHistoryUpTo(Path file, long upTo) {
        List<Map<String, Object>> kept = new ArrayList<>();
        try {
            if (upTo < 0 || !Files.exists(file)) {
                Files.deleteIfExists(file);
                return kept;
            }
            for (Map<String, Object> r : MetricsLog.read(file)) {
                if (r.get("step") instanceof Number n && n.longValue() <= upTo) kept.add(r);
            }
            Files.delete(file);
            try (MetricsLog log = openMetrics(file, false)) {
                for (Map<String, Object> r : kept) log.log(r);
            }
            return kept;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot rewrite " + file + ": " + e.getMessage(), e);
        }
    }

    private static MetricsLog openMetrics(Path file, boolean append) {
        try {
            return MetricsLog.open(file, append);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write metrics to " + file + ": " + e.getMessage(), e);
        }
    }

    private static void writePlot(Path outDir, List<Map<String, Object>> history) {
        List<double[]> train = new ArrayList<>(), val = new ArrayList<>();
        for (Map<String, Object> r : history) {
            double step = ((Number) r.get("step")).doubleValue();
            if (r.get("loss") instanceof Number l) train.add(new double[] {step, l.doubleValue()});
            if (r.get("val_loss") instanceof Number v) val.add(new double[] {step, v.doubleValue()});
        }
        Map<String, List<double[]>> series = new LinkedHashMap<>();
        series.put("train", train);
        series.put("validation", val);
        try {
            LossPlot.write(outDir.resolve("loss.png"), "weft training loss", "cross-entropy (nats/token)", series);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the loss curve: " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        layout.close();
        model.close();
        trainShard.close();
        valShard.close();
    }
}
