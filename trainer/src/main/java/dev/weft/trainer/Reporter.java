package dev.weft.trainer;

import dev.weft.trainer.metrics.LossPlot;
import dev.weft.trainer.metrics.MetricsLog;
import dev.weft.trainer.metrics.ProgressBar;

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
 * What a run shows and leaves behind: the progress bar, one metrics.jsonl record per step (the
 * optimizer's step stats included), the loss-curve PNG and the closing lines. Only the leader
 * writes files; every rank prints its own lines (the launcher shows rank 0's bar alone).
 */
final class Reporter implements AutoCloseable {
    private final PrintStream out;
    private final Path outDir, metricsFile;
    private final boolean leader;
    private final List<Map<String, Object>> history;
    private final Map<String, double[]> statTotals = new LinkedHashMap<>(); // optimizer step stats: {sum, count}
    private final ProgressBar bar;
    private final MetricsLog metrics;

    /** {@code resumedAt}: the step a resumed run starts from (its earlier records are kept), or -1 for a fresh run. */
    Reporter(PrintStream out, Path outDir, long totalSteps, boolean leader, long resumedAt) {
        this.out = out;
        this.outDir = outDir;
        this.leader = leader;
        this.metricsFile = outDir.resolve("metrics.jsonl");
        this.history = leader ? keepHistoryUpTo(metricsFile, resumedAt) : new ArrayList<>();
        this.bar = new ProgressBar(out, totalSteps, ProgressBar.isTerminal());
        this.metrics = leader ? openMetrics(metricsFile, true) : null;
    }

    /**
     * One step's record; {@code valLoss} is NaN on steps without evaluation. {@code stepStats} are the
     * optimizer's (their means close the run); {@code timings} go into the record alone.
     */
    void step(long step, double loss, double lr, double gradNorm, long tokens, double seconds, double tokensPerSecond,
              Map<String, Double> stepStats, Map<String, Double> timings, double valLoss, double baseline) {
        Map<String, Object> rec = new LinkedHashMap<>();
        rec.put("step", step);
        rec.put("loss", loss);
        rec.put("lr", lr);
        rec.put("grad_norm", gradNorm);
        rec.put("tokens", tokens);
        rec.put("step_seconds", seconds);
        rec.put("tokens_per_second", tokensPerSecond);
        stepStats.forEach((k, v) -> {
            rec.put(k, v);
            double[] tot = statTotals.computeIfAbsent(k, x -> new double[2]);
            tot[0] += v;
            tot[1]++;
        });
        rec.putAll(timings);
        if (!Double.isNaN(valLoss)) {
            rec.put("val_loss", valLoss);
            bar.message(String.format("step %d: val loss %.4f (unigram baseline %.4f)", step, valLoss, baseline));
        }
        if (metrics != null) metrics.log(rec);
        history.add(rec);
        bar.update(step, loss, tokensPerSecond);
    }

    /** Ends the bar and, on the leader, writes the loss curve. */
    void finishSteps() {
        bar.finish();
        if (leader) writePlot(outDir, history);
    }

    /** The closing lines after the final losses: optimizer stats and where the files are. */
    void summary() {
        if (!statTotals.isEmpty()) {
            List<String> parts = new ArrayList<>();
            statTotals.forEach((k, tot) -> parts.add(String.format("%s %.3f", k, tot[0] / tot[1])));
            out.println("optimizer stats, mean per step: " + String.join(", ", parts));
        }
        if (leader) out.println("metrics: " + metricsFile + ", loss curve: " + outDir.resolve("loss.png"));
    }

    /** The {step, val loss} points of the whole run (earlier ones read back from metrics.jsonl on resume). */
    List<double[]> valCurve() {
        List<double[]> valCurve = new ArrayList<>();
        for (Map<String, Object> r : history)
            if (r.get("val_loss") instanceof Number v) valCurve.add(new double[]{((Number) r.get("step")).doubleValue(), v.doubleValue()});
        return valCurve;
    }

    @Override
    public void close() {
        if (metrics != null) metrics.close();
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

}
