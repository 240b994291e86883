package dev.weft.optimizers;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * A small seeded problem every optimizer can run, and an exact record of where it ends: the
 * SHA-256 of each parameter's and state tensor's raw bytes, every scalar state string, every step
 * stat as its double bits, and the step count. Two runs agree bit for bit exactly when their
 * records are equal.
 *
 * <p>The problem is chosen to reach every per-parameter path: weight decay on, projector refreshes
 * (gap 4) and a Natural GaLore history that wraps (3) within the 9 steps, 8-bit blocks that are both
 * full and partial next to a float32 fallback tensor, a vector long enough for AdamW's vectorised
 * loop, its scalar tail and more than one parallel range, and one parameter that has no gradient on
 * steps 2 and 5, so per-parameter step counters drift from the optimizer's.
 */
final class SeededRun {
    static final int STEPS = 9;

    private SeededRun() {}

    static Map<String, Object> settings(String name) {
        Map<String, Object> s = new HashMap<>();
        s.put("weight_decay", 0.1);
        if (List.of("galore", "apollo", "frugal", "natural_galore").contains(name)) s.put("rank", 3);
        if (!List.of("adamw", "sgd", "adamw8bit", "muon").contains(name)) s.put("update_proj_gap", 4);
        if (name.equals("natural_galore")) s.put("history", 3);
        if (name.equals("adamw8bit")) {
            s.put("min_8bit_size", 32);
            s.put("block_size", 32);
        }
        return s;
    }

    static Map<String, Tensor> parameters(String name) {
        SplittableRandom r = new SplittableRandom(11);
        int[][] shapes = Optimizers.matrixOnly(name) ? new int[][] {{6, 10}, {10, 6}, {12, 12}} : new int[][] {{6, 10}, {10, 6}, {5}, {40_003}};
        Map<String, Tensor> ps = new LinkedHashMap<>();
        for (int i = 0; i < shapes.length; i++) {
            int[] sh = shapes[i];
            float[] v = new float[(int) Tensor.numel(sh)];
            for (int k = 0; k < v.length; k++) v[k] = (float) r.nextGaussian();
            String n = "layer" + i + ".weight";
            ps.put(n, Scope.outside(() -> Tensor.of(v, sh).requiresGrad(true).name(n)));
        }
        return ps;
    }

    /** Step t's gradients; the second parameter has none on steps 2 and 5. */
    static void gradients(Map<String, Tensor> ps, int t) {
        SplittableRandom r = new SplittableRandom(1000 + t);
        int i = 0;
        for (Tensor p : ps.values()) {
            float[] g = new float[(int) p.numel()];
            for (int k = 0; k < g.length; k++) g[k] = (float) r.nextGaussian();
            if (i++ == 1 && (t == 2 || t == 5)) p.clearGrad();
            else Ref.setGrad(p, g);
        }
    }

    static double lr(int t) {
        return 1e-2 * (1 + 0.1 * t);
    }

    /** Runs optimizer {@code name} for {@link #STEPS} steps, {@code setup} applied to it first, and records where it ends. */
    static Map<String, String> record(String name, Consumer<Optimizer> setup) {
        return record(name, setup, STEPS);
    }

    /**
     * Like {@link #record(String, Consumer)}, but after {@code split} steps the optimizer's state is
     * saved (each parameter's through {@link Optimizer#withState}), the optimizer closed, and a
     * fresh one (set up alike) loads it and takes the remaining steps.
     */
    static Map<String, String> record(String name, Consumer<Optimizer> setup, int split) {
        try (Scope s = Scope.open()) {
            Map<String, Tensor> ps = parameters(name);
            Map<String, String> out = new LinkedHashMap<>();
            Optimizer o = Optimizers.create(name, ps, settings(name));
            try {
                setup.accept(o);
                for (int t = 0; t < STEPS; t++) {
                    if (t == split) {
                        Map<String, Tensor> saved = save(o);
                        Map<String, String> scalars = o.stateScalars();
                        long steps = o.steps();
                        o.close();
                        o = Optimizers.create(name, ps, settings(name));
                        setup.accept(o);
                        o.loadState(saved, scalars, steps);
                    }
                    gradients(ps, t);
                    o.step(lr(t));
                    String at = "@" + t;
                    o.stepStats().forEach((k, v) -> out.put("stat:" + k + at, Long.toString(Double.doubleToRawLongBits(v))));
                }
                ps.forEach((n, p) -> out.put("param:" + n, sha(p)));
                out.putAll(state(o));
                out.put("steps", Long.toString(o.steps()));
                return out;
            } finally {
                o.close();
            }
        }
    }

    /** Copies of every state tensor, by name, taken one parameter at a time as a checkpoint writer would. */
    static Map<String, Tensor> save(Optimizer o) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (String p : o.stateByParameter().keySet())
            o.withState(p, ts -> {
                for (Tensor t : ts) {
                    Tensor c = Tensor.empty(t.shape());
                    MemorySegment.copy(t.data(), 0, c.data(), 0, t.data().byteSize());
                    out.put(t.name(), c);
                }
            });
        return out;
    }

    /** The optimizer's state tensors (as hashes, read one parameter at a time) and scalars, as {@link #record} writes them. */
    static Map<String, String> state(Optimizer o) {
        Map<String, String> out = new LinkedHashMap<>();
        for (String p : o.stateByParameter().keySet()) o.withState(p, ts -> ts.forEach(t -> out.put("state:" + t.name(), sha(t))));
        o.stateScalars().forEach((n, v) -> out.put("scalar:" + n, v));
        return out;
    }

    static String sha(Tensor t) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(t.data().toArray(ValueLayout.JAVA_BYTE)));
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
