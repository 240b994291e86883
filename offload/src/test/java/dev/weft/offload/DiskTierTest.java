package dev.weft.offload;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletionException;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class DiskTierTest {
    @TempDir
    Path dir;

    private static MemorySegment random(Arena a, long n, long seed) {
        MemorySegment m = a.allocate(n, 64);
        SplittableRandom r = new SplittableRandom(seed);
        for (long i = 0; i < n; i++) m.set(ValueLayout.JAVA_BYTE, i, (byte) r.nextInt());
        return m;
    }

    /** Odd sizes (not multiples of the 4 KiB alignment, one above the 4 MiB staging buffer) come back byte for byte in every mode. */
    @ParameterizedTest
    @EnumSource(DiskTier.Io.class)
    void bytesComeBackUnchanged(DiskTier.Io io) {
        assumeTrue(io != DiskTier.Io.DIRECT || supportsDirect(dir), "the filesystem of the temp dir has no O_DIRECT");
        long[] sizes = {1, 4095, 4097, 100_003, (4 << 20) + 12_345};
        try (Arena a = Arena.ofShared(); DiskTier tier = DiskTier.open(dir, 64L << 20, io, 2)) {
            List<MemorySegment> src = new ArrayList<>();
            List<DiskTier.Extent> ext = new ArrayList<>();
            for (int i = 0; i < sizes.length; i++) {
                src.add(random(a, sizes[i], i));
                ext.add(tier.write(src.get(i), "buffer " + i));
            }
            for (int i = 0; i < sizes.length; i++) {
                MemorySegment back = a.allocate(sizes[i], 64);
                tier.read(ext.get(i), back).join();
                assertEquals(-1, back.mismatch(src.get(i)), io + ": buffer " + i + " of " + sizes[i] + " bytes changed");
            }
            assertTrue(tier.currentBytes() >= sizes[sizes.length - 1]);
            for (DiskTier.Extent e : ext) tier.free(e);
            for (DiskTier.Extent e : ext) e.written().join();
            assertEquals(0, tier.currentBytes(), "freed extents give their space back");
        }
    }

    @Test
    void freedSpaceIsReusedAndTheFileIsDeletedOnClose() throws IOException {
        try (Arena a = Arena.ofShared()) {
            DiskTier tier = DiskTier.open(dir, 1L << 20, DiskTier.Io.BUFFERED, 1);
            MemorySegment m = random(a, 300_000, 7);
            for (int round = 0; round < 20; round++) { // 20 x 300 KB through a 1 MiB budget: only works if space comes back
                DiskTier.Extent e = tier.write(m, "round " + round);
                MemorySegment back = a.allocate(m.byteSize(), 64);
                tier.read(e, back).join();
                assertEquals(-1, back.mismatch(m));
                tier.free(e);
            }
            assertEquals(1, tier.files().size());
            tier.close();
            try (var s = Files.list(dir)) {
                assertEquals(0, s.count(), "the scratch file is gone after close");
            }
        }
    }

    /** Extents written, read and freed in a random order never overlap: every live one reads back as written. */
    @Test
    void extentsNeverOverlapUnderChurn() {
        SplittableRandom r = new SplittableRandom(5);
        try (Arena a = Arena.ofShared(); DiskTier tier = DiskTier.open(dir, 64L << 20, DiskTier.Io.AUTO, 2)) {
            List<MemorySegment> src = new ArrayList<>();
            List<DiskTier.Extent> live = new ArrayList<>();
            for (int round = 0; round < 400; round++) {
                if (live.isEmpty() || r.nextInt(3) > 0) {
                    MemorySegment m = random(a, 1 + r.nextInt(200_000), round);
                    src.add(m);
                    live.add(tier.write(m, "round " + round));
                } else {
                    int i = r.nextInt(live.size());
                    MemorySegment back = a.allocate(src.get(i).byteSize(), 64);
                    tier.read(live.get(i), back).join();
                    assertEquals(-1, back.mismatch(src.get(i)), "extent " + i + " at round " + round);
                    tier.free(live.remove(i));
                    src.remove(i);
                }
            }
            for (int i = 0; i < live.size(); i++) {
                MemorySegment back = a.allocate(src.get(i).byteSize(), 64);
                tier.read(live.get(i), back).join();
                assertEquals(-1, back.mismatch(src.get(i)), "extent " + i + " at the end");
            }
        }
    }

    @Test
    void overBudgetIsAClearError() {
        try (Arena a = Arena.ofShared(); DiskTier tier = DiskTier.open(dir, 8192, DiskTier.Io.BUFFERED, 1)) {
            tier.write(random(a, 8000, 1), "first");
            DiskFullException e = assertThrows(DiskFullException.class, () -> tier.write(random(a, 8000, 2), "second"));
            assertTrue(e.getMessage().contains("over its budget") && e.getMessage().contains("'second'"), e.getMessage());
        }
    }

    @Test
    void orphansOfAKilledProcessAreDeleted() throws IOException {
        Path orphan = dir.resolve("weft-offload-999999999-1.bin"); // no such pid
        Files.write(orphan, new byte[10]);
        try (DiskTier tier = DiskTier.open(dir, 1 << 20, DiskTier.Io.BUFFERED, 1)) {
            assertTrue(Files.notExists(orphan));
        }
    }

    /** A real full filesystem: a 1 MiB tmpfs, mounted here when the tests run as root. */
    @Test
    void aFullFilesystemIsAClearError() throws Exception {
        try (TinyFilesystem fs = TinyFilesystem.mount(dir.resolve("tiny"), 1)) {
            assumeTrue(fs != null, "mounting a tmpfs needs root");
            try (Arena a = Arena.ofShared(); DiskTier tier = DiskTier.open(fs.path(), 64L << 20, DiskTier.Io.AUTO, 1)) {
                DiskTier.Extent e = tier.write(random(a, 3 << 20, 3), "layer 2 activations");
                CompletionException ce = assertThrows(CompletionException.class, () -> e.written().join());
                DiskFullException full = assertInstanceOf(DiskFullException.class, ce.getCause());
                assertTrue(full.getMessage().contains("is full") && full.getMessage().contains("'layer 2 activations'"), full.getMessage());
                assertTrue(!full.getMessage().contains("\n"), "one line");
            }
        }
    }

    /**
     * Mapped writes on several I/O threads race one another's free-space checks, so a filesystem
     * can fill between a check and its copy, which then faults (SIGBUS). Each such write must still
     * fail as a full disk, never as an unexplained fault.
     */
    @Test
    void mappedWritesRacingForTheLastSpaceFailAsAFullDisk() throws Exception {
        try (TinyFilesystem fs = TinyFilesystem.mount(dir.resolve("tiny"), 1)) {
            assumeTrue(fs != null, "mounting a tmpfs needs root");
            try (Arena a = Arena.ofShared(); DiskTier tier = DiskTier.open(fs.path(), 64L << 20, DiskTier.Io.MAPPED, 4)) {
                // each write fits alone (600 KiB of 1 MiB), no two do, and all are queued at once so that their checks race
                List<MemorySegment> sources = new ArrayList<>();
                for (int i = 0; i < 8; i++) sources.add(random(a, 600 << 10, i));
                List<DiskTier.Extent> extents = new ArrayList<>();
                for (int i = 0; i < 8; i++) extents.add(tier.write(sources.get(i), "layer " + i + " activations"));
                int failed = 0;
                for (DiskTier.Extent e : extents) {
                    try {
                        e.written().join();
                    } catch (CompletionException ce) {
                        failed++;
                        DiskFullException full = assertInstanceOf(DiskFullException.class, ce.getCause(), String.valueOf(ce.getCause()));
                        assertTrue(full.getMessage().contains("is full"), full.getMessage());
                    }
                }
                assertTrue(failed >= 7, "only one of the writes fits: " + failed + " of 8 writes failed");
            }
        }
    }

    /**
     * A write whose copy dies with an Error (here the SIGBUS of reading a mapping whose file was
     * truncated, which the JVM turns into an InternalError) still completes its extent's future,
     * exceptionally: whoever waits for the bytes gets the failure instead of waiting forever.
     */
    @Test
    void aWriteThatDiesWithAnErrorFailsItsFutureRatherThanLeavingItPending() throws Exception {
        Path source = dir.resolve("source.bin");
        Files.write(source, new byte[64 << 10]);
        try (Arena a = Arena.ofShared();
             java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(source, java.nio.file.StandardOpenOption.READ,
                     java.nio.file.StandardOpenOption.WRITE);
             DiskTier tier = DiskTier.open(dir.resolve("tier"), 1 << 20, DiskTier.Io.MAPPED, 1)) {
            MemorySegment src = ch.map(java.nio.channels.FileChannel.MapMode.READ_ONLY, 0, 64 << 10, a);
            ch.truncate(0); // the mapping's pages are gone: reading them faults
            DiskTier.Extent e = tier.write(src, "optimizer state");
            // a bounded wait only so that a regression fails instead of hanging the build (join cannot be interrupted)
            var ee = assertThrows(java.util.concurrent.ExecutionException.class, () -> e.written().get(60, java.util.concurrent.TimeUnit.SECONDS));
            assertTrue(ee.getCause().getMessage().contains("offload write of 'optimizer state'"), String.valueOf(ee.getCause()));
        }
    }

    static boolean supportsDirect(Path dir) {
        try (DiskTier t = DiskTier.open(dir.resolve("probe"), 1 << 20, DiskTier.Io.AUTO, 1)) {
            return t.io() == DiskTier.Io.DIRECT;
        }
    }
}
