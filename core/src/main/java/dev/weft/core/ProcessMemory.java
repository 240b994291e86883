package dev.weft.core;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The resident memory of this process as the kernel counts it: heap, off-heap tensors, code and
 * libraries together, which is what the pool's own figures leave out. Read from
 * {@code /proc/self/status}; -1 where that file does not exist (not Linux).
 */
public final class ProcessMemory {
    private static final Path STATUS = Path.of("/proc/self/status");

    private ProcessMemory() {}

    /** Resident set size now (VmRSS), in bytes, or -1. */
    public static long rssBytes() {
        return read("VmRSS:");
    }

    /** The largest resident set size so far (VmHWM), in bytes, or -1. */
    public static long peakRssBytes() {
        return read("VmHWM:");
    }

    /** "process rss 512.0 MiB (peak 600.0 MiB)" for reports, or "process rss unavailable". */
    public static String summary() {
        long rss = rssBytes(), peak = peakRssBytes();
        if (rss < 0) return "process rss unavailable";
        return "process rss " + Bytes.human(rss) + (peak < 0 ? "" : " (peak " + Bytes.human(peak) + ")");
    }

    private static long read(String key) {
        try {
            return parseKib(Files.readString(STATUS), key);
        } catch (IOException | SecurityException e) {
            return -1;
        }
    }

    /** The value of a {@code Key:   1234 kB} line of a status file, in bytes, or -1 if absent. */
    static long parseKib(String status, String key) {
        int at = status.indexOf(key);
        if (at < 0 || (at > 0 && status.charAt(at - 1) != '\n')) return -1;
        int i = at + key.length(), n = status.length();
        while (i < n && (status.charAt(i) == ' ' || status.charAt(i) == '\t')) i++;
        long kib = 0;
        int digits = 0;
        for (; i < n && Character.isDigit(status.charAt(i)); i++, digits++) kib = kib * 10 + (status.charAt(i) - '0');
        return digits == 0 ? -1 : kib * 1024;
    }
}
