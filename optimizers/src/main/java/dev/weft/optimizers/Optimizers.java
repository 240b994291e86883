package dev.weft.optimizers;

import dev.weft.core.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The registry of optimizers by config name, with the settings each accepts (type, default,
 * allowed range). Configs are validated against {@link #settings(String)}, so the trainer and
 * this factory agree on every key; {@link #create} checks again and names what is wrong.
 */
public final class Optimizers {
    private Optimizers() {}

    public enum Type { NUMBER, INTEGER, BOOLEAN, CHOICE }

    /** One hyperparameter: its key in configs, type, default, range (numbers) or choices. */
    public record Setting(String key, Type type, Object fallback, double min, double max, List<String> choices) {
        static Setting number(String key, double fallback, double min, double max) {
            return new Setting(key, Type.NUMBER, fallback, min, max, List.of());
        }

        static Setting integer(String key, int fallback, int min, int max) {
            return new Setting(key, Type.INTEGER, fallback, min, max, List.of());
        }

        static Setting bool(String key, boolean fallback) {
            return new Setting(key, Type.BOOLEAN, fallback, 0, 1, List.of());
        }

        static Setting choice(String key, String fallback, String... choices) {
            return new Setting(key, Type.CHOICE, fallback, 0, 0, List.of(choices));
        }

        /** Checks a value against this setting; the message names the optimizer, key, value and what is allowed. */
        Object check(String optimizer, Object v) {
            String where = optimizer + ": " + key + " = " + (v instanceof String str ? "'" + str + "'" : v) + " is invalid: expected ";
            switch (type) {
                case NUMBER -> {
                    if (!(v instanceof Number n) || !(n.doubleValue() >= min && n.doubleValue() <= max))
                        throw new IllegalArgumentException(where + "a number in [" + min + ", " + max + "]");
                    return n.doubleValue();
                }
                case INTEGER -> {
                    if (!(v instanceof Number n) || n.doubleValue() != Math.rint(n.doubleValue()) || n.doubleValue() < min || n.doubleValue() > max)
                        throw new IllegalArgumentException(where + "an integer in [" + (long) min + ", " + (long) max + "]");
                    return n.intValue();
                }
                case BOOLEAN -> {
                    if (!(v instanceof Boolean)) throw new IllegalArgumentException(where + "true or false");
                    return v;
                }
                default -> {
                    if (!(v instanceof String str) || !choices.contains(str))
                        throw new IllegalArgumentException(where + "one of " + String.join(", ", choices));
                    return v;
                }
            }
        }
    }

    private static final Setting WD = Setting.number("weight_decay", 0.0, 0, 10), B1 = Setting.number("beta1", 0.9, 0, 0.999999),
            B2 = Setting.number("beta2", 0.999, 0, 0.99999999), EPS = Setting.number("eps", 1e-8, 1e-30, 1);
    private static final Setting GAP = Setting.integer("update_proj_gap", 200, 1, Integer.MAX_VALUE);

    private static final Map<String, List<Setting>> SETTINGS = new LinkedHashMap<>();

    static {
        SETTINGS.put("adamw", List.of(WD, B1, B2, EPS));
        SETTINGS.put("sgd", List.of(WD, Setting.number("momentum", 0.9, 0, 0.999999), Setting.number("dampening", 0, 0, 1),
                Setting.bool("nesterov", true)));
        SETTINGS.put("adamw8bit", List.of(WD, B1, B2, EPS, Setting.integer("block_size", 256, 16, 1 << 20),
                Setting.integer("min_8bit_size", 4096, 0, Integer.MAX_VALUE)));
        SETTINGS.put("galore", List.of(WD, B1, B2, EPS, Setting.integer("rank", 128, 1, 1 << 20), GAP, Setting.number("scale", 0.25, 1e-12, 1e6)));
        SETTINGS.put("apollo", List.of(WD, B1, B2, EPS, Setting.integer("rank", 256, 1, 1 << 20), GAP, Setting.number("scale", 1, 1e-12, 1e6),
                Setting.choice("scale_type", "channel", "channel", "tensor"), Setting.integer("seed", 0, 0, Integer.MAX_VALUE),
                Setting.bool("limiter", true)));
        SETTINGS.put("apollo_mini", List.of(WD, B1, B2, EPS, Setting.integer("rank", 1, 1, 1 << 20), GAP, Setting.number("scale", 128, 1e-12, 1e6),
                Setting.choice("scale_type", "tensor", "channel", "tensor"), Setting.integer("seed", 0, 0, Integer.MAX_VALUE),
                Setting.bool("limiter", true)));
        SETTINGS.put("frugal", List.of(WD, B1, B2, EPS, Setting.integer("rank", 128, 1, 1 << 20), GAP, Setting.number("free_lr_scale", 1, 0, 1e6)));
        SETTINGS.put("natural_galore", List.of(WD, B1, B2, EPS, Setting.integer("rank", 128, 1, 1 << 20), GAP, Setting.number("scale", 0.25, 1e-12, 1e6),
                Setting.integer("history", 10, 1, 1024), Setting.number("damping", 0.1, 1e-30, 1e6)));
        SETTINGS.put("muon", List.of(WD, Setting.number("momentum", 0.95, 0, 0.999999), Setting.bool("nesterov", true),
                Setting.integer("ns_steps", 5, 1, 100)));
    }

    /** Every known optimizer name. */
    public static List<String> names() {
        return List.copyOf(SETTINGS.keySet());
    }

    /** True for optimizers that update whole 2-D matrices only (the rest of the model goes to AdamW). */
    public static boolean matrixOnly(String name) {
        return switch (known(name)) {
            case "galore", "apollo", "apollo_mini", "frugal", "natural_galore", "muon" -> true;
            default -> false;
        };
    }

    /** The settings an optimizer accepts, in a fixed order. */
    public static List<Setting> settings(String name) {
        return SETTINGS.get(known(name));
    }

    private static String known(String name) {
        if (!SETTINGS.containsKey(name))
            throw new IllegalArgumentException("unknown optimizer '" + name + "'; known: " + String.join(", ", SETTINGS.keySet()));
        return name;
    }

    /**
     * Builds optimizer {@code name} over {@code parameters}. {@code values} may hold any of
     * {@link #settings(String)}' keys (defaults fill the rest); an unknown key or a bad value is
     * rejected naming the key and what is allowed.
     */
    public static Optimizer create(String name, Map<String, Tensor> parameters, Map<String, ?> values) {
        return create(name, parameters, null, values);
    }

    /**
     * How optimizer {@code name} with {@code values} may be split across ranks under ZeRO (see
     * {@link Sharding}), known before it is built.
     */
    public static Sharding sharding(String name, Map<String, ?> values) {
        if (matrixOnly(name)) return Sharding.WHOLE_MATRIX;
        if (known(name).equals("adamw8bit"))
            return Sharding.blocks(values.get("block_size") instanceof Number n ? n.intValue()
                    : (Integer) settings(name).stream().filter(st -> st.key().equals("block_size")).findFirst().orElseThrow().fallback());
        return Sharding.ELEMENTWISE;
    }

    /**
     * Like {@link #create(String, Map, Map)} over tensors that may be flat shards of parameters:
     * {@code globalShapes} (null: the tensors' own) gives each parameter's full shape, for the
     * decisions an optimizer takes per parameter (8-bit AdamW keeps small tensors in float32).
     */
    public static Optimizer create(String name, Map<String, Tensor> parameters, Map<String, int[]> globalShapes, Map<String, ?> values) {
        List<Setting> list = settings(name);
        Map<String, Object> v = new LinkedHashMap<>();
        List<String> allowed = new ArrayList<>();
        for (Setting s : list) {
            allowed.add(s.key());
            v.put(s.key(), s.fallback());
        }
        for (var e : values.entrySet()) {
            Setting s = list.stream().filter(x -> x.key().equals(e.getKey())).findFirst().orElseThrow(() -> new IllegalArgumentException(
                    "optimizer " + name + " has no setting '" + e.getKey() + "'; allowed: " + String.join(", ", allowed)));
            v.put(s.key(), s.check(name, e.getValue()));
        }
        double wd = num(v, "weight_decay");
        return switch (name) {
            case "adamw" -> new AdamW(parameters, adam(v));
            case "sgd" -> new Sgd(parameters, new Sgd.Settings(num(v, "momentum"), num(v, "dampening"), (Boolean) v.get("nesterov"), wd));
            case "adamw8bit" -> new AdamW8bit(parameters, globalShapes, new AdamW8bit.Settings(adam(v), integer(v, "block_size"), integer(v, "min_8bit_size")));
            case "galore" -> new GaLore(parameters, galore(v));
            case "natural_galore" -> new NaturalGaLore(parameters, new NaturalGaLore.Settings(galore(v), integer(v, "history"), num(v, "damping")));
            case "apollo", "apollo_mini" -> new Apollo(name, parameters, globalShapes == null ? null : globalShapes.keySet(), new Apollo.Settings(integer(v, "rank"), integer(v, "update_proj_gap"),
                    num(v, "scale"), Apollo.ScaleType.valueOf(((String) v.get("scale_type")).toUpperCase(Locale.ROOT)), integer(v, "seed"),
                    (Boolean) v.get("limiter"), num(v, "beta1"), num(v, "beta2"), num(v, "eps"), wd));
            case "frugal" -> new Frugal(parameters, new Frugal.Settings(integer(v, "rank"), integer(v, "update_proj_gap"), num(v, "free_lr_scale"),
                    num(v, "beta1"), num(v, "beta2"), num(v, "eps"), wd));
            case "muon" -> new Muon(parameters, new Muon.Settings(num(v, "momentum"), (Boolean) v.get("nesterov"), integer(v, "ns_steps"), wd));
            default -> throw new AssertionError(name);
        };
    }

    private static AdamW.Settings adam(Map<String, Object> v) {
        return new AdamW.Settings(num(v, "beta1"), num(v, "beta2"), num(v, "eps"), num(v, "weight_decay"));
    }

    private static GaLore.Settings galore(Map<String, Object> v) {
        return new GaLore.Settings(integer(v, "rank"), integer(v, "update_proj_gap"), num(v, "scale"), num(v, "beta1"), num(v, "beta2"),
                num(v, "eps"), num(v, "weight_decay"));
    }

    private static double num(Map<String, Object> v, String k) {
        return ((Number) v.get(k)).doubleValue();
    }

    private static int integer(Map<String, Object> v, String k) {
        return ((Number) v.get(k)).intValue();
    }
}
