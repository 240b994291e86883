package dev.weft.optimizers;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * APOLLO's step stats report what its norm-growth limiter did. With the same projector and a
 * gradient whose direction repeats, the tensor-wise factor grows exactly as Adam's m/√v does, so
 * the expected cut is known in closed form: |m₂/√v₂| / |m₁/√v₁| = (0.19/√0.0975) / (0.1/√0.05) for
 * β = (0.9, 0.95), divided by the allowed growth 1.01.
 */
class ApolloStepStatsTest {
    @Test
    void statsSayWhenAndHowHardTheLimiterCut() {
        try (Scope s = Scope.open()) {
            Map<String, Tensor> ps = new LinkedHashMap<>();
            for (String n : List.of("model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight", "model.norm.weight")) {
                int[] sh = n.contains("up") ? new int[] {6, 10} : n.contains("down") ? new int[] {10, 6} : new int[] {6};
                ps.put(n, Scope.outside(() -> Tensor.zeros(sh).requiresGrad(true).name(n)));
            }
            var mini = new ParameterGroups.Spec("apollo_mini", List.of("model.layers.*.mlp.*_proj.weight"), Map.of("weight_decay", 0.0, "beta1", 0.9, "beta2", 0.95), 1);
            try (ParameterGroups opt = new ParameterGroups(ps, List.of(mini), new ParameterGroups.Spec("adamw", List.of(), Map.of(), 1))) {
                Map<String, float[]> g = new LinkedHashMap<>();
                SplittableRandom r = new SplittableRandom(7);
                ps.forEach((n, p) -> {
                    float[] v = new float[(int) p.numel()];
                    for (int k = 0; k < v.length; k++) v[k] = (float) r.nextGaussian();
                    g.put(n, v);
                });

                step(opt, ps, g, 1);
                assertEquals(Map.of(), opt.stepStats(), "the first step has no earlier norm to limit against");

                step(opt, ps, g, 1);
                double growth = (0.19 / Math.sqrt(0.0975)) / (0.1 / Math.sqrt(0.05));
                assertEquals(List.of("apollo_mini/limited", "apollo_mini/limiter"), List.copyOf(opt.stepStats().keySet()));
                assertEquals(1.0, opt.stepStats().get("apollo_mini/limited"), "both matrices grew by " + growth + " > 1.01");
                assertEquals(growth / 1.01, opt.stepStats().get("apollo_mini/limiter"), 1e-4);

                step(opt, ps, g, -1); // the gradient reverses: m/√v shrinks, nothing to cut
                assertEquals(0.0, opt.stepStats().get("apollo_mini/limited"));
                assertEquals(1.0, opt.stepStats().get("apollo_mini/limiter"), 1e-12);
            }
        }
    }

    private static void step(Optimizer opt, Map<String, Tensor> ps, Map<String, float[]> g, float sign) {
        ps.forEach((n, p) -> {
            float[] v = g.get(n).clone();
            for (int k = 0; k < v.length; k++) v[k] *= sign;
            Ref.setGrad(p, v);
        });
        opt.step(1e-3);
    }
}
