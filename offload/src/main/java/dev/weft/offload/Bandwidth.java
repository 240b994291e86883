package dev.weft.offload;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Transfer rates measured on the spot, in GB/s: a host memory copy, the disk tier, and plain
 * sequential file I/O of the same sizes (the baseline the disk tier is held to).
 */
public record Bandwidth(double writeGBs, double readGBs) {
    /** One core copying a buffer larger than the caches (best of 5), in GB/s. */
    public static double hostCopy(long bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment src = a.allocate(bytes, 64), dst = a.allocate(bytes, 64);
            src.fill((byte) 1);
            dst.fill((byte) 2);
            double best = 0;
            for (int i = 0; i < 5; i++) {
                long t0 = System.nanoTime();
                MemorySegment.copy(src, 0, dst, 0, bytes);
                best = Math.max(best, bytes / ((System.nanoTime() - t0) / 1e9));
            }
            return best / 1e9;
        }
    }

    /** The tier writing {@code total} bytes in pieces of {@code piece} (all in flight together, as offload issues them), then reading them back. */
    public static Bandwidth ofTier(DiskTier tier, long total, long piece) {
        int n = Math.toIntExact(Math.max(1, total / piece));
        try (Arena a = Arena.ofShared()) {
            List<MemorySegment> bufs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                MemorySegment m = a.allocate(piece, 4096);
                m.fill((byte) i);
                bufs.add(m);
            }
            long t0 = System.nanoTime();
            List<DiskTier.Extent> ext = new ArrayList<>();
            for (MemorySegment m : bufs) ext.add(tier.write(m, "bandwidth probe"));
            for (DiskTier.Extent e : ext) e.written().join();
            double write = (double) n * piece / ((System.nanoTime() - t0) / 1e9) / 1e9;
            long t1 = System.nanoTime();
            var reads = new ArrayList<java.util.concurrent.CompletableFuture<Void>>();
            for (int i = 0; i < n; i++) reads.add(tier.read(ext.get(i), bufs.get(i)));
            for (var r : reads) r.join();
            double read = (double) n * piece / ((System.nanoTime() - t1) / 1e9) / 1e9;
            for (DiskTier.Extent e : ext) tier.free(e);
            return new Bandwidth(write, read);
        }
    }

    /**
     * Plain sequential I/O of the same sizes on one thread: {@code total} bytes written to a new
     * file in pieces of {@code piece}, then read back, with O_DIRECT when {@code direct} (else
     * through the page cache). The file is deleted after.
     */
    public static Bandwidth ofPlainFile(Path dir, long total, long piece, boolean direct) {
        Path f = dir.resolve("weft-bandwidth-" + ProcessHandle.current().pid() + ".bin");
        int n = Math.toIntExact(Math.max(1, total / piece));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(piece, 4096);
            buf.fill((byte) 7);
            List<OpenOption> opts = new ArrayList<>(List.of(StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.READ,
                    StandardOpenOption.WRITE));
            if (direct) opts.add(com.sun.nio.file.ExtendedOpenOption.DIRECT);
            double write, read;
            try (FileChannel ch = FileChannel.open(f, opts.toArray(OpenOption[]::new))) {
                long t0 = System.nanoTime();
                for (int i = 0; i < n; i++) {
                    ByteBuffer bb = buf.asByteBuffer();
                    while (bb.hasRemaining()) ch.write(bb, (long) i * piece + bb.position());
                }
                write = (double) n * piece / ((System.nanoTime() - t0) / 1e9) / 1e9;
                long t1 = System.nanoTime();
                for (int i = 0; i < n; i++) {
                    ByteBuffer bb = buf.asByteBuffer();
                    while (bb.hasRemaining()) if (ch.read(bb, (long) i * piece + bb.position()) < 0) throw new IOException("short read");
                }
                read = (double) n * piece / ((System.nanoTime() - t1) / 1e9) / 1e9;
            } finally {
                Files.deleteIfExists(f);
            }
            return new Bandwidth(write, read);
        } catch (IOException e) {
            throw new UncheckedIOException("plain file I/O in " + dir + " failed: " + e.getMessage(), e);
        }
    }
}
