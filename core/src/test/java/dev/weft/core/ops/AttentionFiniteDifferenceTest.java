package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The analytic gradients of {@link Attention#causal} against central differences of the op itself,
 * independent of the reference formulas in {@link AttentionTest}. The scalar is
 * {@code L = Σ w ∘ out} with fixed random weights w, so dL/dout = w.
 */
class AttentionFiniteDifferenceTest {
    private static final float EPS = 1e-2f;

    @ParameterizedTest(name = "T={0} Hq={1} Hkv={2} D={3} tiles {4}x{5}")
    @CsvSource({
            "5, 2, 1, 4, 2, 3",
            "7, 4, 2, 3, 4, 2",
            "6, 2, 2, 5, 64, 64",
    })
    void gradientsMatchCentralDifferences(int t, int hq, int hkv, int d, int qTile, int kvTile) {
        Random rnd = new Random(t * 100L + hq * 10L + d);
        float[] q = random(rnd, t * hq * d), k = random(rnd, t * hkv * d), v = random(rnd, t * hkv * d), w = random(rnd, t * hq * d);
        float scale = (float) (1 / Math.sqrt(d));
        try (Scope s = Scope.open()) {
            Tensor qt = Tensor.of(q, 1, t, hq, d).requiresGrad(true);
            Tensor kt = Tensor.of(k, 1, t, hkv, d).requiresGrad(true);
            Tensor vt = Tensor.of(v, 1, t, hkv, d).requiresGrad(true);
            Tensor out = Attention.causal(qt, kt, vt, scale, qTile, kvTile);
            Autograd.backward(out, Tensor.of(w, out.shape()));
            float[][] analytic = {qt.grad().toArray(), kt.grad().toArray(), vt.grad().toArray()};
            qt.clearGrad();
            kt.clearGrad();
            vt.clearGrad();
            float[][] inputs = {q, k, v};
            String[] names = {"q", "k", "v"};
            int[] heads = {hq, hkv, hkv};
            for (int which = 0; which < 3; which++) {
                float[] x = inputs[which];
                for (int i = 0; i < x.length; i++) {
                    float keep = x[i];
                    x[i] = keep + EPS;
                    double plus = weightedLoss(q, k, v, w, t, hq, hkv, d, scale, qTile, kvTile);
                    x[i] = keep - EPS;
                    double minus = weightedLoss(q, k, v, w, t, hq, hkv, d, scale, qTile, kvTile);
                    x[i] = keep;
                    double numeric = (plus - minus) / (2 * EPS);
                    double got = analytic[which][i];
                    // float32 forward: about 1e-6 loss noise / 2e-2 step, plus O(EPS²) truncation.
                    assertTrue(Math.abs(numeric - got) <= 2e-3 + 1e-2 * Math.abs(numeric),
                            "d loss / d " + names[which] + "[" + i + "] (" + heads[which] + " heads): analytic " + got
                                    + ", central difference " + numeric);
                }
            }
        }
    }

    private static double weightedLoss(float[] q, float[] k, float[] v, float[] w, int t, int hq, int hkv, int d, float scale,
                                       int qTile, int kvTile) {
        try (Scope s = Scope.open(); var noGrad = Autograd.noGrad()) {
            float[] out = Attention.causal(Tensor.of(q, 1, t, hq, d), Tensor.of(k, 1, t, hkv, d), Tensor.of(v, 1, t, hkv, d),
                    scale, qTile, kvTile).toArray();
            double sum = 0;
            for (int i = 0; i < out.length; i++) sum += (double) w[i] * out[i];
            return sum;
        }
    }

    private static float[] random(Random rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) rnd.nextGaussian();
        return x;
    }
}
