package dev.weft.launcher.spark;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Shows a rank's log on the driver's console while the stage runs, line by line, as {@code weft
 * launch} shows its ranks' output. The ranks write their logs where the driver can read them (the
 * run's directory, on a filesystem every host sees); where it cannot, nothing is shown until the
 * stage ends and the tails come back with the tasks' results.
 */
final class LogFollower implements AutoCloseable {
    private static final long POLL_MILLIS = 250;

    private final Path log;
    private final String prefix;
    private final PrintWriter out;
    private final Thread thread;
    private final ByteArrayOutputStream partial = new ByteArrayOutputStream();
    private long position;
    private volatile boolean stopped;
    private boolean sawAny;

    /** Follows {@code log} from its current end: an earlier attempt's lines were shown already. */
    LogFollower(Path log, String prefix, PrintWriter out) {
        this.log = log;
        this.prefix = prefix;
        this.out = out;
        this.position = size(log);
        this.thread = Thread.ofPlatform().daemon().name("weft-follow-" + log.getFileName()).start(this::follow);
    }

    /** Whether any line of the log reached the console. */
    synchronized boolean sawAny() {
        return sawAny;
    }

    private void follow() {
        while (!stopped) {
            readNew();
            try {
                Thread.sleep(POLL_MILLIS);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private synchronized void readNew() {
        if (!Files.isRegularFile(log)) return;
        try (FileChannel ch = FileChannel.open(log, StandardOpenOption.READ)) {
            if (ch.size() < position) position = 0; // a new file in its place
            ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
            for (int n; (n = ch.read(buf, position)) > 0; buf.clear()) {
                position += n;
                for (int i = 0; i < n; i++) {
                    byte b = buf.get(i);
                    if (b != '\n') {
                        partial.write(b);
                        continue;
                    }
                    String line = partial.toString(StandardCharsets.UTF_8);
                    partial.reset();
                    synchronized (out) {
                        out.println(prefix + line);
                        out.flush();
                    }
                    sawAny = true;
                }
            }
        } catch (IOException e) {
            // the log is out of reach for now; the task's result brings its tail
        }
    }

    @Override
    public void close() {
        stopped = true;
        thread.interrupt();
        try {
            thread.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        readNew();
    }

    private static long size(Path p) {
        try {
            return Files.isRegularFile(p) ? Files.size(p) : 0;
        } catch (IOException e) {
            return 0;
        }
    }
}
