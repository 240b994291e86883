package dev.weft.launcher;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * What the benches that train share: one {@code weft launch} per case, run through the CLI in-process
 * with its output captured (so the figures are those of real rank JVMs over the configured
 * transport), and the statistics of the step times it leaves in metrics.jsonl.
 */
final class BenchLaunch {
    private BenchLaunch() {}

    /** How a launch ended and what it printed. */
    record Outcome(int exitCode, String output) {
        /** The launcher's line naming the first failure. */
        String firstFailure() {
            for (String line : output.split("\n")) if (line.startsWith("weft launch: rank ") || line.startsWith("weft launch: error")) return line.strip();
            return "no failure line in its output";
        }
    }

    /** Step seconds after the warm-up: median and quartiles. */
    record StepTimes(double p25, double median, double p75) {}

    /**
     * Runs {@code weft launch --nproc-per-node nproc config} with {@code settings} as {@code --set}s, in
     * order (a later one wins), and leaves its output in {@code runDir/launch.out}.
     */
    static Outcome launch(Path config, int nproc, List<String> settings, Path runDir) throws IOException {
        Files.createDirectories(runDir);
        List<String> args = new ArrayList<>(List.of("launch", "--nproc-per-node", Integer.toString(nproc), config.toString()));
        for (String o : settings) args.addAll(List.of("--set", o));
        var launch = Main.commandLine();
        StringWriter output = new StringWriter();
        try (PrintWriter w = new PrintWriter(output)) {
            launch.setOut(w);
            launch.setErr(w);
            int code = launch.execute(args.toArray(String[]::new));
            w.flush();
            Files.writeString(runDir.resolve("launch.out"), output.toString());
            return new Outcome(code, output.toString());
        }
    }

    /**
     * Quartiles of the timed steps (NaN when there are none). The
     * spread goes beside the median because ranks time-slice the cores with each other and with
     * other jobs, so one step can take twice its neighbour's time; a ratio inside the spread is noise.
     */
    static StepTimes stepTimes(List<Double> timedSteps) {
        if (timedSteps.isEmpty()) return new StepTimes(Double.NaN, Double.NaN, Double.NaN);
        List<Double> timed = new ArrayList<>(timedSteps);
        timed.sort(null);
        return new StepTimes(quantile(timed, 0.25), quantile(timed, 0.5), quantile(timed, 0.75));
    }

    /** step_seconds of a run's steps after the first {@code warmup}, in step order (records without one, such as evaluations, left out). */
    static List<Double> timedSteps(List<Map<String, Object>> metrics, int warmup) {
        List<Double> times = new ArrayList<>();
        for (Map<String, Object> r : metrics) if (r.get("step_seconds") instanceof Number s) times.add(s.doubleValue());
        return times.size() <= warmup ? List.of() : List.copyOf(times.subList(warmup, times.size()));
    }

    /** Linear interpolation between the closest ranks, so the median of an even count is the mean of the middle two. */
    private static double quantile(List<Double> sorted, double q) {
        double at = q * (sorted.size() - 1);
        int lo = (int) Math.floor(at), hi = (int) Math.ceil(at);
        return sorted.get(lo) + (at - lo) * (sorted.get(hi) - sorted.get(lo));
    }

    /** The kernel's 1/5/15-minute load averages: how busy the machine was beside the ranks, for the reader of the figures. */
    static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).strip().split(" ");
            return "load average " + f[0] + ", " + f[1] + ", " + f[2];
        } catch (IOException | RuntimeException e) {
            return "load average unavailable";
        }
    }

    static String join(int[] values) {
        StringBuilder sb = new StringBuilder();
        for (int v : values) sb.append(sb.isEmpty() ? "" : ",").append(v);
        return sb.toString();
    }
}
