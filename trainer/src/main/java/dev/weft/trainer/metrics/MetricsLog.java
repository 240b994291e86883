package dev.weft.trainer.metrics;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A JSON Lines metrics file: one JSON object per {@link #log} call, one per line, flushed at
 * once so a crashed or killed run keeps every record it logged.
 *
 * <p>Values may be numbers, strings, booleans, null, and lists or maps of those. Integers are
 * written as JSON integers and floating-point numbers as JSON numbers. JSON has no NaN or
 * infinity, so those are written as the strings {@code "NaN"}, {@code "Infinity"} and
 * {@code "-Infinity"} (the same spelling as Python's {@code float()} accepts); {@link #read}
 * turns exactly these strings back into doubles.
 */
public final class MetricsLog implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final TypeReference<LinkedHashMap<String, Object>> RECORD = new TypeReference<>() {};

    private final Path file;
    private final BufferedWriter out;
    private boolean closed;

    private MetricsLog(Path file, BufferedWriter out) {
        this.file = file;
        this.out = out;
    }

    /** Opens {@code jsonl}, creating it and its directory; {@code append} keeps existing records (a resumed run). */
    public static MetricsLog open(Path jsonl, boolean append) throws IOException {
        Path parent = jsonl.toAbsolutePath().getParent();
        if (parent != null) Files.createDirectories(parent);
        BufferedWriter w = Files.newBufferedWriter(jsonl, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING);
        return new MetricsLog(jsonl, w);
    }

    public Path file() {
        return file;
    }

    /** Writes {@code record} as one line and flushes it. Keys keep the map's iteration order. */
    public synchronized void log(Map<String, ?> record) {
        if (closed) throw new IllegalStateException("metrics log " + file + " is closed");
        if (record == null) throw new IllegalArgumentException("record must not be null");
        String line;
        try {
            line = JSON.writeValueAsString(sanitize(record, "record"));
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("cannot write metrics record " + record + " as JSON: " + e.getOriginalMessage(), e);
        }
        try {
            out.write(line);
            out.write('\n');
            out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("writing metrics to " + file, e);
        }
    }

    /** Replaces non-finite doubles with their string names and checks that every value is JSON-able. */
    private static Object sanitize(Object v, String where) {
        if (v == null || v instanceof String || v instanceof Boolean) return v;
        if (v instanceof Double || v instanceof Float) {
            double d = ((Number) v).doubleValue();
            if (Double.isNaN(d)) return "NaN";
            if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
            return v;
        }
        if (v instanceof Number) return v;
        if (v instanceof Map<?, ?> m) {
            Map<String, Object> copy = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (!(e.getKey() instanceof String k)) throw new IllegalArgumentException(where + ": map keys must be strings, got " + e.getKey());
                copy.put(k, sanitize(e.getValue(), where + "." + k));
            }
            return copy;
        }
        if (v instanceof Collection<?> c) {
            List<Object> copy = new ArrayList<>(c.size());
            int i = 0;
            for (Object x : c) copy.add(sanitize(x, where + "[" + i++ + "]"));
            return copy;
        }
        if (v instanceof double[] a) {
            List<Object> copy = new ArrayList<>(a.length);
            for (double x : a) copy.add(sanitize(x, where));
            return copy;
        }
        throw new IllegalArgumentException(where + ": cannot log a " + v.getClass().getName()
                + " (use numbers, strings, booleans, null, lists or maps)");
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        try {
            out.close();
        } catch (IOException e) {
            throw new UncheckedIOException("closing metrics log " + file, e);
        }
    }

    /**
     * Reads every record of a metrics file, in order. Numbers come back as Integer, Long,
     * BigInteger or Double; the strings "NaN", "Infinity" and "-Infinity" as doubles. A last line
     * without its newline that does not parse is skipped (the run died while writing it); any
     * other bad line is an error naming the file and line.
     */
    public static List<Map<String, Object>> read(Path jsonl) throws IOException {
        String text = Files.readString(jsonl, StandardCharsets.UTF_8);
        String[] lines = text.split("\n", -1);
        List<Map<String, Object>> records = new ArrayList<>();
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            if (line.isEmpty()) continue;
            boolean lastUnterminated = i == lines.length - 1;
            try {
                Map<String, Object> r = JSON.readValue(line, RECORD);
                if (r == null) throw new IOException("line " + (i + 1) + " of " + jsonl + " is not a JSON object");
                @SuppressWarnings("unchecked")
                Map<String, Object> restored = (Map<String, Object>) restore(r);
                records.add(restored);
            } catch (JsonProcessingException e) {
                if (lastUnterminated) break;
                throw new IOException("line " + (i + 1) + " of " + jsonl + " is not a JSON object: " + e.getOriginalMessage(), e);
            }
        }
        return records;
    }

    private static Object restore(Object v) {
        if (v instanceof String s) {
            return switch (s) {
                case "NaN" -> Double.NaN;
                case "Infinity" -> Double.POSITIVE_INFINITY;
                case "-Infinity" -> Double.NEGATIVE_INFINITY;
                default -> s;
            };
        }
        if (v instanceof Map<?, ?> m) {
            Map<String, Object> copy = new LinkedHashMap<>();
            for (Map.Entry<?, ?> e : m.entrySet()) copy.put((String) e.getKey(), restore(e.getValue()));
            return copy;
        }
        if (v instanceof List<?> l) {
            List<Object> copy = new ArrayList<>(l.size());
            for (Object x : l) copy.add(restore(x));
            return copy;
        }
        return v;
    }
}
