package dev.weft.launcher;

import dev.weft.core.Bytes;
import dev.weft.core.MemoryPool;
import dev.weft.optimizers.Optimizers;
import dev.weft.optimizers.ParameterGroups;
import dev.weft.trainer.Trainer;
import dev.weft.trainer.config.TrainConfig;
import dev.weft.trainer.metrics.LossPlot;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.Predicate;

/**
 * {@code weft bench optimizers}: trains the same config for the same steps once per optimizer and
 * reports state bytes, peak memory, step time and final validation loss as a markdown table, with
 * AdamW as the baseline of the state and loss ratios, plus one plot of every validation curve.
 *
 * <p>Matrix-only optimizers (GaLore, APOLLO, ...) take the attention and MLP matrices and AdamW
 * the rest, as {@code optimizer.name} does in a config. The low-rank ones run at rank
 * d_model/4 (APOLLO-Mini at its rank 1). Matrix learning rates follow the references' recipes
 * relative to AdamW's: GaLore's and APOLLO's pretraining scripts use 0.01 against AdamW's 0.001
 * (10x; APOLLO and APOLLO-Mini measured better at 5x on this model's first 150 steps), Muon's
 * reference 0.02, FRUGAL AdamW's own rate, and momentum SGD, which lacks Adam's normalisation, 25x.
 * {@code --lr-scale NAME=X} overrides any of them; the table prints the matrix learning rate.
 */
@Command(name = "optimizers", mixinStandardHelpOptions = true,
        description = {"Train the example once per optimizer (same steps, data and initial weights) and print a markdown table",
                "of optimizer-state bytes, peak memory, step time and final validation loss against AdamW's, plus a plot",
                "of every validation-loss curve."})
public final class OptimizerBenchCommand implements Callable<Integer> {
    /** Matrix learning rate relative to the config's, where the reference's differs from AdamW's. */
    static final Map<String, Double> LR_SCALE = Map.of("muon", 10.0, "sgd", 25.0, "galore", 10.0, "natural_galore", 10.0, "apollo", 5.0,
            "apollo_mini", 5.0);

    @Option(names = "--config", defaultValue = "examples/tinyshakespeare.yaml", description = "Training config (default: ${DEFAULT-VALUE})")
    Path config;
    @Option(names = "--optimizers", split = ",", description = "Comma-separated optimizers (default: all of them, AdamW first)")
    List<String> optimizers = new ArrayList<>();
    @Option(names = "--steps", defaultValue = "0", description = "Steps per optimizer (default: the config's train.steps)")
    int steps;
    @Option(names = "--out", defaultValue = "runs/bench-optimizers", description = "Output directory: one run per optimizer, the table and the plot (default: ${DEFAULT-VALUE})")
    Path out;
    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a config value for every run (repeatable)")
    List<String> overrides = new ArrayList<>();
    @Option(names = "--lr-scale", paramLabel = "NAME=X", description = {"Matrix learning rate of optimizer NAME as a multiple of the config's (repeatable;",
            "defaults: galore, natural_galore, muon 10; apollo, apollo_mini 5; sgd 25; others 1)"})
    Map<String, Double> lrScales = new LinkedHashMap<>();

    /** One optimizer's figures. */
    record Row(String name, double matrixLr, long stateBytes, long matrixStateBytes, long peakLive, double stepMs, double optimizerMs,
               double finalVal, List<double[]> valCurve) {}

    @Override
    public Integer call() throws IOException {
        List<String> names = optimizers.isEmpty() ? defaultOrder() : optimizers;
        for (String n : names) Optimizers.settings(n); // unknown names fail here, before any training
        for (var e : lrScales.entrySet()) {
            Optimizers.settings(e.getKey());
            if (!(e.getValue() > 0)) throw new IllegalArgumentException("--lr-scale " + e.getKey() + " must be > 0, got " + e.getValue());
        }
        if (steps < 0) throw new IllegalArgumentException("--steps must be >= 0 (0: the config's train.steps), got " + steps);
        Path outDir = out.toAbsolutePath().normalize();
        Files.createDirectories(outDir);

        List<Row> rows = new ArrayList<>();
        long adamwMatrixBytes = 8L * matrixElements(TrainConfig.load(config, overrides)); // AdamW's 2mn floats
        for (int i = 0; i < names.size(); i++) {
            String name = names.get(i);
            TrainConfig cfg = configFor(name, outDir.resolve(name));
            System.out.printf("%n=== [%d/%d] %s: %d steps, matrix lr %.3g ===%n", i + 1, names.size(), name, cfg.train().steps(), matrixLr(cfg));
            Row row = run(name, cfg);
            rows.add(row);
            System.out.printf("=== %s: val loss %.4f, optimizer state %s, %.0f ms/step ===%n", name, row.finalVal(),
                    Bytes.human(row.stateBytes()), row.stepMs());
        }

        String table = table(rows, adamwMatrixBytes);
        Files.writeString(outDir.resolve("optimizers.md"), table);
        Map<String, List<double[]>> curves = new LinkedHashMap<>();
        for (Row r : rows) curves.put(r.name(), r.valCurve());
        Path plot = outDir.resolve("val_loss.png");
        LossPlot.write(plot, "validation loss by optimizer", "cross-entropy (nats/token)", curves);
        System.out.println();
        System.out.print(table);
        System.out.println("\ntable: " + outDir.resolve("optimizers.md") + ", plot: " + plot);
        return 0;
    }

    /** AdamW first (the baseline), then the rest in the factory's order. */
    private static List<String> defaultOrder() {
        List<String> all = new ArrayList<>(List.of("adamw"));
        for (String n : Optimizers.names()) if (!n.equals("adamw")) all.add(n);
        return all;
    }

    private TrainConfig configFor(String name, Path runDir) {
        List<String> o = new ArrayList<>(overrides);
        o.add("optimizer.name=" + name);
        o.add("train.out_dir=" + runDir);
        o.add("train.save_every=0");
        o.add("sample.tokens=0");
        TrainConfig base = TrainConfig.load(config, o);
        int runSteps = steps > 0 ? steps : base.train().steps();
        o.add("train.steps=" + runSteps);
        o.add("train.eval_every=" + Math.max(1, runSteps / 12));
        if (base.optimizer().warmupSteps() > runSteps) o.add("optimizer.warmup_steps=" + runSteps / 10);
        if (Optimizers.settings(name).stream().anyMatch(s -> s.key().equals("rank")) && !name.equals("apollo_mini"))
            o.add("optimizer.rank=" + Math.max(1, base.model().dModel() / 4));
        TrainConfig cfg = TrainConfig.load(config, o);
        double scale = lrScales.getOrDefault(name, LR_SCALE.getOrDefault(name, 1.0));
        if (scale == 1.0) return cfg;
        TrainConfig.Optim op = cfg.optimizer();
        if (Optimizers.matrixOnly(name)) {
            // the matrix group gets the reference's learning rate; AdamW keeps the config's on the rest
            List<ParameterGroups.Spec> groups = new ArrayList<>();
            for (ParameterGroups.Spec g : op.groups())
                groups.add(g.optimizer().equals(name) ? new ParameterGroups.Spec(g.optimizer(), g.patterns(), g.settings(), g.lrScale() * scale) : g);
            op = new TrainConfig.Optim(op.name(), op.lr(), op.minLr(), op.warmupSteps(), op.weightDecay(), op.beta1(), op.beta2(), op.eps(),
                    op.gradClip(), List.copyOf(groups), op.fallback());
        } else {
            op = new TrainConfig.Optim(op.name(), op.lr() * scale, op.minLr() * scale, op.warmupSteps(), op.weightDecay(), op.beta1(),
                    op.beta2(), op.eps(), op.gradClip(), op.groups(), op.fallback());
        }
        return new TrainConfig(cfg.model(), cfg.data(), cfg.train(), op, cfg.sample(), cfg.distributed(), cfg.parallel(), cfg.offload(), cfg.snapshot(), cfg.source(), cfg.initFrom());
    }

    /** The learning rate the hidden matrices train at. */
    private static double matrixLr(TrainConfig cfg) {
        TrainConfig.Optim op = cfg.optimizer();
        for (ParameterGroups.Spec g : op.groups()) if (g.patterns().equals(TrainConfig.HIDDEN_MATRICES)) return op.lr() * g.lrScale();
        return op.lr() * op.fallback().lrScale();
    }

    private static Row run(String name, TrainConfig cfg) {
        MemoryPool pool = MemoryPool.host();
        pool.trim();
        pool.resetPeaks();
        try (Trainer trainer = new Trainer(cfg, System.out)) {
            Trainer.Result result = trainer.run(false, 0);
            dev.weft.trainer.StepRunner.Timing t = trainer.timing();
            long matrixState = 0;
            Predicate<String> matrix = isHiddenMatrix();
            for (Map.Entry<String, Long> e : trainer.optimizer().stateBytesByParameter().entrySet())
                if (matrix.test(e.getKey())) matrixState += e.getValue();
            double stepNs = (double) (t.data() + t.forward() + t.backward() + t.optimizer()) / Math.max(1, t.steps());
            return new Row(name, matrixLr(cfg), trainer.optimizer().stateBytes(), matrixState, pool.peakLiveBytes(), stepNs / 1e6,
                    t.optimizer() / 1e6 / Math.max(1, t.steps()), result.lastValLoss(), result.valCurve());
        }
    }

    private static Predicate<String> isHiddenMatrix() {
        Predicate<String> p = s -> false;
        for (String pattern : TrainConfig.HIDDEN_MATRICES) p = p.or(ParameterGroups.matcher(pattern));
        return p;
    }

    /** Elements of the attention and MLP matrices, from the model shape. */
    private static long matrixElements(TrainConfig cfg) {
        var m = cfg.model();
        long headDim = m.dModel() / m.heads();
        long attention = (long) m.dModel() * m.dModel() * 2 + 2L * m.dModel() * headDim * m.kvHeads();
        long mlp = 3L * m.dModel() * m.ffnDim();
        return m.layers() * (attention + mlp);
    }

    static String table(List<Row> rows, long adamwMatrixBytes) {
        Row adamw = rows.stream().filter(r -> r.name().equals("adamw")).findFirst().orElse(null);
        StringBuilder sb = new StringBuilder();
        sb.append("| optimizer | matrix lr | state (total) | state on attn+MLP matrices | vs AdamW's 2mn | peak live memory | step ms | optimizer ms | final val loss | vs AdamW |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|---|\n");
        for (Row r : rows) {
            sb.append(String.format(Locale.ROOT, "| %s | %.3g | %s | %s | %.2f%% | %s | %.0f | %.1f | %.4f | %s |%n", r.name(), r.matrixLr(),
                    Bytes.human(r.stateBytes()), Bytes.human(r.matrixStateBytes()), 100.0 * r.matrixStateBytes() / adamwMatrixBytes,
                    Bytes.human(r.peakLive()), r.stepMs(), r.optimizerMs(), r.finalVal(),
                    adamw == null ? "-" : String.format(Locale.ROOT, "%+.1f%%", 100 * (r.finalVal() / adamw.finalVal() - 1))));
        }
        return sb.toString();
    }
}
