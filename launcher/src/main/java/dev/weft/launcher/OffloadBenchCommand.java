package dev.weft.launcher;

import dev.weft.core.Bytes;
import dev.weft.core.MemoryPool;
import dev.weft.offload.Bandwidth;
import dev.weft.offload.DiskTier;
import dev.weft.offload.Planner;
import dev.weft.offload.Tier;
import dev.weft.trainer.OffloadPlanning;
import dev.weft.trainer.Trainer;
import dev.weft.trainer.config.TrainConfig;
import dev.weft.trainer.metrics.MetricsLog;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code weft bench offload}: what offload buys and costs, in three tables measured in one run.
 *
 * <ol>
 *   <li>Throughput under budgets: the planner measures the config once; for device budgets of
 *       100%, 50% and 25% of its no-offload peak it chooses a policy, and a real training run
 *       under that policy and budget gives the tokens/s (against a run with no offload) and the
 *       peak live bytes (against the prediction).</li>
 *   <li>The disk tier against plain sequential file I/O of the same sizes, per I/O mode the
 *       filesystem of {@code offload.disk_dir} supports.</li>
 *   <li>The largest model of a ladder (layers x d_model) that fits a fixed device budget with no
 *       offload and with the planner's offload, each found by the planner (one 3-layer probe per
 *       d_model; the layer count is then varied over the measured per-layer figures) and then
 *       verified by a short real run under the budget.</li>
 * </ol>
 * Trainer output goes to a log per run under {@code --out}; the console gets progress lines and
 * the tables.
 */
@Command(name = "offload", mixinStandardHelpOptions = true,
        description = {"Measure offload in one run and print markdown tables: (1) the planner's policy at device budgets of 100%, 50%",
                "and 25% of the no-offload peak, with measured tokens/s against no offload and measured against predicted peak;",
                "(2) the disk tier's write/read GB/s against plain sequential file I/O, per I/O mode; (3) the largest model of a",
                "layers x d_model ladder that trains under --fixed-budget-mib without and with offload. Reported, never asserted."})
public final class OffloadBenchCommand implements Callable<Integer> {
    /** Steps of each throughput run that are not timed: the first runs cold code and fills the pools. */
    static final int WARMUP_STEPS = 2;
    /** Device budgets of section 1, as fractions of the no-offload peak, and their throughput targets (NaN: none). */
    static final double[] FRACTIONS = {1.0, 0.5, 0.25};
    static final double[] THROUGHPUT_TARGETS = {Double.NaN, 0.9, 0.7};
    /** The disk tier's rate against plain file I/O that meets the target. */
    static final double DISK_TARGET = 0.8;
    /** Parameters trainable with offload against without, under the fixed budget. */
    static final double LADDER_TARGET = 4.0;
    /** Steps of a ladder verification run. */
    static final int LADDER_STEPS = 2;
    /**
     * Verification runs per side. The planner predicts the pool's live blocks, which the budget caps; should a real run still go
     * over it (an I/O thread slower than the plan's worst case), the ladder plans again for {@link #LADDER_HEADROOM} of the budget
     * less, each time: the largest layer count that fits that, with its plan.
     */
    static final int LADDER_ATTEMPTS = 3;
    static final double LADDER_HEADROOM = 0.03;
    static final List<String> SECTIONS = List.of("throughput", "disk", "ladder");

    @Option(names = "--config", defaultValue = "examples/tinyshakespeare.yaml", description = "Training config (default: ${DEFAULT-VALUE})")
    Path config;
    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a config value for every run (repeatable)")
    List<String> overrides = new ArrayList<>();
    @Option(names = "--steps", defaultValue = "6", description = "Timed steps per throughput run, after " + WARMUP_STEPS + " warm-up steps (default: ${DEFAULT-VALUE})")
    int steps;
    @Option(names = "--rounds", defaultValue = "2", description = {"Run every throughput case this many times in turn and pool their timed steps",
            "(a load that comes and goes falls on every case alike) (default: ${DEFAULT-VALUE})"})
    int rounds;
    @Option(names = "--disk-repeats", defaultValue = "3", description = "Disk measurements per mode, tier and plain file in turn; the fastest counts (default: ${DEFAULT-VALUE})")
    int diskRepeats;
    @Option(names = "--out", description = "Output directory: one log per run and the tables (default: a new temporary directory)")
    Path out;
    @Option(names = "--sections", split = ",", defaultValue = "throughput,disk,ladder", description = "Which tables to measure (default: ${DEFAULT-VALUE})")
    List<String> sections;
    @Option(names = "--disk-total-mib", defaultValue = "256", description = "Bytes each disk measurement writes and reads back, MiB (default: ${DEFAULT-VALUE})")
    long diskTotalMiB;
    @Option(names = "--disk-piece-mib", defaultValue = "4", description = "Size of each write and read, MiB (default: ${DEFAULT-VALUE})")
    long diskPieceMiB;
    @Option(names = "--fixed-budget-mib", defaultValue = "512", description = "Device budget of the ladder, MiB (default: ${DEFAULT-VALUE})")
    long fixedBudgetMiB;
    @Option(names = "--ladder-d-models", split = ",", defaultValue = "256,384,512,768,1024",
            description = "d_model steps of the ladder; heads scale to keep the config's head_dim, ffn_dim = 3 x d_model (default: ${DEFAULT-VALUE})")
    int[] ladderDModels;
    @Option(names = "--ladder-max-layers", defaultValue = "64", description = "Most layers the ladder tries at any d_model (default: ${DEFAULT-VALUE})")
    int ladderMaxLayers;
    @Option(names = "--ladder-seq-len", defaultValue = "128", description = "train.seq_len of the ladder's probes and runs (default: ${DEFAULT-VALUE})")
    int ladderSeqLen;
    @Option(names = "--ladder-micro-batch", defaultValue = "2", description = "train.micro_batch of the ladder (grad_accum 1) (default: ${DEFAULT-VALUE})")
    int ladderMicroBatch;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /**
     * A real training run's figures (tokens/s at the median timed step), or why it has none. {@code peakBytes}: the pool's peak
     * live blocks (requests at their size class: what the planner predicts and train.memory_budget_mib caps once the cache is
     * trimmed); {@code peakReserved}: its peak reserved bytes, cached blocks included.
     */
    record Run(double tokensPerSecond, long peakBytes, long peakReserved, int timedSteps, double lastLoss, String failure) {
        static Run failed(String why) {
            return new Run(Double.NaN, -1, -1, 0, Double.NaN, why);
        }

        /** Runs of one case pooled: their timed steps together (tokens/s at the pooled median), the highest peak; the first failure fails the case. */
        static Run pooled(long tokensPerStep, List<Run> runs, List<List<Double>> timed) {
            for (Run r : runs) if (!r.ok()) return r;
            List<Double> all = new ArrayList<>();
            timed.forEach(all::addAll);
            long peak = runs.stream().mapToLong(Run::peakBytes).max().orElse(-1);
            long reserved = runs.stream().mapToLong(Run::peakReserved).max().orElse(-1);
            double median = BenchLaunch.stepTimes(all).median();
            return new Run(all.isEmpty() ? Double.NaN : tokensPerStep / median, peak, reserved, all.size(), runs.getLast().lastLoss(), null);
        }

        boolean ok() {
            return failure == null;
        }
    }

    /** Section 1, one budget: the planner's plan (or its refusal) and the run under it. */
    record BudgetRow(double fraction, long budgetBytes, Planner.Plan plan, String noPlan, Run run) {}

    /** Section 2, one I/O mode: the tier's and plain file I/O's rates, or why the mode was not measured. */
    record DiskRow(String mode, Bandwidth tier, Bandwidth plain, String unsupported) {}

    /** Section 3: one ladder model shape and what it predicts and measures. */
    record Shape(int dModel, int heads, int kvHeads, int ffnDim, int layers) {
        String label() {
            return layers + " x d" + dModel + " (heads " + heads + ", kv " + kvHeads + ", ffn " + ffnDim + ")";
        }
    }

    /**
     * Section 3, one side (no offload or offload): the largest shape that fits, its parameters, prediction and verification.
     * {@code overBudget}: larger shapes the planner predicted to fit whose real run went over the budget (the ladder stepped down from them).
     */
    record LadderPick(String side, Shape shape, long parameters, Planner.Plan plan, Run verified, String why, List<String> overBudget) {}

    @Override
    public Integer call() throws IOException {
        PrintWriter console = spec.commandLine().getOut();
        if (rounds < 1) throw new IllegalArgumentException("--rounds must be >= 1, got " + rounds);
        if (diskRepeats < 1) throw new IllegalArgumentException("--disk-repeats must be >= 1, got " + diskRepeats);
        validate(steps, sections, diskTotalMiB, diskPieceMiB, fixedBudgetMiB, ladderDModels, ladderMaxLayers, ladderSeqLen, ladderMicroBatch);
        TrainConfig base = TrainConfig.load(config, overrides); // a bad config fails here, before anything runs
        Path outDir = (out != null ? Files.createDirectories(out) : Files.createTempDirectory("weft-bench-offload")).toAbsolutePath().normalize();
        console.printf("weft bench offload: %s, sections %s; runs in %s%n", config, String.join(",", sections), outDir);
        console.printf("this machine: %d cores, shared with whatever else runs on it (%s)%n", Runtime.getRuntime().availableProcessors(), BenchLaunch.loadAverage());
        console.flush();
        StringBuilder report = new StringBuilder();
        int failures = 0;
        if (sections.contains("throughput")) {
            List<BudgetRow> rows = new ArrayList<>();
            Run none = throughput(console, base, outDir, rows);
            String t = throughputTable(base, none, rows, steps, rounds);
            report.append("### Throughput under device budgets\n\n").append(t).append('\n');
            console.println();
            console.print(t);
            console.flush();
            if (!none.ok()) failures++;
            failures += (int) rows.stream().filter(r -> r.run() != null && !r.run().ok()).count();
        }
        if (sections.contains("disk")) {
            List<DiskRow> rows = disk(console, base);
            String t = diskTable(base, rows, diskTotalMiB << 20, diskPieceMiB << 20, diskRepeats);
            report.append("### Disk tier vs plain file I/O\n\n").append(t).append('\n');
            console.println();
            console.print(t);
            console.flush();
        }
        if (sections.contains("ladder")) {
            List<LadderPick> picks = ladder(console, base, outDir);
            String t = ladderTable(fixedBudgetMiB << 20, ladderSeqLen, ladderMicroBatch, picks);
            report.append("### Largest model under a fixed device budget\n\n").append(t).append('\n');
            console.println();
            console.print(t);
            console.flush();
            failures += (int) picks.stream().filter(p -> p.verified() != null && !p.verified().ok()).count();
        }
        Files.writeString(outDir.resolve("offload.md"), report.toString());
        console.println("\ntables: " + outDir.resolve("offload.md") + "; at the end: " + BenchLaunch.loadAverage());
        console.flush();
        return failures == 0 ? 0 : 1;
    }

    static void validate(int steps, List<String> sections, long diskTotalMiB, long diskPieceMiB, long fixedBudgetMiB, int[] dModels, int maxLayers,
                         int seqLen, int microBatch) {
        if (steps < 1) throw new IllegalArgumentException("--steps must be at least 1 (timed steps; " + WARMUP_STEPS + " warm-up steps run before them), got " + steps);
        if (sections.isEmpty()) throw new IllegalArgumentException("--sections needs at least one of " + String.join(", ", SECTIONS));
        for (String s : sections)
            if (!SECTIONS.contains(s)) throw new IllegalArgumentException("--sections: '" + s + "' is not one of " + String.join(", ", SECTIONS));
        if (diskPieceMiB < 1) throw new IllegalArgumentException("--disk-piece-mib must be >= 1, got " + diskPieceMiB);
        if (diskTotalMiB < diskPieceMiB)
            throw new IllegalArgumentException("--disk-total-mib (" + diskTotalMiB + ") must be at least --disk-piece-mib (" + diskPieceMiB + ")");
        if (fixedBudgetMiB < 1) throw new IllegalArgumentException("--fixed-budget-mib must be >= 1, got " + fixedBudgetMiB);
        if (dModels.length == 0) throw new IllegalArgumentException("--ladder-d-models needs at least one d_model, e.g. 256,512");
        for (int d : dModels) if (d < 8) throw new IllegalArgumentException("--ladder-d-models: " + d + " is too small a d_model");
        if (maxLayers < 1) throw new IllegalArgumentException("--ladder-max-layers must be >= 1, got " + maxLayers);
        if (seqLen < 2) throw new IllegalArgumentException("--ladder-seq-len must be >= 2, got " + seqLen);
        if (microBatch < 1) throw new IllegalArgumentException("--ladder-micro-batch must be >= 1, got " + microBatch);
    }

    // ---- section 1 ----

    private Run throughput(PrintWriter console, TrainConfig base, Path outDir, List<BudgetRow> rows) throws IOException {
        console.printf("%n=== throughput: planner probe of %s (d_model %d, %d layers, micro-batch %d x %d, grad_accum %d) ===%n", config, base.model().dModel(),
                base.model().layers(), base.train().microBatch(), base.train().seqLen(), base.train().gradAccum());
        console.flush();
        OffloadPlanning.Report report = measure(base, outDir.resolve("throughput-plan.log"));
        Planner.Plan none = Planner.none(report.measured());
        console.printf("no offload: predicted peak %s, step %.3f s%n", Bytes.human(none.peakBytes()), none.stepSeconds());
        // the cases: no offload without a budget, then each budget's plan (a budget no plan meets is a row with the planner's message)
        List<String> keys = new ArrayList<>(List.of("throughput-none"));
        List<Planner.Plan> plans = new ArrayList<>(java.util.Collections.singletonList(none));
        List<Long> budgets = new ArrayList<>(List.of(0L));
        List<Double> fractions = new ArrayList<>(java.util.Collections.singletonList(Double.NaN));
        for (double f : FRACTIONS) {
            long mib = budgetMiB(none.peakBytes(), f);
            try {
                Planner.Plan plan = Planner.best(report.measured(), mib << 20);
                console.printf("budget %.0f%% (%d MiB): %s; predicted peak %s, step %.3f s%n", 100 * f, mib, plan.describe(), Bytes.human(plan.peakBytes()),
                        plan.stepSeconds());
                keys.add("throughput-" + Math.round(100 * f) + "pct");
                plans.add(plan);
                budgets.add(mib);
                fractions.add(f);
            } catch (Planner.NoPlanException e) {
                console.printf("budget %.0f%% (%d MiB): %s%n", 100 * f, mib, e.getMessage());
                rows.add(new BudgetRow(f, mib << 20, null, e.getMessage(), null));
            }
        }
        // rounds run every case in turn, so that a load that comes and goes falls on every case alike; their timed steps are pooled
        List<List<Run>> runs = new ArrayList<>();
        List<List<List<Double>>> timed = new ArrayList<>();
        for (int c = 0; c < keys.size(); c++) {
            runs.add(new ArrayList<>());
            timed.add(new ArrayList<>());
        }
        for (int round = 1; round <= rounds; round++) {
            for (int c = 0; c < keys.size(); c++) {
                String key = rounds == 1 ? keys.get(c) : keys.get(c) + "-round" + round;
                console.printf("=== [round %d/%d] %s: %d + %d steps, %s ===%n", round, rounds, c == 0 ? "no offload" : String.format(Locale.ROOT, "budget %.0f%%",
                        100 * fractions.get(c)), WARMUP_STEPS, steps, c == 0 ? "no budget" : "train.memory_budget_mib " + budgets.get(c));
                console.flush();
                Path runDir = outDir.resolve(key);
                Run r = train(withPolicy(runConfig(base, runDir, WARMUP_STEPS + steps, budgets.get(c)), plans.get(c)), runDir, WARMUP_STEPS);
                describe(console, r, plans.get(c).peakBytes());
                runs.get(c).add(r);
                timed.get(c).add(r.ok() ? BenchLaunch.timedSteps(MetricsLog.read(runDir.resolve("metrics.jsonl")), WARMUP_STEPS) : List.of());
            }
        }
        long tokensPerStep = base.train().tokensPerStep();
        for (int c = 1; c < keys.size(); c++)
            rows.add(new BudgetRow(fractions.get(c), budgets.get(c) << 20, plans.get(c), null, Run.pooled(tokensPerStep, runs.get(c), timed.get(c))));
        rows.sort(java.util.Comparator.comparingDouble(BudgetRow::fraction).reversed());
        return Run.pooled(tokensPerStep, runs.getFirst(), timed.getFirst());
    }

    /** The budget in whole MiB (what train.memory_budget_mib can say) at {@code fraction} of {@code peak}, rounded up. */
    static long budgetMiB(long peakBytes, double fraction) {
        return Math.max(1, (long) Math.ceil(peakBytes * fraction / (1 << 20)));
    }

    private static void describe(PrintWriter console, Run r, long predicted) {
        if (!r.ok()) console.println("FAILED: " + firstLine(r.failure()));
        else console.printf(Locale.ROOT, "%.0f tokens/s at the median of %d timed steps; peak live %s (predicted %s, %s), peak reserved %s%n", r.tokensPerSecond(),
                r.timedSteps(), Bytes.human(r.peakBytes()), Bytes.human(predicted), signedPercent(r.peakBytes(), predicted), Bytes.human(r.peakReserved()));
        console.flush();
    }

    static String throughputTable(TrainConfig cfg, Run none, List<BudgetRow> rows, int timedSteps, int rounds) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "config: d_model %d, %d layers, micro-batch %d x %d tokens, grad_accum %d, optimizer %s; "
                        + "tokens/s at the median of %d timed steps per run (after %d warm-up), %d round(s) of every case in turn, pooled; "
                        + "peaks are the highest of the rounds%n%n", cfg.model().dModel(), cfg.model().layers(), cfg.train().microBatch(), cfg.train().seqLen(),
                cfg.train().gradAccum(), cfg.optimizer().name(), timedSteps, WARMUP_STEPS, rounds));
        sb.append("| device budget | planner's policy | predicted peak | predicted step | measured peak (vs predicted) | peak reserved | tokens/s | vs no offload | target |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|\n");
        sb.append(String.format(Locale.ROOT, "| no offload, no budget | keep all; optimizer state on device | - | - | %s | %s | %s | 1.00x (baseline) | - |%n",
                none.ok() ? Bytes.human(none.peakBytes()) : "-", none.ok() ? Bytes.human(none.peakReserved()) : "-", none.ok() ? String.format(Locale.ROOT, "%.0f", none.tokensPerSecond()) : "failed: " + none.failure()));
        for (int i = 0; i < rows.size(); i++) {
            BudgetRow r = rows.get(i);
            double target = targetFor(r.fraction());
            String targetCell = Double.isNaN(target) ? "-" : String.format(Locale.ROOT, ">= %.0f%%", 100 * target);
            String budget = String.format(Locale.ROOT, "%.0f%% (%s)", 100 * r.fraction(), Bytes.human(r.budgetBytes()));
            if (r.plan() == null) {
                sb.append(String.format(Locale.ROOT, "| %s | cannot be met: %s | - | - | - | - | - | - | %s |%n", budget, r.noPlan(),
                        Double.isNaN(target) ? "-" : targetCell + ": missed (no policy fits)"));
                continue;
            }
            Planner.Plan p = r.plan();
            Run run = r.run();
            if (!run.ok()) {
                sb.append(String.format(Locale.ROOT, "| %s | %s | %s | %.3f s | failed: %s | - | - | - | %s |%n", budget, p.describe(), Bytes.human(p.peakBytes()),
                        p.stepSeconds(), firstLine(run.failure()), Double.isNaN(target) ? "-" : targetCell + ": missed (the run failed)"));
                continue;
            }
            double ratio = none.ok() ? run.tokensPerSecond() / none.tokensPerSecond() : Double.NaN;
            sb.append(String.format(Locale.ROOT, "| %s | %s | %s | %.3f s | %s (%s) | %s | %.0f | %s | %s |%n", budget, p.describe(), Bytes.human(p.peakBytes()),
                    p.stepSeconds(), Bytes.human(run.peakBytes()), signedPercent(run.peakBytes(), p.peakBytes()), Bytes.human(run.peakReserved()), run.tokensPerSecond(),
                    Double.isNaN(ratio) ? "-" : String.format(Locale.ROOT, "%.1f%%", 100 * ratio),
                    Double.isNaN(target) ? "-" : targetCell + ": " + verdict(ratio, target)));
        }
        for (BudgetRow r : rows)
            if (r.fraction() == 1.0 && r.plan() != null && r.plan().optimizer() == Tier.DEVICE
                    && r.plan().layers().stream().allMatch(l -> l == dev.weft.offload.LayerPolicy.KEEP))
                sb.append("\nAt 100% the planner keeps everything, as the baseline does: that row's ratio is this machine's run-to-run spread.\n");
        sb.append("\nPeaks are the pool's live blocks (requests at their size class): what the planner predicts and train.memory_budget_mib caps; "
                + "peak reserved adds the cached blocks, which the pool frees before it would exceed the budget.\n");
        return sb.toString();
    }

    static double targetFor(double fraction) {
        for (int i = 0; i < FRACTIONS.length; i++) if (FRACTIONS[i] == fraction) return THROUGHPUT_TARGETS[i];
        return Double.NaN;
    }

    // ---- section 2 ----

    private List<DiskRow> disk(PrintWriter console, TrainConfig base) {
        Path dir = base.offload().diskDir();
        long total = diskTotalMiB << 20, piece = diskPieceMiB << 20;
        List<DiskRow> rows = new ArrayList<>();
        for (DiskTier.Io io : List.of(DiskTier.Io.DIRECT, DiskTier.Io.BUFFERED, DiskTier.Io.MAPPED)) {
            String mode = io.name().toLowerCase(Locale.ROOT);
            console.printf("%n=== disk: %s in %s, %s in %s pieces, %d I/O threads ===%n", mode, dir, Bytes.human(total), Bytes.human(piece), base.offload().ioThreads());
            console.flush();
            DiskTier tier;
            try {
                tier = DiskTier.open(dir, 2 * total, io, base.offload().ioThreads());
            } catch (RuntimeException e) {
                console.println("not measured: " + e.getMessage());
                rows.add(new DiskRow(mode, null, null, e.getMessage()));
                continue;
            }
            try (tier) {
                if (tier.io() != io) { // the tier fell back to another mode: this one is not what the filesystem does
                    rows.add(new DiskRow(mode, null, null, "the tier chose " + tier.io().name().toLowerCase(Locale.ROOT) + " instead"));
                    continue;
                }
                // plain file and tier in turn, the fastest of each direction counting: a shared machine only ever slows a transfer down
                Bandwidth plain = null, t = null;
                for (int i = 0; i < diskRepeats; i++) {
                    plain = fastest(plain, Bandwidth.ofPlainFile(dir, total, piece, io == DiskTier.Io.DIRECT));
                    t = fastest(t, Bandwidth.ofTier(tier, total, piece));
                }
                console.printf(Locale.ROOT, "tier write %.2f GB/s, read %.2f GB/s; plain file%s write %.2f GB/s, read %.2f GB/s%n", t.writeGBs(), t.readGBs(),
                        io == DiskTier.Io.DIRECT ? " (O_DIRECT)" : "", plain.writeGBs(), plain.readGBs());
                rows.add(new DiskRow(mode, t, plain, null));
            } catch (RuntimeException e) {
                console.println("not measured: " + e.getMessage());
                rows.add(new DiskRow(mode, null, null, e.getMessage()));
            }
            console.flush();
        }
        return rows;
    }

    /** The faster of each direction of two measurements ({@code a} may be null: none yet). */
    static Bandwidth fastest(Bandwidth a, Bandwidth b) {
        return a == null ? b : new Bandwidth(Math.max(a.writeGBs(), b.writeGBs()), Math.max(a.readGBs(), b.readGBs()));
    }

    static String diskTable(TrainConfig cfg, List<DiskRow> rows, long total, long piece, int repeats) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%s written then read back in %s pieces in %s; the tier with %d I/O threads, all pieces in flight together; "
                        + "plain file I/O sequential on one thread (O_DIRECT for direct, else through the page cache); fastest of %d, tier and plain in turn%n%n",
                Bytes.human(total), Bytes.human(piece), cfg.offload().diskDir(), cfg.offload().ioThreads(), repeats));
        sb.append("| mode | tier write GB/s | plain write GB/s | write ratio | tier read GB/s | plain read GB/s | read ratio | target >= 80% |\n");
        sb.append("|---|---|---|---|---|---|---|---|\n");
        for (DiskRow r : rows) {
            if (r.tier() == null) {
                sb.append(String.format(Locale.ROOT, "| %s | not supported here: %s | - | - | - | - | - | - |%n", r.mode(), r.unsupported()));
                continue;
            }
            double w = r.tier().writeGBs() / r.plain().writeGBs(), rd = r.tier().readGBs() / r.plain().readGBs();
            String v = verdict(Math.min(w, rd), DISK_TARGET);
            String which = v.equals("met") ? "met" : "missed (" + (w < DISK_TARGET && rd < DISK_TARGET ? "write and read" : w < DISK_TARGET ? "write" : "read") + ")";
            sb.append(String.format(Locale.ROOT, "| %s | %.2f | %.2f | %.0f%% | %.2f | %.2f | %.0f%% | %s |%n", r.mode(), r.tier().writeGBs(), r.plain().writeGBs(),
                    100 * w, r.tier().readGBs(), r.plain().readGBs(), 100 * rd, which));
        }
        sb.append("\nBuffered and mapped reads come back from the page cache when the bytes were just written (both sides of each ratio alike), so their read "
                + "rates are memory copies, not the device's; direct bypasses the cache and measures the device.\n");
        return sb.toString();
    }

    // ---- section 3 ----

    private List<LadderPick> ladder(PrintWriter console, TrainConfig base, Path outDir) throws IOException {
        long budget = fixedBudgetMiB << 20;
        LadderPick bestNone = null, bestOffload = null;
        OffloadPlanning.Report noneR = null, offR = null;
        for (int d : ladderDModels) {
            Shape probeShape = shape(base, d, 3);
            TrainConfig cfg = ladderConfig(base, probeShape, outDir.resolve("ladder-probe"), 0);
            console.printf("%n=== ladder: planner probe at d_model %d (heads %d, kv %d, ffn %d), micro-batch %d x %d ===%n", d, probeShape.heads(), probeShape.kvHeads(),
                    probeShape.ffnDim(), ladderMicroBatch, ladderSeqLen);
            console.flush();
            OffloadPlanning.Report r;
            try {
                r = measure(cfg, outDir.resolve("ladder-probe-d" + d + ".log"));
            } catch (RuntimeException e) {
                console.println("probe failed: " + e.getMessage());
                continue;
            }
            int noneLayers = largest(ladderMaxLayers, n -> Planner.none(atLayers(r, n)).peakBytes() <= budget);
            int offLayers = largest(ladderMaxLayers, n -> fits(atLayers(r, n), budget));
            console.printf("d_model %d: no offload fits %s, offload fits %s (of at most %d)%n", d, noneLayers == 0 ? "no layer count" : noneLayers + " layers",
                    offLayers == 0 ? "no layer count" : offLayers + " layers", ladderMaxLayers);
            console.flush();
            if (noneLayers > 0 && (bestNone == null || parameters(r, noneLayers) > bestNone.parameters())) {
                bestNone = pick("no offload", base, r, d, noneLayers, budget, List.of());
                noneR = r;
            }
            if (offLayers > 0 && (bestOffload == null || parameters(r, offLayers) > bestOffload.parameters())) {
                bestOffload = pick("offload", base, r, d, offLayers, budget, List.of());
                offR = r;
            }
        }
        List<LadderPick> picks = new ArrayList<>();
        if (bestNone == null) picks.add(new LadderPick("no offload", null, 0, null, null, "no ladder shape fits " + fixedBudgetMiB + " MiB without offload", List.of()));
        else picks.add(verify(console, base, outDir, noneR, bestNone, budget));
        if (bestOffload == null) picks.add(new LadderPick("offload", null, 0, null, null, "no ladder shape fits " + fixedBudgetMiB + " MiB with offload", List.of()));
        else picks.add(verify(console, base, outDir, offR, bestOffload, budget));
        return picks;
    }

    /** The side's plan at {@code layers} layers of the probed d_model. */
    private static LadderPick pick(String side, TrainConfig base, OffloadPlanning.Report r, int dModel, int layers, long budget, List<String> overBudget) {
        Planner.Measurements m = atLayers(r, layers);
        Planner.Plan plan = side.equals("offload") ? Planner.best(m, budget) : Planner.none(m);
        return new LadderPick(side, shape(base, dModel, layers), parameters(r, layers), plan, null, null, overBudget);
    }

    /**
     * Short real runs under the budget, from the planner's largest shape; after one goes over the budget, the largest shape and
     * plan that fit a planning budget {@link #LADDER_HEADROOM} lower (the runs stay under the real one).
     */
    private LadderPick verify(PrintWriter console, TrainConfig base, Path outDir, OffloadPlanning.Report r, LadderPick p, long budget) throws IOException {
        List<String> overBudget = new ArrayList<>();
        boolean offload = p.side().equals("offload");
        for (int attempt = 1; ; attempt++) {
            String key = "ladder-" + (offload ? "offload" : "none") + "-" + p.shape().layers() + "x" + p.shape().dModel();
            console.printf("%n=== ladder, %s: %s, %,d parameters; %s, predicted peak %s; verifying with %d steps under %d MiB ===%n", p.side(), p.shape().label(),
                    p.parameters(), p.plan().describe(), Bytes.human(p.plan().peakBytes()), LADDER_STEPS, fixedBudgetMiB);
            console.flush();
            Run v = train(withPolicy(ladderConfig(base, p.shape(), outDir.resolve(key), fixedBudgetMiB), p.plan()), outDir.resolve(key), 0);
            if (v.ok()) {
                console.printf(Locale.ROOT, "trained %d steps, last loss %.4f; peak live %s (predicted %s, %s), peak reserved %s%n", LADDER_STEPS, v.lastLoss(),
                        Bytes.human(v.peakBytes()), Bytes.human(p.plan().peakBytes()), signedPercent(v.peakBytes(), p.plan().peakBytes()), Bytes.human(v.peakReserved()));
                console.flush();
                return new LadderPick(p.side(), p.shape(), p.parameters(), p.plan(), v, null, overBudget);
            }
            console.println("FAILED: " + firstLine(v.failure()));
            console.flush();
            boolean over = v.failure().startsWith("MemoryBudgetExceededException");
            long planning = (long) (budget * (1 - LADDER_HEADROOM * attempt));
            int layers = largest(ladderMaxLayers, n -> offload ? fits(atLayers(r, n), planning) : Planner.none(atLayers(r, n)).peakBytes() <= planning);
            if (!over || attempt == LADDER_ATTEMPTS || layers == 0)
                return new LadderPick(p.side(), p.shape(), p.parameters(), p.plan(), v, null, overBudget);
            overBudget.add(String.format(Locale.ROOT, "%s (predicted peak %s): %s", p.shape().label(), Bytes.human(p.plan().peakBytes()), firstLine(v.failure())));
            console.printf("planning again for %s (%.0f%% of the budget less)%n", Bytes.human(planning), 100 * LADDER_HEADROOM * attempt);
            p = pick(p.side(), base, r, p.shape().dModel(), layers, planning, overBudget);
        }
    }

    static String firstLine(String s) {
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }

    private static boolean fits(Planner.Measurements m, long budget) {
        try {
            Planner.best(m, budget);
            return true;
        } catch (Planner.NoPlanException e) {
            return false;
        }
    }

    /** The largest n in 1..max for which {@code fits} holds, assuming it holds for every n below one that fits (more layers never need less); 0 if none. */
    static int largest(int max, java.util.function.IntPredicate fits) {
        if (!fits.test(1)) return 0;
        int lo = 1, hi = 1; // fits(lo) holds
        while (hi < max) {
            hi = Math.min(max, hi * 2);
            if (!fits.test(hi)) break;
            lo = hi;
        }
        if (lo == hi) return lo;
        while (hi - lo > 1) { // fits(lo), not fits(hi)
            int mid = (lo + hi) >>> 1;
            if (fits.test(mid)) lo = mid;
            else hi = mid;
        }
        return lo;
    }

    /** The ladder's shape at {@code dModel}: heads scaled to keep the config's head_dim (kv heads in the config's proportion), ffn = 3 x d_model. */
    static Shape shape(TrainConfig base, int dModel, int layers) {
        var m = base.model();
        int headDim = m.dModel() / m.heads();
        if (dModel % headDim != 0)
            throw new IllegalArgumentException("--ladder-d-models: " + dModel + " is not a multiple of the config's head_dim " + headDim);
        int heads = dModel / headDim;
        int kv = Math.max(1, heads * m.kvHeads() / m.heads());
        while (heads % kv != 0) kv--;
        return new Shape(dModel, heads, kv, 3 * dModel, layers);
    }

    /**
     * The planner's figures for the probed model at {@code layers} layers: per-layer bytes and times
     * are alike across layers, weights, gradients and state grow by a layer's each, and the optimizer
     * step's time with the parameters it updates. One process (dp 1), as the ladder runs.
     */
    static Planner.Measurements atLayers(OffloadPlanning.Report r, int layers) {
        Planner.Measurements m = r.measured();
        long weights = r.rootWeights() + layers * r.layerWeights();
        long state = r.rootState() + layers * r.layerState();
        double scale = (double) weights / (r.rootWeights() + (long) m.layers() * r.layerWeights());
        var steps = new java.util.EnumMap<Tier, Planner.OptimizerStep>(Tier.class);
        m.optimizer().forEach((t, s) -> steps.put(t, new Planner.OptimizerStep(s.stepBytes(), s.seconds() * scale)));
        return new Planner.Measurements(layers, m.gradAccum(), weights, weights, state, m.memory(), m.rootBefore(), m.rootWorking(), m.rootKept(), m.evaluation(), m.layerSeconds(),
                m.rootSeconds(), steps);
    }

    static long parameters(OffloadPlanning.Report r, int layers) {
        return (r.rootWeights() + layers * r.layerWeights()) / 4;
    }

    private TrainConfig ladderConfig(TrainConfig base, Shape s, Path runDir, long budgetMiB) {
        List<String> o = new ArrayList<>(overrides);
        o.addAll(List.of("model.layers=" + s.layers(), "model.d_model=" + s.dModel(), "model.heads=" + s.heads(), "model.kv_heads=" + s.kvHeads(),
                "model.ffn_dim=" + s.ffnDim(), "model.max_seq_len=" + Math.max(ladderSeqLen, base.model().maxSeqLen()), "train.seq_len=" + ladderSeqLen,
                "train.micro_batch=" + ladderMicroBatch, "train.grad_accum=1", "train.steps=" + LADDER_STEPS, "train.eval_every=0", "train.save_every=0",
                "sample.tokens=0", "train.out_dir=" + runDir, "train.memory_budget_mib=" + budgetMiB));
        return TrainConfig.load(config, o);
    }

    static String ladderTable(long budget, int seqLen, int microBatch, List<LadderPick> picks) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "device budget %s; ladder runs at micro-batch %d x %d tokens, grad_accum 1, verified by %d real steps under the budget%n%n",
                Bytes.human(budget), microBatch, seqLen, LADDER_STEPS));
        sb.append("| | largest model (layers x d_model) | parameters | policy | predicted peak | verified run: peak live (vs predicted), peak reserved |\n");
        sb.append("|---|---|---|---|---|---|\n");
        LadderPick none = null, off = null;
        for (LadderPick p : picks) {
            if (p.side().equals("offload")) off = p;
            else none = p;
            if (p.shape() == null) {
                sb.append(String.format(Locale.ROOT, "| %s | %s | - | - | - | - |%n", p.side(), p.why()));
                continue;
            }
            Run v = p.verified();
            String verified = v == null ? "not run" : v.ok() ? String.format(Locale.ROOT, "trained; %s (%s), %s", Bytes.human(v.peakBytes()), signedPercent(v.peakBytes(),
                    p.plan().peakBytes()), Bytes.human(v.peakReserved())) : "FAILED: " + firstLine(v.failure());
            sb.append(String.format(Locale.ROOT, "| %s | %s | %,d | %s | %s | %s |%n", p.side(), p.shape().label(), p.parameters(), p.plan().describe(),
                    Bytes.human(p.plan().peakBytes()), verified));
        }
        sb.append('\n');
        for (LadderPick p : picks)
            for (String o : p.overBudget())
                sb.append(String.format(Locale.ROOT, "%s: the planner's larger pick %s; the ladder planned again for %.0f%% less%n", p.side(), o,
                        100 * LADDER_HEADROOM));
        boolean bothTrained = none != null && off != null && none.shape() != null && off.shape() != null && none.verified() != null && none.verified().ok()
                && off.verified() != null && off.verified().ok();
        if (none != null && off != null && none.shape() != null && off.shape() != null) {
            double ratio = (double) off.parameters() / none.parameters();
            sb.append(String.format(Locale.ROOT, "parameters with offload / without: %.2fx; target >= %.0fx: %s%s%n", ratio, LADDER_TARGET,
                    bothTrained ? verdict(ratio, LADDER_TARGET) : "missed (a verification run failed)",
                    ratio < LADDER_TARGET ? " (" + ladderShortfall() + ")" : ""));
        } else {
            sb.append(String.format(Locale.ROOT, "parameters with offload / without: -; target >= %.0fx: missed (a side has no shape that fits)%n", LADDER_TARGET));
        }
        return sb.toString();
    }

    /** Why the ladder's ratio falls short, from what the planner can and cannot move. */
    static String ladderShortfall() {
        return "the planner moves activations and the optimizer state off the device, but the weights and gradients (8 B per fp32 parameter of AdamW's 16) "
                + "stay: parameter offload needs ZeRO-3 shards and is not among the planner's choices, and gradients are never offloaded, so the ceiling "
                + "is about 2x plus what activations took";
    }

    // ---- shared ----

    /** The planner's probe, its progress lines in {@code log}. */
    private static OffloadPlanning.Report measure(TrainConfig cfg, Path log) throws IOException {
        try (PrintStream ps = new PrintStream(Files.newOutputStream(log), true)) {
            return OffloadPlanning.measure(cfg, 1, ps);
        }
    }

    private TrainConfig runConfig(TrainConfig base, Path runDir, int totalSteps, long budgetMiB) {
        List<String> o = new ArrayList<>(overrides);
        o.addAll(List.of("train.steps=" + totalSteps, "train.eval_every=0", "train.save_every=0", "sample.tokens=0", "train.out_dir=" + runDir,
                "train.memory_budget_mib=" + budgetMiB));
        return TrainConfig.load(config, o);
    }

    private static TrainConfig withPolicy(TrainConfig cfg, Planner.Plan plan) {
        return cfg.withOffload(cfg.offload().withPolicy(plan.activations(), plan.recompute(), plan.optimizer().configName(), cfg.offload().parameters()));
    }

    /** Trains {@code cfg} in this process (its output in runDir/train.log) and reads its tokens/s at the median step after {@code warmup} and its peak live bytes. */
    private static Run train(TrainConfig cfg, Path runDir, int warmup) throws IOException {
        Files.createDirectories(runDir);
        MemoryPool pool = MemoryPool.host();
        pool.trim();
        try (OutputStream os = Files.newOutputStream(runDir.resolve("train.log")); PrintStream ps = new PrintStream(os, true)) {
            Trainer.Result result;
            long peak, reserved;
            try (Trainer trainer = new Trainer(cfg, ps)) {
                // state the constructor built here and then moved to host or disk leaves cached blocks, which the budget would trim
                // on demand anyway: without this trim they would stand in the peak reserved bytes the trainer's reset starts from
                pool.trim();
                result = trainer.run(false, 0);
                peak = pool.peakLiveBlockBytes(); // what the planner predicts and the budget caps
                reserved = pool.peakReservedBytes();
            } catch (RuntimeException e) {
                e.printStackTrace(ps);
                return Run.failed(e.getClass().getSimpleName() + ": " + e.getMessage() + " (see " + runDir.resolve("train.log") + ")");
            }
            List<Double> timed = BenchLaunch.timedSteps(MetricsLog.read(runDir.resolve("metrics.jsonl")), warmup);
            double tps = timed.isEmpty() ? Double.NaN : cfg.train().tokensPerStep() / BenchLaunch.stepTimes(timed).median();
            return new Run(tps, peak, reserved, timed.size(), result.lastTrainLoss(), null);
        }
    }

    /** "met" when {@code ratio} reaches {@code target}, else "missed" (NaN misses). */
    static String verdict(double ratio, double target) {
        return ratio >= target ? "met" : "missed";
    }

    /** {@code actual} against {@code predicted} as a signed percentage, e.g. "+1.2%". */
    static String signedPercent(long actual, long predicted) {
        if (predicted <= 0) return "-";
        return String.format(Locale.ROOT, "%+.1f%%", 100.0 * (actual - predicted) / predicted);
    }
}
