package dev.weft.core;

import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class MemoryPoolTest {
    @Test
    void liveBytesAreTheRequestAlignedAndReservedTheBlock() {
        MemoryPool pool = new MemoryPool("classes", Long.MAX_VALUE);
        Storage s = pool.allocate(1_000_001, "x");
        assertEquals(1_000_064, pool.liveBytes(), "live: the request rounded up to 64 bytes");
        assertEquals(1_048_576, pool.reservedBytes(), "reserved: the 1 MiB class (an eighth of 512 KiB steps above 512 KiB)");
        assertEquals(1_000_001, s.bytes());
        s.release();
        assertEquals(0, pool.liveBytes());
        assertEquals(1_048_576, pool.cachedBytes());
        Storage t = pool.allocate(1_040_000, "y"); // same class: the cached block is reused
        assertEquals(1, pool.blocksAllocated());
        assertEquals(1_040_000, pool.liveBytes());
        t.release();
        assertEquals(4032, MemoryPool.blockSize(MemoryPool.liveSize(4000)), "small sizes keep their own 64-byte classes");
        assertEquals(64, MemoryPool.liveSize(0));
    }

    /** Training shapes repeat: after the first step the pool takes nothing new from the system. */
    @Test
    void aRepeatingLoopAllocatesNothingAfterItsFirstStep() {
        MemoryPool pool = new MemoryPool("loop", Long.MAX_VALUE);
        long[] sizes = {4_000, 262_144, 3 * 262_144, 300_000, 1 << 20, 12_345, 2_000_000, 262_144};
        step(pool, sizes);
        long blocks = pool.blocksAllocated(), reserved = pool.reservedBytes();
        for (int i = 0; i < 5; i++) step(pool, sizes);
        assertEquals(blocks, pool.blocksAllocated());
        assertEquals(reserved, pool.reservedBytes());
        assertEquals(reserved, pool.peakReservedBytes());
    }

    /** A forward (all live at once, then released in order), then a backward of the same sizes reversed. */
    private static void step(MemoryPool pool, long[] sizes) {
        List<Storage> held = new ArrayList<>();
        for (long s : sizes) held.add(pool.allocate(s, "activation"));
        for (int i = sizes.length - 1; i >= 0; i--) {
            Storage grad = pool.allocate(sizes[i], "grad");
            held.remove(i).release();
            grad.release();
        }
    }

    /**
     * Generation without a KV cache runs a forward per length 1, 2, 3, ...: each length is a new
     * set of sizes, never needed again. The cache must stay within its limit instead of keeping
     * a block of every size (which here would be about 4 GiB).
     */
    @Test
    void shapesThatKeepChangingStayWithinTheCacheLimit() {
        MemoryPool pool = new MemoryPool("growing", Long.MAX_VALUE);
        long everything = 0, maxBlock = 0;
        for (int t = 1; t <= 512; t++) {
            List<Storage> held = new ArrayList<>();
            for (int k = 1; k <= 4; k++) {
                held.add(pool.allocate((long) t * k * 1024, "act"));
                everything += MemoryPool.blockSize((long) t * k * 1024);
                maxBlock = Math.max(maxBlock, MemoryPool.blockSize((long) t * k * 1024));
            }
            held.forEach(Storage::release);
            assertTrue(pool.cachedBytes() <= pool.cacheLimit() + 4 * maxBlock,
                    "cached " + pool.cachedBytes() + " > limit " + pool.cacheLimit() + " at t=" + t);
        }
        assertEquals(64L << 20, pool.cacheLimit(), "the live high-water mark (5 MiB) is below the floor");
        assertTrue(pool.peakReservedBytes() < 80L << 20, "peak reserved " + pool.peakReservedBytes());
        assertTrue(everything > 1L << 30, "the test covers many more sizes than fit: " + everything);
    }

    @Test
    void trimGivesMemoryBackToTheSystem() {
        assumeTrue(Files.exists(Path.of("/proc/self/status")), "no /proc/self/status on this system");
        MemoryPool pool = new MemoryPool("trim", Long.MAX_VALUE);
        List<Storage> held = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            Storage s = pool.allocate(4 << 20, "big");
            for (long off = 0; off < s.bytes(); off += 4096) s.segment().set(ValueLayout.JAVA_BYTE, off, (byte) 1);
            held.add(s);
        }
        long full = ProcessMemory.rssBytes();
        held.forEach(Storage::release);
        assertEquals(256L << 20, pool.cachedBytes());
        pool.trim();
        assertEquals(0, pool.reservedBytes());
        long trimmed = ProcessMemory.rssBytes();
        assertTrue(full - trimmed > 200L << 20, "rss fell by only " + (full - trimmed) + " bytes after trimming 256 MiB");
    }
}
