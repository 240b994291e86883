package dev.weft.launcher;

import dev.weft.trainer.metrics.MetricsLog;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code weft bench snapshot}: what every-step in-memory snapshots cost and what they buy, in one
 * run of real rank JVMs: the step time with and without them (the stall), the rate at which
 * snapshots are coded and shipped, and a kill -9 of a rank mid-run, with the recovery split into
 * detection, restart and restore from memory, against restoring the same model from the
 * persistent checkpoint. Reported, not asserted.
 */
@Command(name = "snapshot", mixinStandardHelpOptions = true,
        description = "Measure every-step in-memory snapshots: stall, throughput, and recovery from a kill -9 against a disk restore.")
public final class SnapshotBenchCommand implements java.util.concurrent.Callable<Integer> {
    @Parameters(arity = "0..1", paramLabel = "CONFIG", description = "The training config (default: the bundled example)")
    Path config = Path.of("examples/tinyshakespeare.yaml");

    @Option(names = "--nproc", description = "Ranks (default: ${DEFAULT-VALUE})") int nproc = 2;
    @Option(names = "--steps", description = "Steps per run (default: ${DEFAULT-VALUE})") int steps = 30;
    @Option(names = "--out", paramLabel = "DIR", description = "Where the runs go (default: ${DEFAULT-VALUE})") Path out = Path.of("runs/bench-snapshot");
    @Option(names = "--store", paramLabel = "DIR", description = "Snapshot stores (default: ${DEFAULT-VALUE})") Path store = Path.of("/dev/shm/weft-bench-snapshot");

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    /** A writer that remembers when each line arrived, so events in a launch's live output can be timed. */
    static final class TimedLines extends Writer {
        final List<long[]> at = new ArrayList<>(); // {nanos, index}
        final List<String> lines = new ArrayList<>();
        private final StringBuilder current = new StringBuilder();

        @Override
        public synchronized void write(char[] buf, int off, int len) {
            for (int i = off; i < off + len; i++) {
                if (buf[i] == '\n') {
                    lines.add(current.toString());
                    at.add(new long[] {System.nanoTime(), lines.size() - 1});
                    current.setLength(0);
                } else current.append(buf[i]);
            }
        }

        /** When the first line at or after {@code from} containing {@code needle} arrived; -1 if none. */
        synchronized long first(String needle, long from) {
            for (long[] a : at) if (a[0] >= from && lines.get((int) a[1]).contains(needle)) return a[0];
            return -1;
        }

        synchronized String firstLine(Pattern p) {
            for (String l : lines) if (p.matcher(l).find()) return l;
            return null;
        }

        synchronized String text() {
            return String.join("\n", lines);
        }

        @Override public void flush() {}
        @Override public void close() {}
    }

    private record Run(int code, TimedLines output, Path dir) {}

    private Run launch(String name, List<String> extra, List<String> sets) {
        Path dir = out.resolve(name);
        List<String> args = new ArrayList<>(List.of("launch", "--nproc-per-node", Integer.toString(nproc)));
        args.addAll(extra);
        args.add(config.toString());
        List<String> all = new ArrayList<>(List.of("train.out_dir=" + dir.toAbsolutePath(), "train.steps=" + steps, "train.eval_every=0", "train.save_every=0",
                "sample.tokens=0", "snapshot.store=" + store.resolve(name).toAbsolutePath(), "snapshot.domain=rank"));
        all.addAll(sets);
        for (String s : all) args.addAll(List.of("--set", s));
        TimedLines lines = new TimedLines();
        var cl = Main.commandLine();
        PrintWriter w = new PrintWriter(lines, true);
        cl.setOut(w);
        cl.setErr(w);
        int code = cl.execute(args.toArray(String[]::new));
        w.flush();
        return new Run(code, lines, dir);
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter o = spec.commandLine().getOut();
        if (!Files.exists(config)) throw new IllegalArgumentException("config file not found: " + config);
        if (nproc < 2) throw new IllegalArgumentException("--nproc must be >= 2: a snapshot is coded over the other ranks' domains");
        if (steps < 10) throw new IllegalArgumentException("--steps must be >= 10, got " + steps);
        Files.createDirectories(out);
        String code = (nproc - 1) + "+1";
        o.printf("weft bench snapshot: %s, %d ranks, %d steps per run, RS(%s) over rank domains, stores in %s; %s%n", config, nproc, steps, code, store,
                BenchLaunch.loadAverage());
        int micro = Math.max(1, dev.weft.trainer.config.TrainConfig.load(config, List.of()).train().microBatch() / nproc);
        List<String> batch = List.of("train.micro_batch=" + micro);

        o.println("1/4 without snapshots ...");
        o.flush();
        Run plain = launch("plain", List.of(), batch);
        check(plain, "the run without snapshots");
        o.println("2/4 with a snapshot after every step ...");
        o.flush();
        List<String> snap = new ArrayList<>(batch);
        snap.addAll(List.of("snapshot.every=1", "snapshot.ec=" + code));
        Run every = launch("every-step", List.of(), snap);
        check(every, "the run with snapshots");

        BenchLaunch.StepTimes a = BenchLaunch.stepTimes(BenchLaunch.timedSteps(MetricsLog.read(plain.dir().resolve("metrics.jsonl")), 3));
        BenchLaunch.StepTimes b = BenchLaunch.stepTimes(BenchLaunch.timedSteps(MetricsLog.read(every.dir().resolve("metrics.jsonl")), 3));
        double stall = (b.median() - a.median()) / a.median();
        o.printf("step time without snapshots: median %.1f ms (p25 %.1f, p75 %.1f)%n", 1e3 * a.median(), 1e3 * a.p25(), 1e3 * a.p75());
        o.printf("step time with every-step snapshots: median %.1f ms (p25 %.1f, p75 %.1f): %.3fx, stall %+.1f%% (target <= 1%%: %s)%n", 1e3 * b.median(),
                1e3 * b.p25(), 1e3 * b.p75(), b.median() / a.median(), 100 * stall, stall <= 0.01 ? "met" : "MISSED");
        String summary = every.output().firstLine(Pattern.compile("\\[rank 0\\] snapshot: \\d+ taken"));
        o.println("rank 0's own count: " + (summary == null ? "(no summary line)" : summary.replace("[rank 0] ", "")));
        o.println("memory: " + rss(plain.output(), "without") + "; " + rss(every.output(), "with"));

        o.println("3/4 kill -9 of rank 1 mid-run, restart from memory ...");
        o.flush();
        List<String> kill = new ArrayList<>(snap);
        kill.add("train.save_every=" + steps / 3);
        Path killDir = out.resolve("kill");
        long[] killedAt = {0};
        List<long[]> counts = java.util.Collections.synchronizedList(new ArrayList<>()); // {nanos, metrics lines} at each change
        java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
        // its own thread, not the common pool: the launcher learns of a rank's exit through that pool, which has one thread on 2 cores
        Thread killer = Thread.ofPlatform().name("weft-bench-killer").start(() -> killAt(killDir, steps / 2, killedAt, counts, done));
        Run k = launch("kill", List.of("--max-restarts", "1"), kill);
        done.set(true);
        killer.join(60_000);
        check(k, "the run with the kill");
        long t = killedAt[0];
        long detected = k.output().first("failed first", t), started = k.output().first("attempt 1: started", t),
                joined = k.output().first("attempt 1)", t), restoredLine = k.output().first("snapshot: restored step", t);
        double restoreMs = number(k.output().firstLine(Pattern.compile("snapshot: restored step \\d+ from memory in")), "in (\\d+) ms");
        long restoredStep = (long) number(k.output().firstLine(Pattern.compile("snapshot: restored step \\d+")), "restored step (\\d+)");
        long nextStep = -1; // when rank 0 logged the first step after the restored one
        synchronized (counts) {
            for (long[] c : counts) if (c[0] >= restoredLine && c[1] == restoredStep + 1) {
                nextStep = c[0];
                break;
            }
        }
        o.printf("recovery: detection %.2f s (kill to the launcher's report), restart %.2f s (to the ranks' rendezvous, JVM start included), "
                        + "restore from memory %.0f ms (target <= 1 s: %s), failure to the next step %.2f s (target <= 5 s + JVM start)%n",
                (detected - t) / 1e9, (joined - detected) / 1e9, restoreMs, restoreMs <= 1000 ? "met" : "MISSED", (nextStep - t) / 1e9);
        o.println("  " + k.output().firstLine(Pattern.compile("snapshot: restored step")).replaceFirst("^\\[rank \\d+\\] ", ""));

        o.println("4/4 the same model restored from its persistent checkpoint ...");
        o.flush();
        Run disk = launch("kill", List.of("--resume"), List.of("train.micro_batch=" + micro, "snapshot.every=0"));
        double diskMs = number(disk.output().firstLine(Pattern.compile("weft: resumed from .* in \\d+ ms")), "in (\\d+) ms");
        o.printf("restore from the persistent checkpoint: %.0f ms; from memory %.0f ms: %.2fx%n", diskMs, restoreMs, diskMs / restoreMs);
        o.printf("(JVM start and rendezvous are %.2f s of the restart: started %.2f s after the report)%n", (joined - started) / 1e9, (started - detected) / 1e9);
        o.flush();
        return 0;
    }

    /** Kills rank 1 once rank 0 has logged {@code step} steps, then notes each change of the metrics' length until {@code done}. */
    private void killAt(Path dir, int step, long[] killedAt, List<long[]> counts, java.util.concurrent.atomic.AtomicBoolean done) {
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(300);
            Path metrics = dir.resolve("metrics.jsonl");
            while (!(Files.exists(metrics) && Files.readAllLines(metrics).size() >= step)) {
                if (System.nanoTime() > deadline || done.get()) throw new IllegalStateException("the kill run never reached step " + step);
                Thread.sleep(20);
            }
            long pid = Long.parseLong(Files.readString(dir.resolve("logs/rank-1.pid")).strip());
            killedAt[0] = System.nanoTime();
            ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
            long last = -1;
            while (!done.get()) {
                long n;
                try {
                    n = Files.exists(metrics) ? Files.readAllLines(metrics).size() : 0;
                } catch (IOException | java.io.UncheckedIOException e) {
                    n = last; // being rewritten
                }
                if (n != last) counts.add(new long[] {System.nanoTime(), n});
                last = n;
                Thread.sleep(5);
            }
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void check(Run r, String what) {
        if (r.code() != 0) {
            String text = r.output().text();
            throw new IllegalStateException(what + " failed (exit " + r.code() + "): " + text.substring(Math.max(0, text.length() - 2000)));
        }
    }

    private static String rss(TimedLines lines, String what) {
        String l = lines.firstLine(Pattern.compile("\\[rank 0\\] memory: peak live"));
        if (l == null) return what + " snapshots: (no memory line)";
        Matcher m = Pattern.compile("process rss ([^,;(]+)").matcher(l);
        return "rank 0's process RSS " + what + " snapshots " + (m.find() ? m.group(1).strip() : "?");
    }

    private static double number(String line, String regex) {
        if (line == null) return Double.NaN;
        Matcher m = Pattern.compile(regex).matcher(line);
        return m.find() ? Double.parseDouble(m.group(1)) : Double.NaN;
    }
}
