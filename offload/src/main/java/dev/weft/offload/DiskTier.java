package dev.weft.offload;

import dev.weft.core.Bytes;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The disk tier: one scratch file under a directory, carved into 4 KiB-aligned extents, written
 * and read in large blocks on the tier's own I/O threads. A write returns at once with its
 * {@link Extent}; compute waits only when it needs the bytes back ({@link #read} then join) or
 * needs to reuse the source.
 *
 * <p>Three ways to move the bytes, measured against each other by {@code weft bench offload}:
 * <ul>
 *   <li>{@link Io#DIRECT}: O_DIRECT through aligned staging buffers; bypasses the page cache, so
 *       offloaded bytes do not crowd the host memory the offload was meant to spare.</li>
 *   <li>{@link Io#BUFFERED}: plain positional file I/O through the page cache.</li>
 *   <li>{@link Io#MAPPED}: the extent mapped and copied. A full filesystem faults a mapped write
 *       (SIGBUS) rather than failing it, so this mode checks the free space before each write and
 *       reports a fault that still happens (another write took the space) as a full disk.</li>
 * </ul>
 * {@link Io#AUTO} takes DIRECT where the filesystem supports it (tmpfs does not) and BUFFERED
 * elsewhere. The file is scratch: it is deleted on close or at the JVM's exit, and files left by a
 * killed process are deleted when the next tier opens in the directory.
 */
public final class DiskTier implements MemoryTier, AutoCloseable {
    public enum Io { AUTO, DIRECT, BUFFERED, MAPPED;

        public static Io parse(String key, String value) {
            try {
                return valueOf(value.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(key + " must be auto, direct, buffered or mapped, got '" + value + "'");
            }
        }
    }

    /** Extents are aligned to this, the largest logical block size O_DIRECT asks for on common filesystems. */
    static final int ALIGN = 4096;
    /** Staging buffer per I/O thread for direct I/O: large enough for full-speed transfers. */
    static final int STAGING = 4 << 20;
    private static final String PREFIX = "weft-offload-";
    /**
     * Test-only: {@code -Dweft.offload.test.write_pause_ms=N} pauses every write for N ms halfway
     * through its bytes, so that a crash test can SIGKILL a process while it is writing to this tier
     * (launcher's OffloadFaultTest). It slows training and is never set outside that test.
     */
    private static final long WRITE_PAUSE_MS = Long.getLong("weft.offload.test.write_pause_ms", 0);

    /** A region of the scratch file holding one offloaded buffer. */
    public static final class Extent {
        final long offset, length, reserved;
        final String label;
        final CompletableFuture<Void> written;
        boolean freed;

        Extent(long offset, long length, long reserved, String label, CompletableFuture<Void> written) {
            this.offset = offset;
            this.length = length;
            this.reserved = reserved;
            this.label = label;
            this.written = written;
        }

        /** Completes when the bytes are on the tier (exceptionally with {@link DiskFullException} when they could not be). */
        public CompletableFuture<Void> written() {
            return written;
        }

        public long length() {
            return length;
        }
    }

    private final Path dir, file;
    private final long budget;
    private final Io io;
    private final FileChannel channel;
    private final ExecutorService threads;
    private final BlockingQueue<MemorySegment> staging;
    private final Arena arena = Arena.ofShared();
    private final TreeMap<Long, Long> free = new TreeMap<>(); // offset -> length of free holes below the end
    private long end, current, peak;
    private boolean closed;

    /**
     * Opens a tier in {@code dir} (created if missing) that holds at most {@code budgetBytes},
     * moving bytes with {@code io} on {@code ioThreads} threads.
     */
    public static DiskTier open(Path dir, long budgetBytes, Io io, int ioThreads) {
        if (budgetBytes <= 0) throw new IllegalArgumentException("offload.disk_budget_mib must be positive");
        if (ioThreads < 1) throw new IllegalArgumentException("offload.io_threads must be at least 1, got " + ioThreads);
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("offload.disk_dir " + dir + " cannot be created: " + e.getMessage(), e);
        }
        if (!Files.isWritable(dir)) throw new IllegalArgumentException("offload.disk_dir " + dir + " is not writable");
        deleteOrphans(dir);
        return new DiskTier(dir, budgetBytes, io, ioThreads);
    }

    private DiskTier(Path dir, long budgetBytes, Io requested, int ioThreads) {
        this.dir = dir;
        this.budget = budgetBytes;
        this.file = dir.resolve(PREFIX + ProcessHandle.current().pid() + "-" + Long.toHexString(System.nanoTime()) + ".bin");
        FileChannel ch = null;
        Io chosen = requested;
        if (requested == Io.AUTO || requested == Io.DIRECT) {
            ch = openDirect(file);
            if (ch == null && requested == Io.DIRECT)
                throw new IllegalArgumentException("offload.disk_io = direct, but the filesystem of " + dir + " does not support O_DIRECT (tmpfs does not); use buffered");
            chosen = ch == null ? Io.BUFFERED : Io.DIRECT;
        }
        try {
            if (ch == null) ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ, StandardOpenOption.WRITE);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the offload file " + file + ": " + e.getMessage(), e);
        }
        this.channel = ch;
        // a process that exits without closing the tier (a rank the launcher stops with SIGTERM after another failed) still deletes
        // its file in the shutdown hooks; only SIGKILL leaves an orphan, for the next tier opened here to delete
        file.toFile().deleteOnExit();
        this.io = chosen;
        AtomicInteger n = new AtomicInteger();
        this.threads = Executors.newFixedThreadPool(ioThreads, r -> {
            Thread t = new Thread(r, "weft-offload-io-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        this.staging = new ArrayBlockingQueue<>(ioThreads);
        if (io == Io.DIRECT) for (int i = 0; i < ioThreads; i++) staging.add(arena.allocate(STAGING, ALIGN));
    }

    private static FileChannel openDirect(Path file) {
        try {
            OpenOption direct = com.sun.nio.file.ExtendedOpenOption.DIRECT;
            return FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ, StandardOpenOption.WRITE, direct);
        } catch (IOException | UnsupportedOperationException e) {
            try {
                Files.deleteIfExists(file);
            } catch (IOException ignored) {
                // the buffered open that follows reports any real problem with the directory
            }
            return null;
        }
    }

    /** Removes scratch files whose process is gone: a killed run leaves its file behind. */
    private static void deleteOrphans(Path dir) {
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir, PREFIX + "*.bin")) {
            for (Path f : files) {
                String name = f.getFileName().toString();
                int dash = name.indexOf('-', PREFIX.length());
                if (dash < 0) continue;
                try {
                    long pid = Long.parseLong(name.substring(PREFIX.length(), dash));
                    if (ProcessHandle.of(pid).isEmpty()) Files.deleteIfExists(f);
                } catch (NumberFormatException | IOException ignored) {
                    // not ours, or already gone
                }
            }
        } catch (IOException ignored) {
            // an unreadable directory fails the open that follows, with its path
        }
    }

    /** How this tier moves bytes (AUTO resolved). */
    public Io io() {
        return io;
    }

    public Path directory() {
        return dir;
    }

    /**
     * Starts writing {@code src} to a new extent and returns it at once. {@code src} must stay
     * valid and unchanged until {@link Extent#written()} completes. A budget that cannot take the
     * bytes fails here; a filesystem that cannot, through the extent's future.
     */
    public Extent write(MemorySegment src, String label) {
        long length = src.byteSize();
        long reserved = roundUp(Math.max(length, 1));
        long offset = reserve(reserved, label);
        CompletableFuture<Void> done = new CompletableFuture<>();
        Extent e = new Extent(offset, length, reserved, label, done);
        threads.execute(() -> {
            try {
                if (WRITE_PAUSE_MS > 0) pauseMidWrite(src, offset);
                else transfer(src, offset, true);
                done.complete(null);
            } catch (Throwable ex) { // an Error too (a mapped copy's SIGBUS is an InternalError): a future left pending hangs its waiter
                done.completeExceptionally(failure(ex, e));
            }
        });
        return e;
    }

    /** Reads extent {@code e} into {@code dst} (exactly its length) on an I/O thread, after its write. */
    public CompletableFuture<Void> read(Extent e, MemorySegment dst) {
        if (dst.byteSize() != e.length)
            throw new IllegalArgumentException("read of " + e.length + " bytes of '" + e.label + "' into " + dst.byteSize());
        return e.written.thenRunAsync(() -> {
            try {
                transfer(dst, e.offset, false);
            } catch (IOException ex) {
                throw new UncheckedIOException("offload read of '" + e.label + "' from " + file + " failed: " + ex.getMessage(), ex);
            }
        }, threads);
    }

    /** Gives the extent's space back once its write is done (or failed). */
    public void free(Extent e) {
        e.written.handle((v, t) -> {
            release(e);
            return null;
        });
    }

    private synchronized void release(Extent e) {
        if (e.freed || closed) return;
        e.freed = true;
        current -= e.reserved;
        long off = e.offset, len = e.reserved;
        Map.Entry<Long, Long> below = free.floorEntry(off);
        if (below != null && below.getKey() + below.getValue() == off) {
            off = below.getKey();
            len += below.getValue();
            free.remove(below.getKey());
        }
        Long above = free.remove(off + len);
        if (above != null) len += above;
        if (off + len == end) end = off; // the file's tail is free: new extents start lower
        else free.put(off, len);
    }

    private synchronized long reserve(long bytes, String label) {
        if (closed) throw new IllegalStateException("offload disk tier in " + dir + " is closed");
        if (current + bytes > budget)
            throw new DiskFullException(String.format("offload disk tier in %s is over its budget: writing %s for '%s' would take it to %s, over offload.disk_budget_mib (%s). "
                    + "Raise the budget or offload less to disk.", dir, Bytes.human(bytes), label, Bytes.human(current + bytes), Bytes.human(budget)), null);
        long offset = -1;
        for (Map.Entry<Long, Long> hole : free.entrySet()) {
            long at = hole.getKey(), size = hole.getValue(); // read first: TreeMap reuses a removed entry for its successor
            if (size >= bytes) {
                offset = at;
                free.remove(at);
                if (size > bytes) free.put(at + bytes, size - bytes);
                break;
            }
        }
        if (offset < 0) {
            offset = end;
            end += bytes;
        }
        current += bytes;
        peak = Math.max(peak, current);
        return offset;
    }

    /** The test-only slow write: the first half (aligned down), a pause, the rest. */
    private void pauseMidWrite(MemorySegment src, long offset) throws IOException {
        long half = src.byteSize() / 2 / ALIGN * ALIGN;
        if (half > 0) transfer(src.asSlice(0, half), offset, true);
        try {
            Thread.sleep(WRITE_PAUSE_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted");
        }
        transfer(src.asSlice(half), offset + half, true);
    }

    private void transfer(MemorySegment mem, long offset, boolean write) throws IOException {
        switch (io) {
            case DIRECT -> direct(mem, offset, write);
            case MAPPED -> mapped(mem, offset, write);
            default -> buffered(mem, offset, write);
        }
    }

    private void buffered(MemorySegment mem, long offset, boolean write) throws IOException {
        for (long done = 0, n = mem.byteSize(); done < n; ) {
            int len = (int) Math.min(n - done, 1 << 30);
            ByteBuffer bb = mem.asSlice(done, len).asByteBuffer();
            while (bb.hasRemaining()) {
                int k = write ? channel.write(bb, offset + done + bb.position()) : channel.read(bb, offset + done + bb.position());
                if (k < 0) throw new IOException("unexpected end of the offload file");
            }
            done += len;
        }
    }

    private void direct(MemorySegment mem, long offset, boolean write) throws IOException {
        MemorySegment buf;
        try {
            buf = staging.take();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted");
        }
        try {
            for (long done = 0, n = mem.byteSize(); done < n; done += STAGING) {
                int len = (int) Math.min(n - done, STAGING);
                int aligned = (int) roundUp(len);
                ByteBuffer bb = buf.asSlice(0, aligned).asByteBuffer();
                if (write) {
                    MemorySegment.copy(mem, done, buf, 0, len);
                    while (bb.hasRemaining()) channel.write(bb, offset + done + bb.position());
                } else {
                    while (bb.hasRemaining()) {
                        if (channel.read(bb, offset + done + bb.position()) < 0) throw new IOException("unexpected end of the offload file");
                    }
                    MemorySegment.copy(buf, 0, mem, done, len);
                }
            }
        } finally {
            staging.add(buf);
        }
    }

    private void mapped(MemorySegment mem, long offset, boolean write) throws IOException {
        long n = mem.byteSize();
        if (write) {
            long usable = Files.getFileStore(dir).getUsableSpace();
            if (usable < n) throw new IOException("No space left on device");
            if (channel.size() < offset + n) channel.write(ByteBuffer.wrap(new byte[1]), offset + n - 1);
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment region = channel.map(write ? FileChannel.MapMode.READ_WRITE : FileChannel.MapMode.READ_ONLY, offset, n, a);
            if (write) MemorySegment.copy(mem, 0, region, 0, n);
            else MemorySegment.copy(region, 0, mem, 0, n);
        } catch (InternalError fault) {
            // the free-space check races the other I/O threads' writes (and anyone else's), so a
            // filesystem that fills between check and copy faults the copy instead of failing it
            // (a fault with space to spare is the source's, and stays what it is)
            if (!write || Files.getFileStore(dir).getUsableSpace() >= n) throw fault;
            throw new IOException("No space left on device: the filesystem could not back the mapped pages (" + fault.getMessage() + ")");
        }
    }

    private RuntimeException failure(Throwable ex, Extent e) {
        String msg = ex.getMessage() == null ? ex.toString() : ex.getMessage();
        long usable = -1;
        try {
            usable = Files.getFileStore(dir).getUsableSpace();
        } catch (IOException ignored) {
            // the message goes out without the free-space figure
        }
        if (ex instanceof IOException && (msg.contains("No space") || msg.contains("Disk quota") || usable >= 0 && usable < e.reserved))
            return new DiskFullException(String.format("offload disk %s is full: writing %s for '%s' failed (%s; %s free). "
                            + "Free space there, point offload.disk_dir at a larger disk, or offload less to disk.",
                    dir, Bytes.human(e.length), e.label, msg, usable < 0 ? "unknown" : Bytes.human(usable)), ex);
        return new UncheckedIOException("offload write of '" + e.label + "' to " + file + " failed: " + msg,
                ex instanceof IOException io ? io : new IOException(msg, ex));
    }

    private static long roundUp(long n) {
        return (n + ALIGN - 1) / ALIGN * ALIGN;
    }

    @Override
    public String name() {
        return "disk";
    }

    @Override
    public long budgetBytes() {
        return budget;
    }

    @Override
    public synchronized long currentBytes() {
        return current;
    }

    @Override
    public synchronized long peakBytes() {
        return peak;
    }

    @Override
    public synchronized void resetPeak() {
        peak = current;
    }

    /** Stops the I/O threads after their queued work, and deletes the scratch file. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        threads.shutdown();
        try {
            threads.awaitTermination(60, java.util.concurrent.TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try {
            channel.close();
            Files.deleteIfExists(file);
        } catch (IOException ignored) {
            // scratch: the next tier opened here deletes it as an orphan
        }
        arena.close();
    }

    /** For tests: the files this tier holds in its directory. */
    List<Path> files() throws IOException {
        List<Path> out = new ArrayList<>();
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir, PREFIX + "*.bin")) {
            for (Path p : s) out.add(p);
        }
        return out;
    }
}
