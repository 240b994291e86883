package dev.weft.trainer.metrics;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class MetricsLogTest {
    @TempDir
    Path dir;

    @Test
    void writesOneFlushedJsonObjectPerLine() throws IOException {
        Path file = dir.resolve("runs/a/metrics.jsonl");
        try (MetricsLog log = MetricsLog.open(file, false)) {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("step", 10);
            r.put("loss", 2.5);
            r.put("lr", 3e-4f);
            r.put("tokens", 12_345_678_901L);
            r.put("phase", "train");
            log.log(r);
            // flushed before close: another reader sees it now
            assertEquals("{\"step\":10,\"loss\":2.5,\"lr\":3.0E-4,\"tokens\":12345678901,\"phase\":\"train\"}\n", Files.readString(file));
            log.log(Map.of("step", 20));
            assertEquals(2, Files.readAllLines(file).size());
        }
    }

    @Test
    void nonFiniteNumbersBecomeStringsAndReadBackAsDoubles() throws IOException {
        Path file = dir.resolve("m.jsonl");
        try (MetricsLog log = MetricsLog.open(file, false)) {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("loss", Double.NaN);
            r.put("grad_norm", Float.POSITIVE_INFINITY);
            r.put("x", Double.NEGATIVE_INFINITY);
            r.put("nested", Map.of("v", List.of(1.5, Double.NaN)));
            r.put("none", null);
            log.log(r);
        }
        assertEquals("{\"loss\":\"NaN\",\"grad_norm\":\"Infinity\",\"x\":\"-Infinity\",\"nested\":{\"v\":[1.5,\"NaN\"]},\"none\":null}",
                Files.readString(file).strip());
        Map<String, Object> back = MetricsLog.read(file).getFirst();
        assertTrue(Double.isNaN((Double) back.get("loss")));
        assertEquals(Double.POSITIVE_INFINITY, back.get("grad_norm"));
        assertEquals(Double.NEGATIVE_INFINITY, back.get("x"));
        @SuppressWarnings("unchecked") List<Object> v = (List<Object>) ((Map<String, Object>) back.get("nested")).get("v");
        assertEquals(1.5, v.get(0));
        assertTrue(Double.isNaN((Double) v.get(1)));
        assertTrue(back.containsKey("none"));
        assertNull(back.get("none"));
    }

    @Test
    void appendKeepsEarlierRecordsAndTruncateDropsThem() throws IOException {
        Path file = dir.resolve("m.jsonl");
        try (MetricsLog log = MetricsLog.open(file, false)) {
            log.log(Map.of("step", 1));
        }
        try (MetricsLog log = MetricsLog.open(file, true)) {
            log.log(Map.of("step", 2));
        }
        assertEquals(List.of(Map.of("step", 1), Map.of("step", 2)), MetricsLog.read(file));
        try (MetricsLog log = MetricsLog.open(file, false)) {
            log.log(Map.of("step", 3));
        }
        assertEquals(List.of(Map.of("step", 3)), MetricsLog.read(file));
    }

    @Test
    void readKeepsOrderAndTypes() throws IOException {
        Path file = dir.resolve("m.jsonl");
        try (MetricsLog log = MetricsLog.open(file, false)) {
            for (int s = 0; s < 3; s++) log.log(Map.of("step", s, "loss", 1.0 / (s + 1)));
        }
        List<Map<String, Object>> rs = MetricsLog.read(file);
        assertEquals(3, rs.size());
        assertEquals(2, rs.get(2).get("step"));
        assertEquals(1.0 / 3, (Double) rs.get(2).get("loss"));
    }

    @Test
    void readSkipsATruncatedLastLineButNotABadMiddleLine() throws IOException {
        Path file = dir.resolve("m.jsonl");
        Files.writeString(file, "{\"step\":1}\n{\"step\":2}\n{\"step\":3,\"lo");
        assertEquals(List.of(Map.of("step", 1), Map.of("step", 2)), MetricsLog.read(file));

        Files.writeString(file, "{\"step\":1}\nnot json\n{\"step\":3}\n");
        IOException e = assertThrows(IOException.class, () -> MetricsLog.read(file));
        assertTrue(e.getMessage().startsWith("line 2 of " + file), e.getMessage());
    }

    @Test
    void rejectsValuesThatAreNotJsonAndUseAfterClose() throws IOException {
        Path file = dir.resolve("m.jsonl");
        MetricsLog log = MetricsLog.open(file, false);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> log.log(Map.of("when", new Object())));
        assertTrue(e.getMessage().contains("record.when: cannot log a java.lang.Object"), e.getMessage());
        assertEquals("", Files.readString(file), "a rejected record writes nothing");
        log.close();
        assertThrows(IllegalStateException.class, () -> log.log(Map.of("step", 1)));
    }
}
