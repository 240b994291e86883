package dev.weft.launcher;

import dev.weft.core.Bytes;
import dev.weft.trainer.config.TrainConfig;
import dev.weft.trainer.metrics.MetricsLog;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code weft bench zero}: the same config under {@code weft launch} once per (dp size, ZeRO stage),
 * reporting each rank's model-state bytes against the AdamW fp32 formula, peak memory, and the
 * median step time against DDP's (stage 0) at the same dp size, measured in the same run.
 *
 * <p>Each run goes through the launcher's own code path (the CLI in-process, its output captured),
 * so the figures are those of real rank JVMs talking over the configured transport. A stage the
 * ranks refuse as "not available yet" becomes a row saying so; the refusal is read from the
 * launcher's exit and output, so a stage that lands later is measured without changing this class.
 */
@Command(name = "zero", mixinStandardHelpOptions = true,
        description = {"Run weft launch once per dp size and ZeRO stage and print a markdown table of per-rank model-state bytes",
                "against the AdamW fp32 formula (DDP 16Psi, ZeRO-1 8Psi+8Psi/N, ZeRO-2 4Psi+12Psi/N, ZeRO-3 16Psi/N), peak memory,",
                "and the median step time against DDP's at the same dp size (first " + ZeroBenchCommand.WARMUP_STEPS + " steps not timed)."})
public final class ZeroBenchCommand implements Callable<Integer> {
    /** Steps left out of the median: the first runs the JIT's cold code and fills the pools. */
    static final int WARMUP_STEPS = 2;
    /** Model-state bytes within this fraction of the formula meet the target (bucket padding, 64-byte pool rounding). */
    static final double BYTES_TOLERANCE = 0.02;

    @Option(names = "--config", defaultValue = "examples/tinyshakespeare.yaml", description = "Training config (default: ${DEFAULT-VALUE})")
    Path config;
    @Option(names = "--steps", defaultValue = "20", description = "Steps per run, the first " + WARMUP_STEPS + " not timed (default: ${DEFAULT-VALUE})")
    int steps;
    @Option(names = "--ranks", split = ",", defaultValue = "2,4", description = "Data-parallel sizes, one rank process each (default: ${DEFAULT-VALUE})")
    int[] ranks;
    @Option(names = "--stages", split = ",", defaultValue = "0,1,2,3", description = "ZeRO stages; 0 (DDP) is the step-time baseline (default: ${DEFAULT-VALUE})")
    int[] stages;
    @Option(names = "--rounds", defaultValue = "1", description = "Run every case this many times in turn and pool their timed steps (default: ${DEFAULT-VALUE})")
    int rounds;
    @Option(names = "--out", description = "Output directory: one run per case and the table (default: a new temporary directory)")
    Path out;
    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a config value for every run (repeatable)")
    List<String> overrides = new ArrayList<>();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** What one rank printed at the end of its run; peakRss is -1 where the rank did not report it. */
    record RankFigures(int rank, long parameters, long gradients, long optimizerState, long parameterCount, long peakLive, long peakRss) {
        long modelState() {
            return parameters + gradients + optimizerState;
        }
    }

    /** One (dp, stage) run: its ranks' figures and median step time, or why it has none. */
    record Case(int dp, int stage, List<RankFigures> ranks, List<Double> timedSteps, String refusal, String failure) {
        static Case measured(int dp, int stage, List<RankFigures> ranks, List<Double> timedSteps) {
            return new Case(dp, stage, ranks, List.copyOf(timedSteps), null, null);
        }

        static Case refused(int dp, int stage, String why) {
            return new Case(dp, stage, List.of(), List.of(), why, null);
        }

        static Case failed(int dp, int stage, String why) {
            return new Case(dp, stage, List.of(), List.of(), null, why);
        }

        BenchLaunch.StepTimes steps() {
            return BenchLaunch.stepTimes(timedSteps);
        }
    }

    @Override
    public Integer call() throws IOException {
        PrintWriter console = spec.commandLine().getOut();
        if (steps < WARMUP_STEPS + 1)
            throw new IllegalArgumentException("--steps must be at least " + (WARMUP_STEPS + 1) + " (the first " + WARMUP_STEPS
                    + " are warm-up and not timed), got " + steps);
        if (rounds < 1) throw new IllegalArgumentException("--rounds must be >= 1, got " + rounds);
        if (ranks.length == 0) throw new IllegalArgumentException("--ranks needs at least one dp size, e.g. --ranks 2,4");
        for (int n : ranks) if (n < 1 || n > 64) throw new IllegalArgumentException("--ranks: " + n + " is not a dp size in 1..64");
        if (stages.length == 0) throw new IllegalArgumentException("--stages needs at least one ZeRO stage, e.g. --stages 0,1,2,3");
        for (int s : stages) if (s < 0 || s > 3) throw new IllegalArgumentException("--stages: " + s + " is not a ZeRO stage (0, 1, 2 or 3)");
        // a bad config or a mesh that cannot hold these dp sizes fails here, once, before any rank starts
        TrainConfig base = TrainConfig.load(config, overrides);
        for (int n : ranks) base.meshShape(n);
        Path outDir = (out != null ? Files.createDirectories(out) : Files.createTempDirectory("weft-bench-zero")).toAbsolutePath().normalize();
        console.printf("weft bench zero: %s, %d steps per run (timed: steps %d-%d), dp %s, ZeRO stages %s, %d round(s); runs in %s%n", config,
                steps, WARMUP_STEPS + 1, steps, BenchLaunch.join(ranks), BenchLaunch.join(stages), rounds, outDir);
        console.printf("rank processes share this machine's %d cores with each other and with whatever else runs on it (%s)%n",
                Runtime.getRuntime().availableProcessors(), BenchLaunch.loadAverage());
        console.flush();

        // rounds run every case in turn, so a load that comes and goes falls on every stage alike; their timed steps are pooled
        List<String> order = new ArrayList<>();
        Map<String, Case> measured = new LinkedHashMap<>(), unmeasured = new LinkedHashMap<>();
        Map<String, List<Double>> pooled = new LinkedHashMap<>();
        Map<String, Integer> failedRounds = new LinkedHashMap<>();
        int total = rounds * ranks.length * stages.length, i = 0;
        for (int round = 1; round <= rounds; round++) {
            for (int dp : ranks) {
                for (int stage : stages) {
                    i++;
                    String key = "dp" + dp + "-zero" + stage;
                    if (!order.contains(key)) order.add(key);
                    if (unmeasured.get(key) instanceof Case c && c.refusal() != null) continue; // a refusal does not change between rounds
                    Path runDir = outDir.resolve(rounds == 1 ? key : key + "-round" + round);
                    console.printf("%n=== [%d/%d] dp %d, ZeRO-%d%s: weft launch --nproc-per-node %d (output in %s) ===%n", i, total, dp, stage,
                            rounds == 1 ? "" : ", round " + round, dp, runDir.resolve("launch.out"));
                    console.flush();
                    Case c = run(dp, stage, runDir);
                    describe(console, c);
                    if (c.ranks().isEmpty()) {
                        unmeasured.put(key, c);
                        if (c.failure() != null) failedRounds.merge(key, 1, Integer::sum);
                    } else {
                        measured.put(key, c);
                        pooled.computeIfAbsent(key, k -> new ArrayList<>()).addAll(c.timedSteps());
                    }
                }
            }
        }
        List<Case> cases = new ArrayList<>();
        for (String key : order) {
            Case m = measured.get(key);
            if (m == null) {
                cases.add(unmeasured.get(key));
                continue;
            }
            // a round that failed (a rank starved past a timeout on a loaded machine, say) leaves the others' figures, marked
            int failed = failedRounds.getOrDefault(key, 0);
            cases.add(new Case(m.dp(), m.stage(), m.ranks(), List.copyOf(pooled.get(key)), null,
                    failed == 0 ? null : failed + " of " + rounds + " rounds failed: " + unmeasured.get(key).failure()));
        }
        String table = table(cases);
        Files.writeString(outDir.resolve("zero.md"), table);
        console.println();
        console.print(table);
        console.println("\ntable: " + outDir.resolve("zero.md") + "; at the end: " + BenchLaunch.loadAverage());
        console.flush();
        return cases.stream().anyMatch(c -> c.failure() != null) ? 1 : 0;
    }

    private Case run(int dp, int stage, Path runDir) throws IOException {
        // the user's overrides first, so the bench's own (what is measured, and where it goes) win
        List<String> settings = new ArrayList<>(overrides);
        settings.addAll(List.of("train.steps=" + steps, "train.eval_every=0", "train.save_every=0", "sample.tokens=0", "parallel.dp=-1",
                "parallel.zero=" + stage, "train.out_dir=" + runDir));
        BenchLaunch.Outcome o = BenchLaunch.launch(config, dp, settings, runDir);
        if (o.exitCode() != 0) {
            String refusal = refusal(o.output());
            if (refusal != null) return Case.refused(dp, stage, refusal);
            return Case.failed(dp, stage, "weft launch exited " + o.exitCode() + ": " + o.firstFailure() + " (see " + runDir.resolve("launch.out") + ")");
        }
        List<RankFigures> figures = new ArrayList<>();
        for (int r = 0; r < dp; r++) {
            Path log = runDir.resolve("logs/rank-" + r + ".log");
            RankFigures f = parseRankLog(r, Files.readString(log));
            if (f == null) return Case.failed(dp, stage, "rank " + r + " printed no model-state line (see " + log + ")");
            figures.add(f);
        }
        return Case.measured(dp, stage, figures, BenchLaunch.timedSteps(MetricsLog.read(runDir.resolve("metrics.jsonl")), WARMUP_STEPS));
    }

    private static void describe(PrintWriter console, Case c) {
        if (c.refusal() != null) {
            console.println("refused: " + c.refusal());
        } else if (c.failure() != null) {
            console.println("FAILED: " + c.failure());
        } else {
            for (RankFigures f : c.ranks()) {
                double formula = formulaBytes(c.stage(), f.parameterCount(), c.dp());
                console.printf(Locale.ROOT, "rank %d: model state %d B (parameters %d, gradients %d, optimizer state %d) = %.4f x the formula's %.0f B;"
                                + " peak live %s, peak RSS %s%n", f.rank(), f.modelState(), f.parameters(), f.gradients(), f.optimizerState(),
                        f.modelState() / formula, formula, Bytes.human(f.peakLive()), f.peakRss() < 0 ? "n/a" : Bytes.human(f.peakRss()));
            }
            console.printf(Locale.ROOT, "median step %.3f s (quartiles %.3f-%.3f s)%n", c.steps().median(), c.steps().p25(), c.steps().p75());
        }
        console.flush();
    }

    /**
     * Per-rank model state for AdamW in fp32 (4 B weights, 4 B gradients, 8 B moments per
     * parameter; Ψ parameters, N ranks): what stays whole on every rank plus what is split N ways.
     */
    static double formulaBytes(int stage, long psi, int ranks) {
        return switch (stage) {
            case 0 -> 16.0 * psi;
            case 1 -> 8.0 * psi + 8.0 * psi / ranks;
            case 2 -> 4.0 * psi + 12.0 * psi / ranks;
            case 3 -> 16.0 * psi / ranks;
            default -> throw new IllegalArgumentException("not a ZeRO stage: " + stage);
        };
    }

    private static final Pattern MODEL_STATE = Pattern.compile(
            "model state on this rank: parameters (\\d+) B, gradients (\\d+) B, optimizer state (\\d+) B \\(.*, (\\d+) parameters\\)");
    private static final Pattern PEAK_LIVE = Pattern.compile("memory: peak live ([0-9.]+ (?:B|KiB|MiB|GiB|TiB))");
    private static final Pattern PEAK_RSS = Pattern.compile("process rss [0-9.]+ (?:B|KiB|MiB|GiB|TiB) \\(peak ([0-9.]+ (?:B|KiB|MiB|GiB|TiB))\\)");

    /** The figures a rank's log ends with (the last attempt's, if it restarted); null without a model-state line. */
    static RankFigures parseRankLog(int rank, String log) {
        Matcher m = MODEL_STATE.matcher(log);
        long[] state = null;
        while (m.find())
            state = new long[] {Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), Long.parseLong(m.group(3)), Long.parseLong(m.group(4))};
        if (state == null) return null;
        return new RankFigures(rank, state[0], state[1], state[2], state[3], lastHumanBytes(PEAK_LIVE, log), lastHumanBytes(PEAK_RSS, log));
    }

    private static long lastHumanBytes(Pattern p, String log) {
        Matcher m = p.matcher(log);
        long v = -1;
        while (m.find()) v = parseHumanBytes(m.group(1));
        return v;
    }

    /** Inverse of {@link Bytes#human} to its printed precision (0.1 of the unit). */
    static long parseHumanBytes(String s) {
        String[] parts = s.strip().split(" ");
        double v = Double.parseDouble(parts[0]);
        int power = List.of("B", "KiB", "MiB", "GiB", "TiB").indexOf(parts[1]);
        if (power < 0) throw new IllegalArgumentException("not a byte count: '" + s + "'");
        return Math.round(v * Math.pow(1024, power));
    }

    /** The rank's own message when it refused the layout as not available yet, else null. */
    static String refusal(String launchOutput) {
        for (String line : launchOutput.split("\n")) {
            int at = line.indexOf("error: ");
            if (at >= 0 && line.contains("not available yet")) return line.substring(at + "error: ".length()).strip();
        }
        return null;
    }

    /** Step-time target against DDP at the same dp size, where one is set (2 ranks), else NaN. */
    static double stepTarget(int dp, int stage) {
        if (dp != 2 || stage == 0) return Double.NaN;
        return stage == 3 ? 1.3 : 1.1;
    }

    static String table(List<Case> cases) {
        StringBuilder sb = new StringBuilder();
        sb.append("| dp | ZeRO | model state per rank (max) | formula | vs formula (target 1.00 +- 2%) | peak live (max) | peak RSS (max) "
                + "| median step (quartiles) | vs DDP | step target |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|---|\n");
        for (Case c : cases) {
            if (c.ranks().isEmpty()) {
                String why = c.refusal() != null ? "ZeRO-" + c.stage() + ": not available yet" : "failed: " + c.failure();
                sb.append(String.format(Locale.ROOT, "| %d | %d | %s | - | - | - | - | - | - | - |%n", c.dp(), c.stage(), why));
                continue;
            }
            // the rank furthest from the formula speaks for the run (ranks differ only by shard padding)
            RankFigures worst = c.ranks().getFirst();
            double worstRatio = 1;
            long maxState = 0, maxLive = 0, maxRss = -1;
            for (RankFigures f : c.ranks()) {
                double ratio = f.modelState() / formulaBytes(c.stage(), f.parameterCount(), c.dp());
                if (f == c.ranks().getFirst() || Math.abs(ratio - 1) > Math.abs(worstRatio - 1)) {
                    worst = f;
                    worstRatio = ratio;
                }
                maxState = Math.max(maxState, f.modelState());
                maxLive = Math.max(maxLive, f.peakLive());
                maxRss = Math.max(maxRss, f.peakRss());
            }
            double formula = formulaBytes(c.stage(), worst.parameterCount(), c.dp());
            String bytesVerdict = Math.abs(worstRatio - 1) <= BYTES_TOLERANCE ? "met" : "missed";
            Case ddp = cases.stream().filter(d -> d.dp() == c.dp() && d.stage() == 0 && !d.ranks().isEmpty()).findFirst().orElse(null);
            String vsDdp = "-", target = "-";
            if (ddp != null && c.stage() != 0 && ddp.steps().median() > 0) {
                double ratio = c.steps().median() / ddp.steps().median();
                vsDdp = String.format(Locale.ROOT, "%.2fx", ratio);
                double t = stepTarget(c.dp(), c.stage());
                if (!Double.isNaN(t)) target = String.format(Locale.ROOT, "<= %.1fx: %s", t, ratio <= t ? "met" : "missed");
            } else if (c.stage() == 0) {
                vsDdp = "1.00x (baseline)";
            }
            String failedRounds = c.failure() == null ? "" : "; " + c.failure().substring(0, c.failure().indexOf(':')); // "1 of 2 rounds failed"
            sb.append(String.format(Locale.ROOT, "| %d | %d | %s (%d B) | %.0f B | %.4f (%s) | %s | %s | %.3f s (%.2f-%.2f%s) | %s | %s |%n", c.dp(),
                    c.stage(), Bytes.human(maxState), maxState, formula, worstRatio, bytesVerdict, Bytes.human(maxLive),
                    maxRss < 0 ? "n/a" : Bytes.human(maxRss), c.steps().median(), c.steps().p25(), c.steps().p75(), failedRounds, vsDdp, target));
        }
        return sb.toString();
    }
}
