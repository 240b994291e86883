package dev.weft.optimizers;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class AdamWTest {
    /** Straightforward double-precision AdamW (PyTorch's formulation) for comparison. */
    private static void referenceStep(double[] p, double[] g, double[] m, double[] v, int t, double lr, double b1, double b2,
                                      double eps, double wd) {
        for (int i = 0; i < p.length; i++) {
            p[i] *= 1 - lr * wd;
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            double mh = m[i] / (1 - Math.pow(b1, t)), vh = v[i] / (1 - Math.pow(b2, t));
            p[i] -= lr * mh / (Math.sqrt(vh) + eps);
        }
    }

    @Test
    void matchesDoublePrecisionReferenceOverSeveralSteps() {
        int rows = 7, cols = 13; // 91 elements: not a multiple of any vector width
        SplittableRandom r = new SplittableRandom(3);
        double[] p = new double[rows * cols], m = new double[p.length], v = new double[p.length];
        float[] init = new float[p.length];
        for (int i = 0; i < p.length; i++) p[i] = init[i] = (float) r.nextGaussian();
        try (Scope s = Scope.open()) {
            Tensor w = Scope.outside(() -> Tensor.of(init, rows, cols).requiresGrad(true).name("w"));
            Map<String, Tensor> params = new LinkedHashMap<>();
            params.put("w", w);
            AdamW opt = new AdamW(params, new AdamW.Settings(0.9, 0.95, 1e-8, 0.1));
            for (int t = 1; t <= 5; t++) {
                float[] g = new float[p.length];
                double[] gd = new double[p.length];
                for (int i = 0; i < g.length; i++) gd[i] = g[i] = (float) r.nextGaussian();
                setGrad(w, g);
                opt.step(1e-2);
                referenceStep(p, gd, m, v, t, 1e-2, 0.9, 0.95, 1e-8, 0.1);
                float[] got = w.toArray();
                for (int i = 0; i < p.length; i++) assertEquals(p[i], got[i], 1e-5, "step " + t + " element " + i);
            }
            assertEquals(2L * rows * cols * 4, opt.stateBytes());
            opt.close();
            w.clearGrad();
            w.close();
        }
    }

    @Test
    void saveAndLoadStateContinuesBitExactly() {
        float[] init = {0.5f, -1f, 2f, 0.25f, 3f, -0.75f};
        float[][] grads = {{1, 2, 3, 4, 5, 6}, {-1, 0.5f, 2, -3, 1, 1}, {0.1f, 0.2f, -0.3f, 0.4f, 0.5f, -0.6f}, {2, 2, 2, -2, -2, -2}};
        Tensor a = Tensor.of(init, 2, 3).requiresGrad(true).name("a");
        AdamW full = new AdamW(Map.of("a", a), AdamW.Settings.defaults());
        for (float[] g : grads) {
            setGrad(a, g);
            full.step(1e-2);
        }
        Tensor b = Tensor.of(init, 2, 3).requiresGrad(true).name("a");
        AdamW first = new AdamW(Map.of("a", b), AdamW.Settings.defaults());
        for (int i = 0; i < 2; i++) {
            setGrad(b, grads[i]);
            first.step(1e-2);
        }
        Map<String, Tensor> saved = new LinkedHashMap<>();
        first.stateTensors().forEach((k, t) -> saved.put(k, Tensor.of(t.toArray(), t.shape())));
        AdamW second = new AdamW(Map.of("a", b), AdamW.Settings.defaults());
        second.loadState(saved, first.steps());
        for (int i = 2; i < 4; i++) {
            setGrad(b, grads[i]);
            second.step(1e-2);
        }
        assertArrayEquals(a.toArray(), b.toArray());
    }

    @Test
    void invalidHyperparametersAreRejectedWithTheirName() {
        var e = assertThrows(IllegalArgumentException.class, () -> new AdamW.Settings(1.5, 0.9, 1e-8, 0));
        assertTrue(e.getMessage().contains("beta1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new AdamW.Settings(0.9, 0.9, 0, 0));
    }

    @Test
    void globalNormClippingScalesAllGradientsTogether() {
        Tensor a = Tensor.of(new float[] {3, 0}, 2).requiresGrad(true);
        Tensor b = Tensor.of(new float[] {0, 4}, 2).requiresGrad(true);
        setGrad(a, new float[] {3, 0});
        setGrad(b, new float[] {0, 4});
        double norm = GradientClipping.clip(java.util.List.of(a, b), 1.0);
        assertEquals(5.0, norm, 1e-9);
        assertArrayEquals(new float[] {0.6f, 0f}, a.grad().toArray(), 1e-5f);
        assertArrayEquals(new float[] {0f, 0.8f}, b.grad().toArray(), 1e-5f);
        assertEquals(1.0, GradientClipping.globalNorm(java.util.List.of(a, b)), 1e-5);
    }

    /** Sets p.grad by running backward from a seed equal to g (the gradient of sum(p * g)). */
    private static void setGrad(Tensor p, float[] g) {
        p.clearGrad();
        dev.weft.core.Autograd.backward(p, Tensor.of(g, p.shape()));
    }
}
