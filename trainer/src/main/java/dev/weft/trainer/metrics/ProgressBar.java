package dev.weft.trainer.metrics;

import java.io.Console;
import java.io.PrintStream;
import java.util.Locale;
import java.util.function.LongSupplier;

/**
 * Training progress on one line:
 * {@code step 120/2000 [#.......] 6% loss 2.3456 | 41.2k tok/s | ETA 3m12s}.
 *
 * <p>Interactive mode (a terminal) redraws the line in place with {@code '\r'}, at most ten
 * times a second. Non-interactive mode (a log file, CI) prints a full line on the first update,
 * whenever another tenth of the run is done, at most every {@code logInterval} seconds
 * otherwise (30 s by default), and at the last step, so logs stay short.
 *
 * <p>The ETA comes from the time per step, smoothed exponentially (weight 0.1 per step, however
 * often {@link #update} is called). The first update only starts the clock, so the JIT warm-up
 * and data loading of the first step do not distort it; until a second update it shows "--".
 */
public final class ProgressBar {
    static final int BAR_WIDTH = 20;
    static final long REDRAW_NANOS = 100_000_000L;
    private static final double SMOOTHING = 0.1;

    private final PrintStream out;
    private final long totalSteps;
    private final boolean interactive;
    private final LongSupplier nanoClock;
    private final long logIntervalNanos;

    // latest state, whether shown or not (finish() shows it)
    private long step = -1;
    private double loss = Double.NaN, tokensPerSecond = Double.NaN;
    // step timing for the ETA
    private long clockStep = -1, clockTime;
    private double secondsPerStep = Double.NaN;
    // what is on screen / in the log
    private String shownLine;
    private long shownStep = -1, shownTime;
    private boolean finished;

    public ProgressBar(PrintStream out, long totalSteps, boolean interactive) {
        this(out, totalSteps, interactive, System::nanoTime, 30);
    }

    /** With an injectable clock (nanoseconds) and the non-interactive print interval, for tests. */
    ProgressBar(PrintStream out, long totalSteps, boolean interactive, LongSupplier nanoClock, double logIntervalSeconds) {
        if (out == null) throw new IllegalArgumentException("out must not be null");
        if (totalSteps < 1) throw new IllegalArgumentException("totalSteps must be >= 1, got " + totalSteps);
        if (!(logIntervalSeconds > 0)) throw new IllegalArgumentException("logIntervalSeconds must be > 0, got " + logIntervalSeconds);
        this.out = out;
        this.totalSteps = totalSteps;
        this.interactive = interactive;
        this.nanoClock = nanoClock;
        this.logIntervalNanos = (long) (logIntervalSeconds * 1e9);
    }

    /** True when standard output is a terminal, where the bar can redraw in place. */
    public static boolean isTerminal() {
        // Since JDK 22 System.console() is non-null even when redirected; isTerminal() tells.
        Console c = System.console();
        return c != null && c.isTerminal();
    }

    /** Records that {@code step} steps are done, with the latest loss and throughput; redraws if due. */
    public synchronized void update(long step, double loss, double tokensPerSecond) {
        if (finished) return;
        long now = nanoClock.getAsLong();
        if (clockStep < 0 || step < clockStep) {
            clockStep = step;
            clockTime = now;
        } else if (step > clockStep) {
            long steps = step - clockStep;
            double perStep = (now - clockTime) / 1e9 / steps;
            double weight = 1 - Math.pow(1 - SMOOTHING, steps);
            secondsPerStep = Double.isNaN(secondsPerStep) ? perStep : secondsPerStep + weight * (perStep - secondsPerStep);
            clockStep = step;
            clockTime = now;
        }
        this.step = step;
        this.loss = loss;
        this.tokensPerSecond = tokensPerSecond;
        if (due(now)) show(now);
    }

    private boolean due(long now) {
        if (shownStep < 0 || step >= totalSteps) return step != shownStep || shownLine == null;
        if (interactive) return now - shownTime >= REDRAW_NANOS;
        return decile(step) > decile(shownStep) || now - shownTime >= logIntervalNanos;
    }

    private long decile(long s) {
        return Math.min(10, Math.max(0, s) * 10 / totalSteps);
    }

    private void show(long now) {
        String line = render(step, totalSteps, loss, tokensPerSecond, eta());
        if (interactive) {
            out.print("\r" + line + " ".repeat(Math.max(0, shownLine == null ? 0 : shownLine.length() - line.length())));
        } else {
            out.println(line);
        }
        out.flush();
        shownLine = line;
        shownStep = step;
        shownTime = now;
    }

    private double eta() {
        if (Double.isNaN(secondsPerStep)) return Double.NaN;
        return Math.max(0, totalSteps - step) * secondsPerStep;
    }

    /** Prints a line of its own; in interactive mode the bar is cleared first and redrawn below it. */
    public synchronized void message(String text) {
        if (interactive && shownLine != null && !finished) {
            out.print("\r" + " ".repeat(shownLine.length()) + "\r");
            out.println(text);
            out.print(shownLine);
        } else {
            out.println(text);
        }
        out.flush();
    }

    /** Shows the latest state if it was not shown yet and ends the bar's line. Further updates are ignored. */
    public synchronized void finish() {
        if (finished) return;
        if (step >= 0 && step != shownStep) show(nanoClock.getAsLong());
        if (interactive && shownLine != null) out.println();
        out.flush();
        finished = true;
    }

    // ---- formatting -------------------------------------------------------------------------------

    private static final java.util.regex.Pattern PROGRESS = java.util.regex.Pattern.compile("^step \\d+/\\d+ \\[[#.]*\\] .*");

    /** True for a line this bar printed (non-interactive mode): the launcher shows only rank 0's on the console. */
    public static boolean isProgressLine(String line) {
        return PROGRESS.matcher(line).matches();
    }

    static String render(long step, long total, double loss, double tokensPerSecond, double etaSeconds) {
        long clamped = Math.clamp(step, 0, total);
        int filled = (int) (clamped * BAR_WIDTH / total);
        String bar = "#".repeat(filled) + ".".repeat(BAR_WIDTH - filled);
        return String.format(Locale.ROOT, "step %d/%d [%s] %d%% loss %.4f | %s tok/s | ETA %s",
                step, total, bar, clamped * 100 / total, loss, rate(tokensPerSecond), duration(etaSeconds));
    }

    /** 812, 41.2k, 1.35M, 2.10G. */
    static String rate(double perSecond) {
        if (!(perSecond >= 0) || Double.isInfinite(perSecond)) return "--";
        if (perSecond < 999.5) return String.format(Locale.ROOT, "%.0f", perSecond);
        if (perSecond < 999_950) return String.format(Locale.ROOT, "%.1fk", perSecond / 1e3);
        if (perSecond < 999_995_000) return String.format(Locale.ROOT, "%.2fM", perSecond / 1e6);
        return String.format(Locale.ROOT, "%.2fG", perSecond / 1e9);
    }

    /** 45s, 3m12s, 1h05m, 2d03h; "--" when unknown. */
    static String duration(double seconds) {
        if (!(seconds >= 0) || Double.isInfinite(seconds)) return "--";
        long s = Math.round(seconds);
        if (s < 60) return s + "s";
        if (s < 3600) return String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
        long m = Math.round(seconds / 60);
        if (m < 24 * 60) return String.format(Locale.ROOT, "%dh%02dm", m / 60, m % 60);
        long h = Math.round(seconds / 3600);
        return String.format(Locale.ROOT, "%dd%02dh", h / 24, h % 24);
    }
}
