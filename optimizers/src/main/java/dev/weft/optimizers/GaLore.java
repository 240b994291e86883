package dev.weft.optimizers;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * GaLore (Zhao et al., 2024): Adam in a rank-r subspace of each weight matrix's gradient. The
 * projector comes from an SVD of the current gradient every {@code updateProjGap} steps
 * (including the first), the smaller side is projected, and the Adam direction is projected back
 * and scaled by α ({@code scale}). Order of operations and bias correction follow the reference
 * implementation (galore_torch.AdamW): step size lr·√(1−β₂ᵗ)/(1−β₁ᵗ), denominator √v + ε, and
 * decoupled weight decay applied after the update.
 *
 * <p>When the projector changes the moments are kept as they are, expressed in the old basis,
 * exactly as the reference does (the paper argues the subspaces of consecutive refreshes overlap
 * strongly). State per m×n matrix (m ≤ n): the projector m·r plus two moments 2·n·r floats.
 */
public class GaLore extends ParameterOptimizer {
    public record Settings(int rank, int updateProjGap, double scale, double beta1, double beta2, double eps, double weightDecay) {
        public Settings {
            if (rank < 1) throw new IllegalArgumentException("galore: rank must be >= 1, got " + rank);
            if (updateProjGap < 1) throw new IllegalArgumentException("galore: update_proj_gap must be >= 1, got " + updateProjGap);
            if (!(scale > 0)) throw new IllegalArgumentException("galore: scale must be > 0, got " + scale);
            new AdamW.Settings(beta1, beta2, eps, weightDecay);
        }
    }

    /** Per-matrix state. */
    static final class Slot {
        final Subspace space;
        final Tensor projector, expAvg, expAvgSq;
        long t; // this matrix's step count; the projector refreshes when t % gap == 0

        Slot(Subspace space, Tensor projector, Tensor expAvg, Tensor expAvgSq) {
            this.space = space;
            this.projector = projector;
            this.expAvg = expAvg;
            this.expAvgSq = expAvgSq;
        }
    }

    private final Settings s;
    private final String name;
    final Map<String, Slot> slots = new LinkedHashMap<>();

    public GaLore(Map<String, Tensor> parameters, Settings settings) {
        this("galore", parameters, settings);
    }

    GaLore(String name, Map<String, Tensor> parameters, Settings settings) {
        super(parameters);
        this.s = settings;
        this.name = name;
        params.forEach((n, p) -> {
            int[] mn = matrixShape(name, n, p);
            Subspace sp = new Subspace(mn[0], mn[1], s.rank());
            slots.put(n, new Slot(sp, newState(n, "projector", sp.projectorShape()), newState(n, "exp_avg", sp.lowShape()),
                    newState(n, "exp_avg_sq", sp.lowShape())));
        });
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public Sharding sharding() {
        return Sharding.WHOLE_MATRIX;
    }

    Settings settings() {
        return s;
    }

    @Override
    protected final void stepParameter(String name, Tensor p, Tensor grad, double lr) {
        Slot slot = slots.get(name);
        try (Scope sc = Scope.open()) {
            MemorySegment g = grad.data();
            Subspace sp = slot.space;
            if (slot.t % s.updateProjGap() == 0) refresh(slot, g);
            Tensor low = Tensor.empty(sp.lowShape());
            sp.project(slot.projector.data(), g, low.data());
            slot.t++;
            Tensor dir = lowRankDirection(slot, low);
            double stepSize = lr * Math.sqrt(1 - StrictMath.pow(s.beta2(), slot.t)) / (1 - StrictMath.pow(s.beta1(), slot.t));
            Tensor full = Tensor.empty(sp.m, sp.n);
            sp.back(slot.projector.data(), dir.data(), full.data());
            applyUpdate(p.data(), full.data(), (long) sp.m * sp.n, (float) (stepSize * s.scale()), lr);
        }
    }

    /** Hook for Natural GaLore: called when the projector has just been recomputed. */
    void refresh(Slot slot, MemorySegment g) {
        slot.space.svdProjector(g, slot.projector.data());
    }

    /** Adam in the subspace: updates the moments from the low-rank gradient and returns m / (√v + ε). */
    Tensor lowRankDirection(Slot slot, Tensor low) {
        return adamDirection(low, slot.expAvg, slot.expAvgSq, s.beta1(), s.beta2(), s.eps());
    }

    static Tensor adamDirection(Tensor low, Tensor expAvg, Tensor expAvgSq, double beta1, double beta2, double eps) {
        float b1 = (float) beta1, b2 = (float) beta2, e = (float) eps;
        MemorySegment g = low.data(), m = expAvg.data(), v = expAvgSq.data();
        Tensor out = Tensor.empty(low.shape());
        MemorySegment o = out.data();
        for (long i = 0, n = low.numel(); i < n; i++) {
            float gi = g.getAtIndex(Mat.F, i);
            float mi = b1 * m.getAtIndex(Mat.F, i) + (1 - b1) * gi;
            float vi = b2 * v.getAtIndex(Mat.F, i) + (1 - b2) * gi * gi;
            m.setAtIndex(Mat.F, i, mi);
            v.setAtIndex(Mat.F, i, vi);
            o.setAtIndex(Mat.F, i, mi / ((float) Math.sqrt(vi) + e));
        }
        return out;
    }

    /** p ← (p − stepSize·u)·(1 − lr·wd), the reference's order. */
    void applyUpdate(MemorySegment p, MemorySegment u, long n, float stepSize, double lr) {
        for (long i = 0; i < n; i++) p.setAtIndex(Mat.F, i, p.getAtIndex(Mat.F, i) - stepSize * u.getAtIndex(Mat.F, i));
        Mat.decay(p, n, lr, s.weightDecay());
    }

    @Override
    public Map<String, String> stateScalars() {
        Map<String, String> out = new LinkedHashMap<>();
        slots.forEach((n, sl) -> out.put(n + "/step", Long.toString(sl.t)));
        return out;
    }

    @Override
    protected void loadScalars(Map<String, String> scalars) {
        slots.forEach((n, sl) -> sl.t = Long.parseLong(scalar(scalars, n + "/step")));
    }
}
