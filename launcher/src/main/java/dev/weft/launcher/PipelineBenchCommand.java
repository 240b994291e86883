package dev.weft.launcher;

import dev.weft.core.Bytes;
import dev.weft.parallel.pipeline.Action;
import dev.weft.parallel.pipeline.Costs;
import dev.weft.parallel.pipeline.Schedule;
import dev.weft.parallel.pipeline.ScheduleSimulator;
import dev.weft.parallel.pipeline.Schedules;
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
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code weft bench pipeline}: each pipeline schedule under {@code weft launch} on pp ranks, its
 * bubble as measured from every rank's timeline of computations, against the simulator's
 * replay of the same schedule with the per-stage costs measured in that run and against the
 * textbook formula; then tensor parallelism's step time on two ranks against one rank on the same
 * cores and global batch.
 *
 * <p>The measured bubble is 1 - busy / wall over the ranks' timed steps, a rank's wall being the
 * span of its pipeline run up to the closing loss sum that every rank leaves together, so it is
 * the makespan the simulator computes. The simulator replays twice: with free transfers, and with
 * the latency measured in the run's last step (a send's posting to the end of a receive that was
 * already waiting for it, on the monotonic clock the ranks of one node share), which on a loaded
 * machine is mostly the receiver's wait for a core.
 */
@Command(name = "pipeline", mixinStandardHelpOptions = true,
        description = {"Run weft launch once per pipeline schedule and pp size and print a markdown table of the bubble as measured",
                "(1 - busy/wall from each rank's timeline, the first " + PipelineBenchCommand.WARMUP_STEPS + " steps not timed), as the simulator",
                "predicts it from the costs measured in the same run, and as theory gives it; the activation memory each rank held;",
                "then the step time of tensor parallelism (tp 2, one compute thread per rank) against one rank on all the cores.",
                "Unless --set says otherwise the model is cut down so the whole bench stays short: " + PipelineBenchCommand.MODEL_DEFAULTS_TEXT})
public final class PipelineBenchCommand implements Callable<Integer> {
    /** Must match the trainer's pipeline timeline, which leaves out the steps its process runs first. */
    static final int WARMUP_STEPS = 2;
    /** The model and batch the bench runs unless --set overrides them: 8 layers allow pp 4 with 2 virtual stages, one layer each. */
    static final List<String> MODEL_DEFAULTS = List.of("model.layers=8", "model.d_model=128", "model.ffn_dim=384", "model.heads=4",
            "model.kv_heads=4", "train.seq_len=64", "train.micro_batch=4");
    static final String MODEL_DEFAULTS_TEXT = "model.layers=8, model.d_model=128, model.ffn_dim=384, model.heads=4, model.kv_heads=4, "
            + "train.seq_len=64, train.micro_batch=4.";
    static final double ONE_F_ONE_B_TOLERANCE = 0.15, ZBH1_TARGET = 0.5, INTERLEAVED_TARGET = 0.6, TP_TARGET = 1.25;

    @Option(names = "--config", defaultValue = "examples/tinyshakespeare.yaml", description = "Training config (default: ${DEFAULT-VALUE})")
    Path config;
    @Option(names = "--steps", defaultValue = "6", description = "Steps per run, the first " + WARMUP_STEPS + " not timed (default: ${DEFAULT-VALUE})")
    int steps;
    @Option(names = "--micro-batches", defaultValue = "8", description = "Micro-batches per step, train.grad_accum (default: ${DEFAULT-VALUE})")
    int microBatches;
    @Option(names = "--pp", split = ",", defaultValue = "2,4", description = "Pipeline sizes, one rank process per stage (default: ${DEFAULT-VALUE})")
    int[] pp;
    @Option(names = "--schedules", split = ",", defaultValue = "gpipe,1f1b,interleaved,zbh1", description = "Schedules; 1f1b is the baseline (default: ${DEFAULT-VALUE})")
    List<String> schedules;
    @Option(names = "--virtual-stages", defaultValue = "2", description = "Stages per rank of the interleaved schedule (default: ${DEFAULT-VALUE})")
    int virtualStages;
    @Option(names = "--no-tp", description = "Leave out the tensor-parallel comparison")
    boolean noTp;
    @Option(names = "--rounds", defaultValue = "1", description = "Run every case this many times in turn and pool their timed steps (default: ${DEFAULT-VALUE})")
    int rounds;
    @Option(names = "--out", description = "Output directory: one run per case and the tables (default: a new temporary directory)")
    Path out;
    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a config value for every run (repeatable)")
    List<String> overrides = new ArrayList<>();

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** Mean milliseconds per computation on one stage over the timed steps; NaN for a kind the schedule does not run there. */
    record StageTimes(int stage, double forward, double backward, double backwardInput, double backwardWeight) {
        /** F, B, I, W. */
        double[] times() {
            return new double[] {forward, backward, backwardInput, backwardWeight};
        }

        Costs costs() {
            return new Costs(seconds(forward), seconds(backwardInput), seconds(backwardWeight), seconds(backward), 0, 0, 0);
        }

        private static double seconds(double ms) {
            return Double.isNaN(ms) ? 0 : ms / 1e3;
        }
    }

    /**
     * What one rank's timeline lines said: its timed steps' wall and busy seconds, its stages' times,
     * the most activation bytes it held, each timed step's busy and wall seconds, and the start and end
     * (monotonic nanoseconds) of each action of its last step, in schedule order (empty where it did
     * not print them).
     */
    record RankTimeline(int rank, int timedSteps, double wallSeconds, double busySeconds, List<StageTimes> stages, long peakHeldBytes,
                        double[] stepBusy, double[] stepWall, long[] lastStart, long[] lastEnd) {
        RankTimeline withLastStep(long[] start, long[] end) {
            return new RankTimeline(rank, timedSteps, wallSeconds, busySeconds, stages, peakHeldBytes, stepBusy, stepWall, start, end);
        }

        /** One rank's timelines of several rounds as one: sums of the timed steps, their means weighted by steps, the last round's last step. */
        static RankTimeline pool(List<RankTimeline> rounds) {
            RankTimeline last = rounds.getLast();
            int steps = 0;
            double wall = 0, busy = 0;
            long peak = 0;
            for (RankTimeline r : rounds) {
                steps += r.timedSteps();
                wall += r.wallSeconds();
                busy += r.busySeconds();
                peak = Math.max(peak, r.peakHeldBytes());
            }
            List<StageTimes> stages = new ArrayList<>();
            for (int i = 0; i < last.stages().size(); i++) {
                double[] mean = new double[4];
                for (int k = 0; k < 4; k++) {
                    double sum = 0, weight = 0;
                    for (RankTimeline r : rounds) {
                        double ms = r.stages().get(i).times()[k];
                        if (Double.isNaN(ms)) continue;
                        sum += ms * r.timedSteps();
                        weight += r.timedSteps();
                    }
                    mean[k] = weight == 0 ? Double.NaN : sum / weight;
                }
                stages.add(new StageTimes(last.stages().get(i).stage(), mean[0], mean[1], mean[2], mean[3]));
            }
            double[] stepBusy = rounds.stream().flatMapToDouble(r -> java.util.Arrays.stream(r.stepBusy())).toArray();
            double[] stepWall = rounds.stream().flatMapToDouble(r -> java.util.Arrays.stream(r.stepWall())).toArray();
            return new RankTimeline(last.rank(), steps, wall, busy, stages, peak, stepBusy, stepWall, last.lastStart(), last.lastEnd());
        }
    }

    /** One (schedule, pp) run: its ranks' timelines and rank 0's timed step seconds, or why it has none. */
    record PipelineCase(String schedule, int pp, int microBatches, int virtualStages, List<RankTimeline> ranks, List<Double> timedSteps, String failure) {
        static PipelineCase failed(String schedule, int pp, int m, int v, String why) {
            return new PipelineCase(schedule, pp, m, v, List.of(), List.of(), why);
        }

        /** The measured rounds of one case as one (every rank's timeline pooled, the step times joined); the first failure where none was measured. */
        static PipelineCase pool(List<PipelineCase> rounds) {
            List<PipelineCase> measured = rounds.stream().filter(c -> c.failure() == null).toList();
            if (measured.isEmpty()) return rounds.getFirst();
            PipelineCase first = measured.getFirst();
            List<RankTimeline> ranks = new ArrayList<>();
            for (int r = 0; r < first.ranks().size(); r++) {
                int rank = r;
                ranks.add(RankTimeline.pool(measured.stream().map(c -> c.ranks().get(rank)).toList()));
            }
            List<Double> steps = new ArrayList<>();
            for (PipelineCase c : measured) steps.addAll(c.timedSteps());
            return new PipelineCase(first.schedule(), first.pp(), first.microBatches(), first.virtualStages(), ranks, steps, null);
        }

        Schedule plan() {
            return Schedules.byName(schedule, pp, microBatches, virtualStages);
        }

        /** 1 - busy / wall over every rank's timed steps: the share of rank-time spent waiting. */
        double measuredBubble() {
            double wall = 0, busy = 0;
            for (RankTimeline r : ranks) {
                wall += r.wallSeconds();
                busy += r.busySeconds();
            }
            return wall == 0 ? Double.NaN : 1 - busy / wall;
        }

        /**
         * The median over the timed steps of each step's bubble (all ranks' busy against all ranks'
         * wall in that step): a stall that another process's load puts into one step moves the mean
         * but not this. NaN where the ranks did not print their steps.
         */
        double medianStepBubble() {
            int n = ranks.stream().mapToInt(r -> r.stepWall().length).min().orElse(0);
            List<Double> perStep = new ArrayList<>();
            for (int k = 0; k < n; k++) {
                double busy = 0, wall = 0;
                for (RankTimeline r : ranks) {
                    busy += r.stepBusy()[k];
                    wall += r.stepWall()[k];
                }
                perStep.add(1 - busy / wall);
            }
            return BenchLaunch.stepTimes(perStep).median();
        }

        /** The last timed step's bubble as measured (the last round's, pooled); NaN where the ranks did not print their steps. */
        double lastStepBubble() {
            double busy = 0, wall = 0;
            for (RankTimeline r : ranks) {
                if (r.stepWall().length == 0) return Double.NaN;
                busy += r.stepBusy()[r.stepBusy().length - 1];
                wall += r.stepWall()[r.stepWall().length - 1];
            }
            return 1 - busy / wall;
        }

        /**
         * The last step replayed with each computation's own measured time and free transfers: set
         * beside {@link #lastStepBubble}, what the times' spread explains (one slow action holds up the
         * ranks that wait on it, which the means hide) and what the runtime added. NaN without the times.
         */
        double lastStepReplayBubble() {
            Schedule plan = plan();
            Map<Action, Double> time = new java.util.HashMap<>();
            for (RankTimeline r : ranks) {
                List<Action> actions = plan.actions(r.rank());
                if (r.lastEnd().length != actions.size()) return Double.NaN;
                for (int i = 0; i < actions.size(); i++) time.put(actions.get(i), (r.lastEnd()[i] - r.lastStart()[i]) / 1e9);
            }
            return ScheduleSimulator.simulate(plan, a -> time.get(a), 0).bubbleFraction();
        }

        /** The replay of this schedule with each stage's measured mean times and every transfer taking {@code transferSeconds}. */
        ScheduleSimulator.Simulation simulated(double transferSeconds) {
            Map<Integer, Costs> byStage = new TreeMap<>();
            for (RankTimeline r : ranks) {
                for (StageTimes s : r.stages()) {
                    Costs c = s.costs();
                    byStage.put(s.stage(), new Costs(c.forward(), c.backwardInput(), c.backwardWeight(), c.backward(), transferSeconds, 0, 0));
                }
            }
            Schedule plan = plan();
            if (byStage.size() != plan.stages()) throw new IllegalStateException("the ranks reported " + byStage.size() + " of " + plan.stages() + " stages");
            return ScheduleSimulator.simulate(plan, List.copyOf(byStage.values()));
        }

        /**
         * The mean time from the start of a send (a shared-memory send may complete only once its
         * data is taken) to the end of its receive, over the receives of the
         * last step that were already waiting when the send was posted (so their end is the data's
         * arrival, and the receiver's wake-up): the transfer latency the simulator charges. Ranks of
         * one node share the monotonic clock these times come from. 0 where no receive waited, or
         * where a rank did not print its last step.
         */
        double transferSeconds() {
            Schedule plan = plan();
            RankTimeline[] byRank = new RankTimeline[pp];
            for (RankTimeline r : ranks) byRank[r.rank()] = r;
            long sum = 0;
            int samples = 0;
            for (RankTimeline r : ranks) {
                List<Action> actions = plan.actions(r.rank());
                if (r.lastEnd().length != actions.size()) return 0;
                for (int i = 0; i < actions.size(); i++) {
                    Action a = actions.get(i);
                    if (!a.kind().isTransfer() || a.kind().isSend()) continue;
                    Action send = a.counterpart();
                    RankTimeline sender = byRank[plan.rankOf(a.stage())];
                    int j = plan.actions(plan.rankOf(a.stage())).indexOf(send);
                    if (sender == null || j < 0 || sender.lastEnd().length <= j) return 0;
                    long posted = sender.lastStart()[j];
                    if (r.lastStart()[i] > posted) continue; // its data may have been there before it looked
                    sum += Math.max(0, r.lastEnd()[i] - posted);
                    samples++;
                }
            }
            return samples == 0 ? 0 : sum / 1e9 / samples;
        }

        double theory() {
            return theoreticalBubble(schedule, pp, microBatches, virtualStages);
        }
    }

    /** A tensor-parallel comparison run: tp over as many ranks, each with cores / ranks compute threads. */
    record TpCase(int tp, int threadsPerRank, List<Double> timedSteps, long peakLive, String failure) {
        static TpCase pool(List<TpCase> rounds) {
            List<TpCase> measured = rounds.stream().filter(c -> c.failure() == null).toList();
            if (measured.isEmpty()) return rounds.getFirst();
            List<Double> steps = new ArrayList<>();
            long peak = 0;
            for (TpCase c : measured) {
                steps.addAll(c.timedSteps());
                peak = Math.max(peak, c.peakLive());
            }
            return new TpCase(measured.getFirst().tp(), measured.getFirst().threadsPerRank(), steps, peak, null);
        }
    }

    /**
     * The textbook bubble with equal stages and free transfers: (p-1)/(m+p-1) for GPipe and 1F1B;
     * (p-1)/(3m+p-1) for ZB-H1 with F = B = W; (p-1)/(vm+p-1) for interleaved 1F1B with v chunks per rank.
     */
    static double theoreticalBubble(String schedule, int p, int m, int v) {
        return switch (schedule) {
            case "gpipe", "1f1b" -> (p - 1.0) / (m + p - 1);
            case "zbh1" -> (p - 1.0) / (3.0 * m + p - 1);
            case "interleaved" -> (p - 1.0) / ((double) v * m + p - 1);
            default -> throw new IllegalArgumentException("no formula for schedule '" + schedule + "'");
        };
    }

    @Override
    public Integer call() throws IOException {
        PrintWriter console = spec.commandLine().getOut();
        if (steps < WARMUP_STEPS + 1)
            throw new IllegalArgumentException("--steps must be at least " + (WARMUP_STEPS + 1) + " (the first " + WARMUP_STEPS
                    + " are warm-up and not timed), got " + steps);
        if (rounds < 1) throw new IllegalArgumentException("--rounds must be >= 1, got " + rounds);
        if (microBatches < 1) throw new IllegalArgumentException("--micro-batches must be >= 1, got " + microBatches);
        if (virtualStages < 2) throw new IllegalArgumentException("--virtual-stages must be >= 2 (interleaving needs two chunks per rank), got " + virtualStages);
        if (pp.length == 0) throw new IllegalArgumentException("--pp needs at least one pipeline size, e.g. --pp 2,4");
        for (int p : pp) if (p < 2 || p > 64) throw new IllegalArgumentException("--pp: " + p + " is not a pipeline size in 2..64");
        for (String s : schedules)
            if (!Schedules.NAMES.contains(s)) throw new IllegalArgumentException("--schedules: unknown schedule '" + s + "'; valid: " + String.join(", ", Schedules.NAMES));
        // a bad config or a layout the model cannot hold (too few layers for pp x v stages) fails here, once, before any rank starts
        for (int p : pp) for (String s : schedules) TrainConfig.load(config, settings(s, p, null)).meshShape(p);
        if (!noTp) {
            TrainConfig.load(config, tpSettings(2, null)).meshShape(2);
            TrainConfig.load(config, tpSettings(1, null)).meshShape(1);
        }
        Path outDir = (out != null ? Files.createDirectories(out) : Files.createTempDirectory("weft-bench-pipeline")).toAbsolutePath().normalize();
        int cores = Runtime.getRuntime().availableProcessors();
        console.printf("weft bench pipeline: %s with %s, then --set %s; %d micro-batches, %d steps per run (timed: steps %d-%d); pp %s; %d round(s); runs in %s%n",
                config, MODEL_DEFAULTS_TEXT, overrides.isEmpty() ? "nothing" : String.join(" ", overrides), microBatches, steps, WARMUP_STEPS + 1,
                steps, BenchLaunch.join(pp), rounds, outDir);
        console.printf("rank processes share this machine's %d cores with each other and with whatever else runs on it (%s)%n", cores,
                BenchLaunch.loadAverage());
        console.flush();

        // rounds run every case in turn, so a load that comes and goes falls on every schedule alike; their timed steps are pooled
        Map<String, List<PipelineCase>> pipelineRounds = new java.util.LinkedHashMap<>();
        Map<Integer, List<TpCase>> tpRounds = new TreeMap<>();
        List<String> failures = new ArrayList<>();
        int total = rounds * (pp.length * schedules.size() + (noTp ? 0 : 2)), i = 0;
        for (int round = 1; round <= rounds; round++) {
            String suffix = rounds == 1 ? "" : "-round" + round;
            for (int p : pp) {
                for (String s : schedules) {
                    String key = "pp" + p + "-" + s;
                    Path runDir = outDir.resolve(key + suffix);
                    console.printf("%n=== [%d/%d] pp %d, %s%s: weft launch --nproc-per-node %d (output in %s) ===%n", ++i, total, p, s,
                            rounds == 1 ? "" : ", round " + round, p, runDir.resolve("launch.out"));
                    console.flush();
                    PipelineCase c = runPipeline(s, p, runDir);
                    describe(console, c);
                    if (c.failure() != null) failures.add("pp " + p + " " + s + (rounds == 1 ? "" : " round " + round) + ": " + c.failure());
                    pipelineRounds.computeIfAbsent(key, k -> new ArrayList<>()).add(c);
                }
            }
            for (int t = 1; !noTp && t <= 2; t++) {
                Path runDir = outDir.resolve("tp" + t + suffix);
                int threads = Math.max(1, cores / t);
                console.printf("%n=== [%d/%d] tp %d%s: weft launch --nproc-per-node %d, %d compute thread(s) per rank (output in %s) ===%n", ++i, total, t,
                        rounds == 1 ? "" : ", round " + round, t, threads, runDir.resolve("launch.out"));
                console.flush();
                TpCase c = runTp(t, threads, runDir);
                console.println(c.failure() != null ? "FAILED: " + c.failure()
                        : String.format(Locale.ROOT, "median step %.3f s, peak live %s", BenchLaunch.stepTimes(c.timedSteps()).median(), Bytes.human(c.peakLive())));
                console.flush();
                if (c.failure() != null) failures.add("tp " + t + (rounds == 1 ? "" : " round " + round) + ": " + c.failure());
                tpRounds.computeIfAbsent(t, k -> new ArrayList<>()).add(c);
            }
        }
        List<PipelineCase> cases = pipelineRounds.values().stream().map(PipelineCase::pool).toList();
        List<TpCase> tp = tpRounds.values().stream().map(TpCase::pool).toList();
        StringBuilder failed = new StringBuilder();
        for (String f : failures) failed.append("Failed: ").append(f).append('\n');
        String tables = pipelineTable(cases) + notes(cases, cores) + failed + (tp.isEmpty() ? "" : "\n" + tpTable(tp));
        Files.writeString(outDir.resolve("pipeline.md"), tables);
        console.println();
        console.print(tables);
        console.println("\ntables: " + outDir.resolve("pipeline.md") + "; at the end: " + BenchLaunch.loadAverage());
        console.flush();
        return failures.isEmpty() ? 0 : 1;
    }

    /** The bench's model defaults, then the user's overrides, then what the case measures (and where it goes), which win. */
    private List<String> settings(String schedule, int p, Path runDir) {
        List<String> s = new ArrayList<>(MODEL_DEFAULTS);
        s.addAll(overrides);
        s.addAll(common(runDir));
        s.addAll(List.of("parallel.dp=1", "parallel.tp=1", "parallel.pp=" + p, "parallel.pp_schedule=" + schedule,
                "parallel.pp_virtual_stages=" + (schedule.equals("interleaved") ? virtualStages : 1)));
        return s;
    }

    private List<String> tpSettings(int tp, Path runDir) {
        List<String> s = new ArrayList<>(MODEL_DEFAULTS);
        s.addAll(overrides);
        s.addAll(common(runDir));
        s.addAll(List.of("parallel.dp=1", "parallel.pp=1", "parallel.tp=" + tp));
        return s;
    }

    private List<String> common(Path runDir) {
        List<String> s = new ArrayList<>(List.of("train.steps=" + steps, "train.grad_accum=" + microBatches, "train.eval_every=0", "train.save_every=0",
                "sample.tokens=0", "parallel.zero=0"));
        if (runDir != null) s.add("train.out_dir=" + runDir);
        return s;
    }

    private PipelineCase runPipeline(String schedule, int p, Path runDir) throws IOException {
        int v = schedule.equals("interleaved") ? virtualStages : 1;
        BenchLaunch.Outcome o = BenchLaunch.launch(config, p, settings(schedule, p, runDir), runDir);
        if (o.exitCode() != 0)
            return PipelineCase.failed(schedule, p, microBatches, v, "weft launch exited " + o.exitCode() + ": " + o.firstFailure() + " (see " + runDir.resolve("launch.out") + ")");
        List<RankTimeline> ranks = new ArrayList<>();
        for (int r = 0; r < p; r++) {
            Path log = runDir.resolve("logs/rank-" + r + ".log");
            RankTimeline t = parseTimeline(Files.readString(log));
            if (t == null || t.timedSteps() == 0) return PipelineCase.failed(schedule, p, microBatches, v, "rank " + r + " printed no timed pipeline timeline (see " + log + ")");
            ranks.add(t);
        }
        return new PipelineCase(schedule, p, microBatches, v, ranks, timedSteps(runDir), null);
    }

    private TpCase runTp(int tp, int threads, Path runDir) throws IOException {
        BenchLaunch.Outcome o = BenchLaunch.launch(config, tp, tpSettings(tp, runDir), runDir);
        if (o.exitCode() != 0)
            return new TpCase(tp, threads, List.of(), -1, "weft launch exited " + o.exitCode() + ": " + o.firstFailure() + " (see " + runDir.resolve("launch.out") + ")");
        long peak = 0;
        for (int r = 0; r < tp; r++) {
            ZeroBenchCommand.RankFigures f = ZeroBenchCommand.parseRankLog(r, Files.readString(runDir.resolve("logs/rank-" + r + ".log")));
            if (f != null) peak = Math.max(peak, f.peakLive());
        }
        return new TpCase(tp, threads, timedSteps(runDir), peak, null);
    }

    private static List<Double> timedSteps(Path runDir) throws IOException {
        return BenchLaunch.timedSteps(MetricsLog.read(runDir.resolve("metrics.jsonl")), WARMUP_STEPS);
    }

    private static void describe(PrintWriter console, PipelineCase c) {
        if (c.failure() != null) {
            console.println("FAILED: " + c.failure());
        } else {
            for (RankTimeline r : c.ranks())
                console.printf(Locale.ROOT, "rank %d: busy %.3f of %.3f s over %d steps (bubble %.3f); held up to %s of activations; %s%n", r.rank(), r.busySeconds(),
                        r.wallSeconds(), r.timedSteps(), 1 - r.busySeconds() / r.wallSeconds(), Bytes.human(r.peakHeldBytes()), describeStages(r.stages()));
            double transfer = c.transferSeconds();
            console.printf(Locale.ROOT, "bubble: measured %.3f (median step %.3f); simulated %.3f with free transfers, %.3f with the measured %.2f ms per transfer; "
                            + "theory %.3f; last step %.3f, replayed with its own times %.3f%n", c.measuredBubble(), c.medianStepBubble(), c.simulated(0).bubbleFraction(),
                    c.simulated(transfer).bubbleFraction(), transfer * 1e3, c.theory(), c.lastStepBubble(), c.lastStepReplayBubble());
        }
        console.flush();
    }

    private static String describeStages(List<StageTimes> stages) {
        StringBuilder out = new StringBuilder();
        for (StageTimes s : stages) {
            if (!out.isEmpty()) out.append("; ");
            out.append("stage ").append(s.stage()).append(':');
            String[] names = {"F", "B", "I", "W"};
            double[] ms = {s.forward(), s.backward(), s.backwardInput(), s.backwardWeight()};
            for (int k = 0; k < 4; k++) if (!Double.isNaN(ms[k])) out.append(String.format(Locale.ROOT, " %s %.1f ms", names[k], ms[k]));
        }
        return out.toString();
    }

    private static final Pattern TIMELINE = Pattern.compile(
            "pipeline timeline: rank (\\d+) of (\\d+), (\\d+) timed steps after \\d+ warm-up, wall ([0-9.]+) s, busy ([0-9.]+) s \\([^)]*\\)(.*); peak held (\\d+) B(.*)");
    private static final Pattern STAGE = Pattern.compile("stage (\\d+):([^;]*)");
    private static final Pattern LAST_STEP = Pattern.compile("pipeline last step \\(rank (\\d+), ns\\):(.*)");
    private static final Pattern STEPS = Pattern.compile("([0-9.]+)/([0-9.]+) ms");
    private static final Pattern KIND = Pattern.compile("([FBIW]) (\\d+) x ([0-9.]+) ms");

    /** The timeline line a rank's log ends with (the last, if it restarted); null without one. */
    static RankTimeline parseTimeline(String log) {
        Matcher m = TIMELINE.matcher(log);
        RankTimeline last = null;
        while (m.find()) {
            List<StageTimes> stages = new ArrayList<>();
            Matcher sm = STAGE.matcher(m.group(6));
            while (sm.find()) {
                double[] ms = {Double.NaN, Double.NaN, Double.NaN, Double.NaN};
                Matcher km = KIND.matcher(sm.group(2));
                while (km.find()) ms["FBIW".indexOf(km.group(1))] = Double.parseDouble(km.group(3));
                stages.add(new StageTimes(Integer.parseInt(sm.group(1)), ms[0], ms[1], ms[2], ms[3]));
            }
            List<Double> busy = new ArrayList<>(), wall = new ArrayList<>();
            Matcher steps = STEPS.matcher(m.group(8));
            while (steps.find()) {
                busy.add(Double.parseDouble(steps.group(1)) / 1e3);
                wall.add(Double.parseDouble(steps.group(2)) / 1e3);
            }
            last = new RankTimeline(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(3)), Double.parseDouble(m.group(4)),
                    Double.parseDouble(m.group(5)), stages, Long.parseLong(m.group(7)), busy.stream().mapToDouble(Double::doubleValue).toArray(),
                    wall.stream().mapToDouble(Double::doubleValue).toArray(), new long[0], new long[0]);
        }
        if (last == null) return null;
        Matcher lm = LAST_STEP.matcher(log);
        String times = null;
        while (lm.find()) if (Integer.parseInt(lm.group(1)) == last.rank()) times = lm.group(2);
        if (times == null) return last;
        String[] entries = times.strip().split(", ");
        long[] start = new long[entries.length], end = new long[entries.length];
        for (int i = 0; i < entries.length; i++) {
            String[] f = entries[i].strip().split(" ");
            start[i] = Long.parseLong(f[1]);
            end[i] = Long.parseLong(f[2]);
        }
        return last.withLastStep(start, end);
    }

    /**
     * The target a schedule's measured bubble is held to and whether it met it, by the mean over the
     * timed steps and, where the ranks printed their steps, by the median step; "-" for GPipe, which has none.
     */
    static String target(PipelineCase c, PipelineCase oneFOneB) {
        String verdict = switch (c.schedule()) {
            case "1f1b" -> String.format(Locale.ROOT, "within %.0f%% of theory: ", 100 * ONE_F_ONE_B_TOLERANCE);
            case "zbh1" -> String.format(Locale.ROOT, "<= %.1fx 1F1B: ", ZBH1_TARGET);
            case "interleaved" -> String.format(Locale.ROOT, "<= %.1fx 1F1B: ", INTERLEAVED_TARGET);
            default -> null;
        };
        if (verdict == null) return "-";
        if (!c.schedule().equals("1f1b") && oneFOneB == null) return verdict + "no 1F1B run";
        String mean = judge(c, c.measuredBubble(), oneFOneB == null ? Double.NaN : oneFOneB.measuredBubble());
        double median = c.medianStepBubble();
        if (Double.isNaN(median)) return verdict + mean;
        return verdict + mean + "; median step " + judge(c, median, oneFOneB == null ? Double.NaN : oneFOneB.medianStepBubble());
    }

    /** "met (+10%)" against theory for 1F1B, "missed (0.80x)" against 1F1B's {@code baseline} for the others. */
    private static String judge(PipelineCase c, double bubble, double baseline) {
        if (c.schedule().equals("1f1b")) {
            double off = bubble / c.theory() - 1;
            return String.format(Locale.ROOT, "%s (%+.0f%%)", Math.abs(off) <= ONE_F_ONE_B_TOLERANCE ? "met" : "missed", 100 * off);
        }
        double limit = c.schedule().equals("zbh1") ? ZBH1_TARGET : INTERLEAVED_TARGET, ratio = bubble / baseline;
        return String.format(Locale.ROOT, "%s (%.2fx)", ratio <= limit ? "met" : "missed", ratio);
    }

    static String pipelineTable(List<PipelineCase> cases) {
        StringBuilder sb = new StringBuilder();
        sb.append("| pp | schedule | bubble measured | median step's bubble | simulated, free transfers | simulated, measured transfers | theory | measured / theory | target "
                + "| last step: measured, replayed with its own times | activations held per rank (peak) | micro-batches in flight per rank (simulated) | median step (quartiles) | step vs 1F1B |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (PipelineCase c : cases) {
            String name = c.schedule().equals("interleaved") ? "interleaved (v " + c.virtualStages() + ")" : c.schedule();
            if (c.failure() != null) {
                sb.append(String.format(Locale.ROOT, "| %d | %s | failed: %s | - | - | - | %.3f | - | - | - | - | - | - | - |%n", c.pp(), name, c.failure(), c.theory()));
                continue;
            }
            PipelineCase base = cases.stream().filter(b -> b.pp() == c.pp() && b.schedule().equals("1f1b") && b.failure() == null).findFirst().orElse(null);
            ScheduleSimulator.Simulation sim = c.simulated(0);
            double transfer = c.transferSeconds();
            StringBuilder held = new StringBuilder(), inFlight = new StringBuilder();
            List<RankTimeline> ranks = new ArrayList<>(c.ranks());
            ranks.sort(Comparator.comparingInt(RankTimeline::rank));
            for (RankTimeline r : ranks) {
                held.append(held.isEmpty() ? "" : ", ").append(Bytes.human(r.peakHeldBytes()));
                inFlight.append(inFlight.isEmpty() ? "" : ", ").append(sim.rank(r.rank()).peakInFlight());
            }
            BenchLaunch.StepTimes t = BenchLaunch.stepTimes(c.timedSteps());
            String vsBase = base == null ? "-" : c == base ? "1.00x (baseline)"
                    : String.format(Locale.ROOT, "%.2fx", t.median() / BenchLaunch.stepTimes(base.timedSteps()).median());
            sb.append(String.format(Locale.ROOT, "| %d | %s | %.3f | %.3f | %.3f | %.3f (%.2f ms each) | %.3f | %.2f | %s | %.3f, %.3f | %s | %s | %.3f s (%.2f-%.2f) | %s |%n",
                    c.pp(), name, c.measuredBubble(), c.medianStepBubble(), sim.bubbleFraction(), c.simulated(transfer).bubbleFraction(), transfer * 1e3, c.theory(),
                    c.measuredBubble() / c.theory(), target(c, base), c.lastStepBubble(), c.lastStepReplayBubble(), held, inFlight, t.median(), t.p25(), t.p75(), vsBase));
        }
        return sb.toString();
    }

    /** What the reader needs beside the figures: oversubscribed cores, and what the memory column counts. */
    static String notes(List<PipelineCase> cases, int cores) {
        StringBuilder sb = new StringBuilder("\n");
        sb.append("Activations held: the pool's live bytes above the step's start, sampled as each computation ends (saved tensors, received ")
                .append("buffers, the output just made), per rank in pipeline order. Simulated: the schedule replayed with each stage's mean ")
                .append("F, B, I and W times of the same run, with free transfers and with the mean latency of the last step's waiting receives; ")
                .append("the last step also replayed with each computation's own time.\n");
        cases.stream().mapToInt(PipelineCase::pp).filter(p -> p > cores).distinct().forEach(p -> sb.append(String.format(Locale.ROOT,
                "pp %d runs %d rank processes on %d cores: a rank's computations include waiting for a core, and a rank waiting on a receive "
                        + "lends its core to another, so the measured bubble there is the schedule's and the oversubscription's together.%n", p, p, cores)));
        return sb.toString();
    }

    static String tpTable(List<TpCase> cases) {
        StringBuilder sb = new StringBuilder();
        sb.append("| layout | ranks x compute threads | median step (quartiles) | vs one rank | target | peak live per rank |\n");
        sb.append("|---|---|---|---|---|---|\n");
        TpCase base = cases.stream().filter(c -> c.tp() == 1 && c.failure() == null).findFirst().orElse(null);
        for (TpCase c : cases) {
            String layout = c.tp() == 1 ? "one rank" : "tp " + c.tp();
            if (c.failure() != null) {
                sb.append(String.format(Locale.ROOT, "| %s | %d x %d | failed: %s | - | - | - |%n", layout, c.tp(), c.threadsPerRank(), c.failure()));
                continue;
            }
            BenchLaunch.StepTimes t = BenchLaunch.stepTimes(c.timedSteps());
            String vs = "-", target = "-";
            if (c == base) {
                vs = "1.00x (baseline)";
            } else if (base != null) {
                double ratio = t.median() / BenchLaunch.stepTimes(base.timedSteps()).median();
                vs = String.format(Locale.ROOT, "%.2fx", ratio);
                target = String.format(Locale.ROOT, "<= %.2fx: %s", TP_TARGET, ratio <= TP_TARGET ? "met" : "missed");
            }
            sb.append(String.format(Locale.ROOT, "| %s | %d x %d | %.3f s (%.2f-%.2f) | %s | %s | %s |%n", layout, c.tp(), c.threadsPerRank(), t.median(),
                    t.p25(), t.p75(), vs, target, c.peakLive() < 0 ? "n/a" : Bytes.human(c.peakLive())));
        }
        return sb.toString();
    }
}
