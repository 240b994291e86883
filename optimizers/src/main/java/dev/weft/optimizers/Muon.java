package dev.weft.optimizers;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Muon (Jordan et al., 2024): SGD momentum whose update is orthogonalised by a quintic
 * Newton–Schulz iteration, for the hidden 2-D weights (embeddings, the head and norms go to an
 * AdamW group). Follows the reference: buf ← lerp(buf, g, 1 − μ); the Nesterov update is
 * lerp(g, buf, μ); X ← U/(‖U‖_F + 1e-7), then {@code nsSteps} iterations X ← aX + (bA + cA²)X with
 * A = XXᵀ and (a, b, c) = (3.4445, −4.7750, 2.0315), on the wide orientation (transposed when
 * rows &gt; cols); the step is lr·√max(1, rows/cols) after decoupled weight decay p·(1 − lr·wd).
 * The reference iterates in bfloat16; we iterate in float32 (more accurate, same fixed point).
 * State: one momentum buffer, m·n floats.
 */
public final class Muon extends ParameterOptimizer {
    static final float A = 3.4445f, B = -4.7750f, C = 2.0315f;

    public record Settings(double momentum, boolean nesterov, int nsSteps, double weightDecay) {
        public Settings {
            if (!(momentum >= 0 && momentum < 1)) throw new IllegalArgumentException("muon: momentum must be in [0, 1), got " + momentum);
            if (nsSteps < 1) throw new IllegalArgumentException("muon: ns_steps must be >= 1, got " + nsSteps);
            if (!(weightDecay >= 0)) throw new IllegalArgumentException("muon: weight_decay must be >= 0, got " + weightDecay);
        }
    }

    private final Settings s;
    private final Map<String, Tensor> buffers = new LinkedHashMap<>();

    public Muon(Map<String, Tensor> parameters, Settings settings) {
        super(parameters);
        this.s = settings;
        params.forEach((n, p) -> {
            int[] mn = matrixShape("muon", n, p);
            buffers.put(n, newState(n, "momentum_buffer", mn));
        });
    }

    @Override
    public String name() {
        return "muon";
    }

    @Override
    public Sharding sharding() {
        return Sharding.WHOLE_MATRIX;
    }

    @Override
    protected void stepParameter(String name, Tensor p, Tensor grad, double lr) {
        float mu = (float) s.momentum();
        int m = p.size(0), n = p.size(1);
        long mn = (long) m * n;
        try (Scope sc = Scope.open()) {
            MemorySegment g = grad.data(), buf = buffers.get(name).data();
            Tensor upd = Tensor.empty(m, n);
            MemorySegment u = upd.data();
            for (long i = 0; i < mn; i++) {
                float gi = g.getAtIndex(Mat.F, i);
                float bi = buf.getAtIndex(Mat.F, i);
                bi = bi + (1 - mu) * (gi - bi);
                buf.setAtIndex(Mat.F, i, bi);
                u.setAtIndex(Mat.F, i, s.nesterov() ? gi + mu * (bi - gi) : bi);
            }
            Tensor o = newtonSchulz(upd, m, n, s.nsSteps());
            float step = (float) (lr * Math.sqrt(Math.max(1.0, (double) m / n)));
            MemorySegment w = p.data(), od = o.data();
            Mat.decay(w, mn, lr, s.weightDecay());
            for (long i = 0; i < mn; i++) w.setAtIndex(Mat.F, i, w.getAtIndex(Mat.F, i) - step * od.getAtIndex(Mat.F, i));
        }
    }

    /** The approximate orthogonal factor of the m×n matrix {@code g} (a fresh tensor in the current scope). */
    static Tensor newtonSchulz(Tensor g, int m, int n, int steps) {
        boolean tall = m > n;
        int r = tall ? n : m, c = tall ? m : n; // work on r×c with r ≤ c
        Tensor x = Tensor.empty(r, c);
        if (tall) Mat.transpose(g.data(), m, n, x.data());
        else x.copyFrom(g);
        MemorySegment xd = x.data();
        float inv = (float) (1 / (Mat.norm(xd, (long) r * c) + 1e-7));
        for (long i = 0, k = (long) r * c; i < k; i++) xd.setAtIndex(Mat.F, i, xd.getAtIndex(Mat.F, i) * inv);
        Tensor a = Tensor.empty(r, r), b = Tensor.empty(r, r), next = Tensor.empty(r, c);
        for (int it = 0; it < steps; it++) {
            Mat.mul(false, true, r, r, c, x.data(), x.data(), a.data());           // A = X Xᵀ
            b.copyFrom(a);
            Mat.mulAdd(false, false, r, r, r, C, a.data(), a.data(), B, b.data());  // B = bA + cA²
            next.copyFrom(x);
            Mat.mulAdd(false, false, r, c, r, 1f, b.data(), x.data(), A, next.data()); // X = aX + BX
            Tensor t = x;
            x = next;
            next = t;
        }
        if (!tall) return x;
        Tensor out = Tensor.empty(m, n);
        Mat.transpose(x.data(), r, c, out.data());
        return out;
    }
}
