package dev.weft.parallel;

import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import org.agrona.concurrent.SleepingMillisIdleStrategy;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * An Aeron media driver for one node. The launcher starts one per node and hands its
 * {@link #directory()} to the ranks in {@code WEFT_AERON_DIR}; a rank started alone embeds its
 * own. The driver runs one shared thread that sleeps when idle: ranks on a host talk over IPC,
 * which never goes through the driver, so the driver only manages streams (and carries UDP between
 * hosts) and must not take a core the ranks compute on.
 *
 * <p>At start it removes stale driver directories of weft processes that no longer exist and checks
 * that the shared-memory filesystem has room for the term buffers, failing with a message that says
 * what to do.
 */
public final class AeronDriver implements AutoCloseable {
    /** Prefix of the driver directories weft creates (so stale ones can be recognised). */
    static final String PREFIX = "weft-aeron-";
    /** Term buffer of each stream: a log is three terms, mapped sparsely. */
    static final int TERM_LENGTH = 16 << 20;
    /** Free space required at start: a few logs plus the driver's own files. */
    static final long REQUIRED_BYTES = 256L << 20;
    private static final AtomicInteger COUNTER = new AtomicInteger();

    private final MediaDriver driver;
    private final Path dir;

    private AeronDriver(MediaDriver driver, Path dir) {
        this.driver = driver;
        this.dir = dir;
    }

    /** Starts a driver in a fresh directory under /dev/shm (or the temp directory where there is none). */
    public static AeronDriver launch() {
        Path base = sharedMemoryRoot();
        return launch(base.resolve(PREFIX + ProcessHandle.current().pid() + "-" + COUNTER.incrementAndGet()));
    }

    /** How long the driver and its clients wait on each other's heartbeats before giving up. */
    static final java.time.Duration LIVENESS = java.time.Duration.ofSeconds(60);

    /** Starts a driver in {@code dir}, after checking space and clearing stale weft driver directories beside it. */
    public static AeronDriver launch(Path dir) {
        Path parent = dir.toAbsolutePath().getParent();
        List<Path> removed = removeStale(parent);
        if (!removed.isEmpty()) System.err.println("weft: removed stale Aeron driver directories " + removed);
        checkSpace(parent);
        MediaDriver.Context ctx = new MediaDriver.Context()
                .aeronDirectoryName(dir.toString())
                .threadingMode(ThreadingMode.SHARED)
                .sharedIdleStrategy(new SleepingMillisIdleStrategy(1))
                .ipcTermBufferLength(TERM_LENGTH)
                .publicationTermBufferLength(TERM_LENGTH)
                .termBufferSparseFile(true)
                // A rank's liveness is the launcher's business (it watches the processes) and each
                // collective has its own deadline; Aeron's 10 s default declared busy ranks dead on a
                // loaded 2-core machine.
                .clientLivenessTimeoutNs(LIVENESS.toNanos())
                .publicationUnblockTimeoutNs(2 * LIVENESS.toNanos())
                .dirDeleteOnStart(true)
                .dirDeleteOnShutdown(true);
        try {
            return new AeronDriver(MediaDriver.launch(ctx), dir);
        } catch (RuntimeException e) {
            throw new IllegalStateException("could not start the Aeron media driver in " + dir + ": " + e.getMessage(), e);
        }
    }

    public String directory() {
        return dir.toString();
    }

    @Override
    public void close() {
        driver.close();
    }

    static Path sharedMemoryRoot() {
        Path shm = Path.of("/dev/shm");
        return Files.isDirectory(shm) && Files.isWritable(shm) ? shm : Path.of(System.getProperty("java.io.tmpdir"));
    }

    /** Fails with a clear message when {@code root} has less room than the driver needs. */
    static void checkSpace(Path root) {
        try {
            long free = Files.getFileStore(root).getUsableSpace();
            if (free < REQUIRED_BYTES)
                throw new IllegalStateException(String.format(
                        "%s has %d MiB free; weft's Aeron driver needs at least %d MiB for its term buffers. "
                                + "Remove stale files there (old %s* directories, other jobs' segments) or enlarge it "
                                + "(for a container: --shm-size=1g; on a host: mount -o remount,size=2G /dev/shm).",
                        root, free >> 20, REQUIRED_BYTES >> 20, PREFIX));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot check free space of " + root, e);
        }
    }

    /** Deletes weft driver directories in {@code root} whose owning process (pid in the name) is gone. */
    static List<Path> removeStale(Path root) {
        List<Path> removed = new ArrayList<>();
        if (root == null || !Files.isDirectory(root)) return removed;
        try (Stream<Path> s = Files.list(root)) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith(PREFIX)).toList()) {
                long pid = pidOf(p.getFileName().toString());
                if (pid <= 0 || ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) continue;
                deleteTree(p);
                removed.add(p);
            }
        } catch (IOException e) {
            System.err.println("weft: could not scan " + root + " for stale Aeron directories: " + e.getMessage());
        }
        return removed;
    }

    private static long pidOf(String name) {
        String rest = name.substring(PREFIX.length());
        int dash = rest.indexOf('-');
        try {
            return Long.parseLong(dash < 0 ? rest : rest.substring(0, dash));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static void deleteTree(Path p) throws IOException {
        try (Stream<Path> w = Files.walk(p)) {
            for (Path q : w.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(q);
        }
    }
}
