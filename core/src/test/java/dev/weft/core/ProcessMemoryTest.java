package dev.weft.core;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class ProcessMemoryTest {
    @Test
    void parsesKibLinesOfAStatusFile() {
        String status = "Name:\tjava\nVmPeak:\t 9000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nRssAnon:\t 1 kB\n";
        assertEquals(102400L * 1024, ProcessMemory.parseKib(status, "VmRSS:"));
        assertEquals(204800L * 1024, ProcessMemory.parseKib(status, "VmHWM:"));
        assertEquals(-1, ProcessMemory.parseKib(status, "VmSwap:"));
        assertEquals(-1, ProcessMemory.parseKib("XVmRSS: 5 kB\n", "VmRSS:"), "a key must start its line");
        assertEquals(-1, ProcessMemory.parseKib("VmRSS:\n", "VmRSS:"));
    }

    @Test
    void residentMemoryFollowsTouchedPages() {
        assumeTrue(Files.exists(Path.of("/proc/self/status")), "no /proc/self/status on this system");
        long before = ProcessMemory.rssBytes();
        assertTrue(before > 0, "rss " + before);
        long size = 128L << 20;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(size);
            for (long i = 0; i < size; i += 4096) s.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) 1);
            long during = ProcessMemory.rssBytes();
            assertTrue(during - before > size * 9 / 10, "rss grew by " + (during - before) + " bytes for " + size + " touched");
            assertTrue(ProcessMemory.peakRssBytes() >= during, "the high-water mark is at least the current rss");
        }
    }
}
