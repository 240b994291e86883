package dev.weft.launcher.launch;

import dev.weft.trainer.metrics.ProgressBar;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One rank's JVM: started with its environment, its output (stdout and stderr together) copied
 * line by line to the launcher's output prefixed {@code [rank N]} and to its own log file, and
 * the last lines kept for the failure report.
 */
public final class RankProcess {
    public static final int TAIL_LINES = 25;

    private final int rank;
    private final Process process;
    private final Thread pump;
    private final ArrayDeque<String> tail = new ArrayDeque<>();
    private final Path log;

    private RankProcess(int rank, Process process, Path log, PrintWriter console, Object consoleLock) throws IOException {
        this.rank = rank;
        this.process = process;
        this.log = log;
        Writer file = Files.newBufferedWriter(log, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        this.pump = Thread.ofPlatform().daemon().name("weft-rank-" + rank + "-output").start(() -> copy(file, console, consoleLock));
    }

    /** Starts {@code command}; an {@code env} entry with a null value removes that variable from the inherited environment. */
    public static RankProcess start(int rank, List<String> command, Map<String, String> env, Path log, String banner, PrintWriter console,
                             Object consoleLock) throws IOException {
        Files.createDirectories(log.getParent());
        Files.writeString(log, banner + System.lineSeparator(), StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        ProcessBuilder pb = new ProcessBuilder(command).redirectErrorStream(true);
        env.forEach((k, v) -> {
            if (v == null) pb.environment().remove(k);
            else pb.environment().put(k, v);
        });
        return new RankProcess(rank, pb.start(), log, console, consoleLock);
    }

    private void copy(Writer file, PrintWriter console, Object consoleLock) {
        try (file; BufferedReader r = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = r.readLine()) != null; ) {
                file.write(line);
                file.write(System.lineSeparator());
                file.flush();
                synchronized (tail) {
                    if (tail.size() == TAIL_LINES) tail.removeFirst();
                    tail.addLast(line);
                }
                if (rank != 0 && ProgressBar.isProgressLine(line)) continue; // one bar on the console: rank 0's
                synchronized (consoleLock) {
                    console.println("[rank " + rank + "] " + line);
                    console.flush();
                }
            }
        } catch (IOException e) {
            // the process is gone; what it wrote so far is in the log
        }
    }

    public int rank() {
        return rank;
    }

    public Process process() {
        return process;
    }

    public Path log() {
        return log;
    }

    public long pid() {
        return process.pid();
    }

    /** Waits (bounded) for the output copier to drain, so the tail includes the process's last words. */
    public void drain(long millis) {
        try {
            pump.join(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    public List<String> tail() {
        synchronized (tail) {
            return new ArrayList<>(tail);
        }
    }

    /** SIGTERM, then SIGKILL if it has not exited after {@code graceMillis}. */
    public void stop(long graceMillis) {
        if (!process.isAlive()) return;
        process.destroy();
        try {
            if (!process.waitFor(graceMillis, TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                process.waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }
}
