package dev.weft.trainer.config;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One mapping of a YAML config, read key by key with validation. Every read records the key as
 * known; {@link #finish()} then rejects whatever was not read, listing the allowed keys, so a typo
 * never passes silently.
 */
final class ConfigSection {
    private final String path;
    private final Map<String, Object> values;
    private final Set<String> known = new LinkedHashSet<>();

    ConfigSection(String path, Map<String, Object> values) {
        this.path = path;
        this.values = values == null ? Map.of() : values;
    }

    ConfigSection section(String key) {
        known.add(key);
        Object v = values.get(key);
        if (v == null) return new ConfigSection(qualify(key), new LinkedHashMap<>());
        if (!(v instanceof Map<?, ?> m)) throw error(key, v, "a mapping of keys to values");
        Map<String, Object> typed = new LinkedHashMap<>();
        for (var e : m.entrySet()) typed.put(String.valueOf(e.getKey()), e.getValue());
        return new ConfigSection(qualify(key), typed);
    }

    /** A list of mappings (for example optimizer.groups); absent means empty. */
    List<ConfigSection> sections(String key) {
        known.add(key);
        Object v = values.get(key);
        if (v == null) return List.of();
        if (!(v instanceof List<?> l)) throw error(key, v, "a list of mappings");
        List<ConfigSection> out = new ArrayList<>();
        for (int i = 0; i < l.size(); i++) {
            if (!(l.get(i) instanceof Map<?, ?> m)) throw error(key + "[" + i + "]", l.get(i), "a mapping of keys to values");
            Map<String, Object> typed = new LinkedHashMap<>();
            for (var e : m.entrySet()) typed.put(String.valueOf(e.getKey()), e.getValue());
            out.add(new ConfigSection(qualify(key) + "[" + i + "]", typed));
        }
        return out;
    }

    /** A string or a list of strings; required and non-empty. */
    List<String> strings(String key) {
        known.add(key);
        Object v = values.get(key);
        if (v instanceof String s) return List.of(s);
        if (v instanceof List<?> l && !l.isEmpty() && l.stream().allMatch(x -> x instanceof String)) return l.stream().map(String::valueOf).toList();
        throw error(key, v, "a name pattern or a non-empty list of them (for example model.layers.*.mlp.*_proj.weight)");
    }

    /**
     * One allowed word for every layer, or a list of them, one per layer (for example
     * offload.recompute: [full, full, none, none]); {@code fallback} when absent.
     */
    List<String> choicePerLayer(String key, String fallback, int layers, String... allowed) {
        known.add(key);
        Object v = values.get(key);
        List<String> words;
        if (v == null) words = List.of(fallback);
        else if (v instanceof String w) words = List.of(w);
        else if (v instanceof List<?> l && !l.isEmpty() && l.stream().allMatch(x -> x instanceof String)) words = l.stream().map(String::valueOf).toList();
        else throw error(key, v, "one of " + String.join(", ", allowed) + ", or a list of them with one per layer");
        if (words.size() != 1 && words.size() != layers)
            throw error(key, v, "one value for all layers, or a list of exactly " + layers + " (model.layers), got " + words.size());
        for (String w : words) {
            if (!List.of(allowed).contains(w)) throw error(key, v, "one of " + String.join(", ", allowed) + " (per layer, or one for all)");
        }
        return words;
    }

    /** A list of positive integers, as a YAML list or a comma-separated string ("2,2"); empty when absent. */
    List<Integer> positiveIntegers(String key) {
        known.add(key);
        Object v = values.get(key);
        if (v == null) return List.of();
        List<?> items = v instanceof String s ? List.of((Object[]) s.split(",")) : v instanceof List<?> l ? l : v instanceof Integer i ? List.of(i) : null;
        if (items == null || items.isEmpty()) throw error(key, v, "a list of positive integers (for example [2, 2])");
        List<Integer> out = new ArrayList<>();
        for (Object o : items) {
            try {
                int n = o instanceof Integer i ? i : Integer.parseInt(String.valueOf(o).trim());
                if (n <= 0) throw new NumberFormatException();
                out.add(n);
            } catch (NumberFormatException e) {
                throw error(key, v, "a list of positive integers (for example [2, 2])");
            }
        }
        return out;
    }

    int integer(String key, int fallback, int min, int max) {
        known.add(key);
        Object v = values.get(key);
        if (v == null) return fallback;
        long n;
        if (v instanceof Integer || v instanceof Long) n = ((Number) v).longValue();
        else if (v instanceof Double d && d == Math.rint(d) && !d.isInfinite()) n = d.longValue();
        else throw error(key, v, "an integer" + range(min, max));
        if (n < min || n > max) throw error(key, v, "an integer" + range(min, max));
        return (int) n;
    }

    double number(String key, double fallback, double min, double max) {
        known.add(key);
        Object v = values.get(key);
        if (v == null) return fallback;
        if (!(v instanceof Number num)) throw error(key, v, "a number" + range(min, max));
        double d = num.doubleValue();
        if (!(d >= min && d <= max)) throw error(key, v, "a number" + range(min, max));
        return d;
    }

    boolean bool(String key, boolean fallback) {
        known.add(key);
        Object v = values.get(key);
        if (v == null) return fallback;
        if (!(v instanceof Boolean b)) throw error(key, v, "true or false");
        return b;
    }

    String string(String key, String fallback, String... allowed) {
        known.add(key);
        Object v = values.get(key);
        if (v == null) return fallback;
        if (!(v instanceof String) && !(v instanceof Number)) throw error(key, v, "a string");
        String s = String.valueOf(v);
        if (allowed.length > 0 && !List.of(allowed).contains(s)) throw error(key, v, "one of " + String.join(", ", allowed));
        return s;
    }

    /** Rejects keys that were never read. */
    void finish() {
        List<String> unknown = new ArrayList<>();
        for (String k : values.keySet()) if (!known.contains(k)) unknown.add(k);
        if (!unknown.isEmpty()) {
            throw new ConfigException("unknown key" + (unknown.size() > 1 ? "s " : " ") + String.join(", ", unknown.stream().map(this::qualify).toList())
                    + " in " + (path.isEmpty() ? "the config" : "'" + path + "'") + "; allowed: " + String.join(", ", known));
        }
    }

    String qualify(String key) {
        return path.isEmpty() ? key : path + "." + key;
    }

    ConfigException error(String key, Object value, String expected) {
        return new ConfigException(qualify(key) + " = " + render(value) + " is invalid: expected " + expected);
    }

    private static String render(Object v) {
        return v instanceof String s ? "'" + s + "'" : String.valueOf(v);
    }

    private static String range(double min, double max) {
        boolean lo = min > -Double.MAX_VALUE && min != Integer.MIN_VALUE, hi = max < Double.MAX_VALUE && max != Integer.MAX_VALUE;
        if (lo && hi) return " in [" + fmt(min) + ", " + fmt(max) + "]";
        if (lo) return " >= " + fmt(min);
        if (hi) return " <= " + fmt(max);
        return "";
    }

    private static String fmt(double d) {
        return d == Math.rint(d) && Math.abs(d) < 1e15 ? Long.toString((long) d) : Double.toString(d);
    }
}
