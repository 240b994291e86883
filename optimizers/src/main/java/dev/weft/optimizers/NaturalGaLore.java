package dev.weft.optimizers;

import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Natural GaLore (Das, 2024): GaLore whose low-rank gradient is first preconditioned by the
 * inverse empirical Fisher estimated from the last s low-rank gradients,
 * F = λI + (1/c)·Σ gᵢgᵢᵀ (c ≤ s gradients held, the current one included). F⁻¹ is never formed:
 * by the Woodbury identity F⁻¹g = (g − H(λcI + HᵀH)⁻¹Hᵀg)/λ with H the d×c history, so the work is
 * a c×c solve (Cholesky, in double). Adam then runs on the natural gradient in the subspace as in
 * {@link GaLore}.
 *
 * <p>When the projector changes the history is cleared (its gradients live in the old basis and
 * would precondition the wrong coordinates); the Adam moments are kept, as in GaLore. State per
 * matrix: GaLore's plus s·r·n floats of history.
 */
public final class NaturalGaLore extends GaLore {
    public record Settings(GaLore.Settings galore, int history, double damping) {
        public Settings {
            if (history < 1) throw new IllegalArgumentException("natural_galore: history must be >= 1, got " + history);
            if (!(damping > 0)) throw new IllegalArgumentException("natural_galore: damping must be > 0, got " + damping);
        }
    }

    private final Settings ns;
    private final Map<Slot, Tensor> history = new LinkedHashMap<>();
    private final Map<Slot, int[]> fill = new LinkedHashMap<>(); // {count, next}

    public NaturalGaLore(Map<String, Tensor> parameters, Settings settings) {
        super("natural_galore", parameters, settings.galore());
        this.ns = settings;
        slots.forEach((n, sl) -> {
            history.put(sl, newState(n, "grad_history", ns.history(), Math.toIntExact(sl.space.lowNumel())));
            fill.put(sl, new int[2]);
        });
    }

    @Override
    void refresh(Slot slot, MemorySegment g) {
        super.refresh(slot, g);
        int[] f = fill.get(slot);
        f[0] = 0;
        f[1] = 0;
    }

    @Override
    Tensor lowRankDirection(Slot slot, Tensor low) {
        int d = Math.toIntExact(low.numel()), s = ns.history();
        MemorySegment h = history.get(slot).data(), g = low.data();
        int[] f = fill.get(slot);
        MemorySegment.copy(g, 0, h, (long) f[1] * d * 4, (long) d * 4);
        f[1] = (f[1] + 1) % s;
        f[0] = Math.min(f[0] + 1, s);
        int c = f[0];
        double lambda = ns.damping();
        // A = λcI + HᵀH and b = Hᵀg, in double.
        double[][] a = new double[c][c];
        double[] b = new double[c];
        for (int i = 0; i < c; i++) {
            for (int j = 0; j <= i; j++) {
                double dot = 0;
                for (int k = 0; k < d; k++) dot += (double) h.getAtIndex(Mat.F, (long) i * d + k) * h.getAtIndex(Mat.F, (long) j * d + k);
                a[i][j] = a[j][i] = dot;
            }
            a[i][i] += lambda * c;
            double dot = 0;
            for (int k = 0; k < d; k++) dot += (double) h.getAtIndex(Mat.F, (long) i * d + k) * g.getAtIndex(Mat.F, k);
            b[i] = dot;
        }
        double[] y = Cholesky.solve(a, b);
        Tensor nat = Tensor.empty(low.shape());
        MemorySegment o = nat.data();
        for (int k = 0; k < d; k++) {
            double v = g.getAtIndex(Mat.F, k);
            for (int i = 0; i < c; i++) v -= h.getAtIndex(Mat.F, (long) i * d + k) * y[i];
            o.setAtIndex(Mat.F, k, (float) (v / lambda));
        }
        return super.lowRankDirection(slot, nat);
    }

    @Override
    public Map<String, String> stateScalars() {
        Map<String, String> out = super.stateScalars();
        slots.forEach((n, sl) -> {
            out.put(n + "/history_count", Integer.toString(fill.get(sl)[0]));
            out.put(n + "/history_next", Integer.toString(fill.get(sl)[1]));
        });
        return out;
    }

    @Override
    protected void loadScalars(Map<String, String> scalars) {
        super.loadScalars(scalars);
        slots.forEach((n, sl) -> {
            fill.get(sl)[0] = Integer.parseInt(scalar(scalars, n + "/history_count"));
            fill.get(sl)[1] = Integer.parseInt(scalar(scalars, n + "/history_next"));
        });
    }
}
