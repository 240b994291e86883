package dev.weft.optimizers;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.io.Safetensors;
import dev.weft.core.io.SafetensorsFile;
import dev.weft.optimizers.linalg.Lapack;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** What every optimizer promises: convergence, exact resume, honest state bytes, clear errors. */
class OptimizerContractTest {
    @TempDir
    Path dir;

    static final List<String> ALL = Optimizers.names();

    /** Small settings so refreshes, history wrap-around and 8-bit blocks all happen in a few steps. */
    static Map<String, Object> small(String name) {
        Map<String, Object> s = new HashMap<>();
        if (List.of("galore", "apollo", "frugal", "natural_galore").contains(name)) s.put("rank", 3);
        if (!List.of("adamw", "sgd", "adamw8bit", "muon").contains(name)) s.put("update_proj_gap", 4);
        if (name.equals("natural_galore")) s.put("history", 3);
        if (name.equals("adamw8bit")) {
            s.put("min_8bit_size", 64);
            s.put("block_size", 32);
        }
        return s;
    }

    private static Map<String, Tensor> params(long seed, String name) {
        SplittableRandom r = new SplittableRandom(seed);
        Map<String, Tensor> ps = new LinkedHashMap<>();
        int[][] shapes = Optimizers.matrixOnly(name) ? new int[][] {{6, 10}, {10, 6}} : new int[][] {{6, 10}, {10, 6}, {5}};
        for (int i = 0; i < shapes.length; i++) {
            int[] sh = shapes[i];
            float[] v = new float[(int) Tensor.numel(sh)];
            for (int k = 0; k < v.length; k++) v[k] = (float) r.nextGaussian();
            String n = "p" + i;
            ps.put(n, Scope.outside(() -> Tensor.of(v, sh).requiresGrad(true).name(n)));
        }
        return ps;
    }

    private static void grads(Map<String, Tensor> ps, int step) {
        SplittableRandom r = new SplittableRandom(1000 + step);
        for (Tensor p : ps.values()) {
            float[] g = new float[(int) p.numel()];
            for (int k = 0; k < g.length; k++) g[k] = (float) r.nextGaussian();
            Ref.setGrad(p, g);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"adamw", "sgd", "adamw8bit", "galore", "apollo", "apollo_mini", "frugal", "natural_galore", "muon"})
    void saveAndResumeThroughSafetensorsIsBitExact(String name) throws IOException {
        int total = 11, split = 5;
        try (Scope s = Scope.open()) {
            Map<String, Tensor> a = params(7, name);
            try (Optimizer full = Optimizers.create(name, a, small(name))) {
                for (int t = 0; t < total; t++) {
                    grads(a, t);
                    full.step(1e-2);
                }
            }
            Map<String, Tensor> b = params(7, name);
            Path file = dir.resolve(name + ".safetensors");
            try (Optimizer first = Optimizers.create(name, b, small(name))) {
                for (int t = 0; t < split; t++) {
                    grads(b, t);
                    first.step(1e-2);
                }
                Map<String, String> meta = new LinkedHashMap<>(first.stateScalars());
                meta.put("steps", Long.toString(first.steps()));
                Safetensors.write(file, first.stateTensors(), meta);
            }
            try (Optimizer second = Optimizers.create(name, b, small(name)); SafetensorsFile f = Safetensors.open(file)) {
                Map<String, Tensor> tensors = new LinkedHashMap<>();
                for (String n : f.names()) tensors.put(n, f.load(n));
                Map<String, String> meta = new HashMap<>(f.metadata());
                long steps = Long.parseLong(meta.remove("steps"));
                second.loadState(tensors, meta, steps);
                for (int t = split; t < total; t++) {
                    grads(b, t);
                    second.step(1e-2);
                }
            }
            for (String n : a.keySet()) assertArrayEquals(a.get(n).toArray(), b.get(n).toArray(), name + " " + n);
        }
    }

    @Test
    void missingScalarStateIsReportedByName() {
        try (Scope s = Scope.open(); Optimizer o = Optimizers.create("apollo", params(1, "apollo"), small("apollo"))) {
            var e = assertThrows(IllegalArgumentException.class, () -> o.loadState(o.stateTensors(), Map.of(), 3));
            assertTrue(e.getMessage().contains("p0/step"), e.getMessage());
        }
    }

    /** min ‖W X − Y‖² / N over W (8×16) from W = 0; each optimizer must remove most of the loss. */
    @ParameterizedTest
    @ValueSource(strings = {"adamw", "sgd", "adamw8bit", "galore", "apollo", "apollo_mini", "frugal", "natural_galore", "muon"})
    void convergesOnLeastSquares(String name) {
        int m = 8, n = 16, samples = 64, steps = 300;
        SplittableRandom r = new SplittableRandom(5);
        double[][] wStar = Ref.random(r, m, n), x = Ref.random(r, n, samples);
        double[][] y = Ref.mul(wStar, x);
        Map<String, Object> set = new HashMap<>();
        set.put("weight_decay", 0.0);
        if (!List.of("adamw", "sgd", "adamw8bit", "muon").contains(name)) set.put("update_proj_gap", 20);
        if (List.of("galore", "apollo", "frugal", "natural_galore").contains(name)) set.put("rank", 4);
        if (name.equals("galore") || name.equals("natural_galore")) set.put("scale", 1.0);
        if (name.equals("adamw8bit")) set.put("min_8bit_size", 0);
        double lr = switch (name) {
            case "sgd" -> 0.02;
            case "muon" -> 0.2;
            case "apollo_mini" -> 0.01;
            default -> 0.1;
        };
        try (Scope s = Scope.open()) {
            Tensor w = Scope.outside(() -> Tensor.zeros(m, n).requiresGrad(true).name("w"));
            double initial = loss(Ref.unflat(w.toArray(), m, n), x, y);
            try (Optimizer opt = Optimizers.create(name, Map.of("w", w), set)) {
                for (int t = 0; t < steps; t++) {
                    double[][] wd = Ref.unflat(w.toArray(), m, n);
                    double[][] res = Ref.mul(wd, x);
                    for (int i = 0; i < m; i++) for (int j = 0; j < samples; j++) res[i][j] = 2 * (res[i][j] - y[i][j]) / samples;
                    Ref.setGrad(w, Ref.flat(Ref.mul(res, Ref.t(x))));
                    opt.step(lr * (1 - (double) t / steps)); // linear decay to 0, so sign-based parts settle
                }
            }
            double last = loss(Ref.unflat(w.toArray(), m, n), x, y);
            assertTrue(last < 0.02 * initial, name + ": loss " + initial + " -> " + last);
        }
    }

    private static double loss(double[][] w, double[][] x, double[][] y) {
        double[][] p = Ref.mul(w, x);
        double s = 0;
        for (int i = 0; i < p.length; i++) for (int j = 0; j < p[0].length; j++) s += (p[i][j] - y[i][j]) * (p[i][j] - y[i][j]);
        return s / p[0].length;
    }

    @Test
    void stateBytesFollowTheFormulas() {
        int m = 128, n = 384, r = 16; // APOLLO-Mini over AdamW is 1/m here
        try (Scope s = Scope.open()) {
            Tensor w = Scope.outside(() -> Tensor.zeros(m, n).requiresGrad(true).name("w"));
            Map<String, Tensor> ps = Map.of("w", w);
            long adamw;
            try (Optimizer o = Optimizers.create("adamw", ps, Map.of())) {
                adamw = o.stateBytes();
                assertEquals(2L * m * n * 4, adamw);
                assertEquals(Map.of("w", adamw), o.stateBytesByParameter());
            }
            try (Optimizer o = Optimizers.create("galore", ps, Map.of("rank", r))) {
                assertEquals(((long) m * r + 2L * n * r) * 4, o.stateBytes()); // m ≤ n: P is m×r, moments r×n
            }
            try (Optimizer o = Optimizers.create("galore", Map.of("w", Scope.outside(() -> Tensor.zeros(n, m).requiresGrad(true))), Map.of("rank", r))) {
                assertEquals(((long) m * r + 2L * n * r) * 4, o.stateBytes()); // the transpose: same formula on the smaller side
            }
            try (Optimizer o = Optimizers.create("apollo_mini", ps, Map.of())) {
                assertEquals(2L * n * 4, o.stateBytes()); // rank-1 moments over the n channels; the projector is regenerated
                assertTrue(o.stateBytes() < 0.01 * adamw);
            }
            try (Optimizer o = Optimizers.create("apollo", ps, Map.of("rank", r))) {
                assertEquals(2L * n * r * 4, o.stateBytes());
            }
            try (Optimizer o = Optimizers.create("frugal", ps, Map.of("rank", r))) {
                assertEquals(((long) m * r + 2L * n * r) * 4, o.stateBytes());
            }
            try (Optimizer o = Optimizers.create("natural_galore", ps, Map.of("rank", r, "history", 5))) {
                assertEquals(((long) m * r + 2L * n * r + 5L * n * r) * 4, o.stateBytes());
            }
            try (Optimizer o = Optimizers.create("muon", ps, Map.of())) {
                assertEquals((long) m * n * 4, o.stateBytes());
            }
            try (Optimizer o = Optimizers.create("sgd", ps, Map.of())) {
                assertEquals((long) m * n * 4, o.stateBytes());
            }
            try (Optimizer o = Optimizers.create("adamw8bit", ps, Map.of())) {
                assertEquals(2L * m * n + 2L * (m * n / 256) * 4, o.stateBytes()); // m·n is a multiple of 256 // one byte per moment element + a float absmax per block
            }
            try (Optimizer o = Optimizers.create("adamw8bit", Map.of("b", Scope.outside(() -> Tensor.zeros(100).requiresGrad(true))), Map.of())) {
                assertEquals(2L * 100 * 4, o.stateBytes()); // below min_8bit_size: float32 moments
            }
            // GaLore at rank d_model/4 on one layer's attention (4 × d×d) and MLP (3 × d×3d) matrices
            // keeps at most 35% of AdamW's state (37.5% on a square matrix, 29% on the MLP ones).
            int d = 256;
            Map<String, Tensor> layer = new LinkedHashMap<>();
            for (String p : List.of("q", "k", "v", "o")) layer.put(p, Scope.outside(() -> Tensor.zeros(d, d).requiresGrad(true)));
            for (String p : List.of("gate", "up")) layer.put(p, Scope.outside(() -> Tensor.zeros(3 * d, d).requiresGrad(true)));
            layer.put("down", Scope.outside(() -> Tensor.zeros(d, 3 * d).requiresGrad(true)));
            try (Optimizer g = Optimizers.create("galore", layer, Map.of("rank", d / 4)); Optimizer a = Optimizers.create("adamw", layer, Map.of())) {
                assertTrue(g.stateBytes() <= 0.35 * a.stateBytes(), "galore " + g.stateBytes() + " vs adamw " + a.stateBytes());
            }
        }
    }

    @Test
    void unknownNamesAndBadSettingsAreRejectedClearly() {
        try (Scope s = Scope.open()) {
            Map<String, Tensor> ps = params(1, "galore");
            var e = assertThrows(IllegalArgumentException.class, () -> Optimizers.create("lion", ps, Map.of()));
            assertTrue(e.getMessage().contains("unknown optimizer 'lion'") && e.getMessage().contains("galore, apollo"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Optimizers.create("galore", ps, Map.of("rank", 0)));
            assertTrue(e.getMessage().contains("galore: rank = 0 is invalid"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Optimizers.create("galore", ps, Map.of("rnak", 4)));
            assertTrue(e.getMessage().contains("'rnak'") && e.getMessage().contains("allowed: weight_decay, beta1, beta2, eps, rank"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Optimizers.create("apollo", ps, Map.of("scale_type", "row")));
            assertTrue(e.getMessage().contains("one of channel, tensor"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Optimizers.create("sgd", ps, Map.of("momentum", 0.0)));
            assertTrue(e.getMessage().contains("nesterov needs momentum > 0"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Optimizers.create("muon", params(1, "adamw"), Map.of()));
            assertTrue(e.getMessage().contains("muon updates 2-D weight matrices only") && e.getMessage().contains("'p2'"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> new GaLore.Settings(4, 0, 0.25, 0.9, 0.99, 1e-8, 0));
            assertTrue(e.getMessage().contains("update_proj_gap"), e.getMessage());
        }
    }

    @Test
    void groupsSplitParametersByPatternAndStepTogether() {
        try (Scope s = Scope.open()) {
            Map<String, Tensor> ps = new LinkedHashMap<>();
            for (String n : List.of("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight",
                    "model.layers.0.input_layernorm.weight", "lm_head.weight")) {
                int[] sh = n.contains("norm") ? new int[] {8} : new int[] {8, 12};
                ps.put(n, Scope.outside(() -> Tensor.zeros(sh).requiresGrad(true).name(n)));
            }
            var spec = new ParameterGroups.Spec("galore", List.of("model.layers.*.self_attn.*_proj.weight", "model.layers.*.mlp.*_proj.weight"),
                    Map.of("rank", 2), 1);
            try (ParameterGroups g = new ParameterGroups(ps, List.of(spec), new ParameterGroups.Spec("adamw", List.of(), Map.of(), 1))) {
                assertEquals("galore+adamw", g.name());
                assertEquals(List.of("model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight"), g.groups().get(0).parameters());
                assertEquals(List.of("model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "lm_head.weight"), g.groups().get(1).parameters());
                assertEquals(2L * 8 * 12 * 4 * 2 + 2L * 8 * 4, g.stateBytesByGroup().get("default (adamw)"));
            }
            assertTrue(ParameterGroups.matcher("*norm.weight").test("model.norm.weight"));
            assertTrue(ParameterGroups.matcher("re:model\\.layers\\.\\d+\\..*").test("model.layers.3.mlp.up_proj.weight"));
            var bad = new ParameterGroups.Spec("galore", List.of("model.layer.*"), Map.of(), 1);
            var e = assertThrows(IllegalArgumentException.class,
                    () -> new ParameterGroups(ps, List.of(bad), new ParameterGroups.Spec("adamw", List.of(), Map.of(), 1)));
            assertTrue(e.getMessage().contains("'model.layer.*'") && e.getMessage().contains("matches no parameter"), e.getMessage());
        }
    }

    @Test
    void lapackSvdReconstructsAndQrIsOrthonormal() {
        int m = 5, n = 3;
        SplittableRandom r = new SplittableRandom(2);
        float[] a = new float[m * n];
        for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian();
        try (Scope s = Scope.open()) {
            Tensor t = Tensor.of(a, m, n);
            Lapack.Svd svd = Lapack.svd(t.data(), m, n);
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) {
                double v = 0;
                for (int k = 0; k < n; k++) v += svd.u()[i * n + k] * svd.s()[k] * svd.vt()[k * n + j];
                assertEquals(a[i * n + j], v, 1e-5);
            }
            assertTrue(svd.s()[0] >= svd.s()[1] && svd.s()[1] >= svd.s()[2]);
            float[] q = Lapack.orthonormalize(a, m, n);
            for (int x = 0; x < n; x++) for (int y = 0; y < n; y++) {
                double d = 0;
                for (int i = 0; i < m; i++) d += q[i * n + x] * q[i * n + y];
                assertEquals(x == y ? 1 : 0, d, 1e-5);
            }
        }
    }
}
