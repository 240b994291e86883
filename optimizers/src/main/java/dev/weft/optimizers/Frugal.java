package dev.weft.optimizers;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * FRUGAL (Zmushko et al., 2024): full-rank updates by gradient splitting. The gradient G of each
 * matrix is split into its projection onto a rank-r subspace (chosen, as in GaLore, from an SVD
 * of the gradient every {@code updateProjGap} steps) and the residual G − P·R. AdamW runs on the
 * projected part R (its state lives only there); the residual is updated state-free by signSGD,
 * with step lr·{@code freeLrScale}. The update is p ← p·(1 − lr·wd) − lr·(P·Adam(R) + freeLrScale·sign(G − P·R)).
 *
 * <p>When the projector changes the Adam moments are reset to zero and bias correction restarts,
 * as the reference does by default for SVD projections: the old moments describe coordinates that
 * are no longer in the state-full subspace. State per m×n matrix (m ≤ n): m·r + 2·n·r floats.
 */
public final class Frugal extends ParameterOptimizer {
    public record Settings(int rank, int updateProjGap, double freeLrScale, double beta1, double beta2, double eps, double weightDecay) {
        public Settings {
            if (rank < 1) throw new IllegalArgumentException("frugal: rank must be >= 1, got " + rank);
            if (updateProjGap < 1) throw new IllegalArgumentException("frugal: update_proj_gap must be >= 1, got " + updateProjGap);
            if (!(freeLrScale >= 0)) throw new IllegalArgumentException("frugal: free_lr_scale must be >= 0, got " + freeLrScale);
            new AdamW.Settings(beta1, beta2, eps, weightDecay);
        }
    }

    private static final class Slot {
        final Subspace space;
        final Tensor projector, expAvg, expAvgSq;
        long t, adamT; // steps of this matrix; steps since the moments were last reset

        Slot(Subspace space, Tensor projector, Tensor expAvg, Tensor expAvgSq) {
            this.space = space;
            this.projector = projector;
            this.expAvg = expAvg;
            this.expAvgSq = expAvgSq;
        }
    }

    private final Settings s;
    private final Map<String, Slot> slots = new LinkedHashMap<>();

    public Frugal(Map<String, Tensor> parameters, Settings settings) {
        super(parameters);
        this.s = settings;
        params.forEach((n, p) -> {
            int[] mn = matrixShape("frugal", n, p);
            Subspace sp = new Subspace(mn[0], mn[1], s.rank());
            slots.put(n, new Slot(sp, newState(n, "projector", sp.projectorShape()), newState(n, "exp_avg", sp.lowShape()),
                    newState(n, "exp_avg_sq", sp.lowShape())));
        });
    }

    @Override
    public String name() {
        return "frugal";
    }

    @Override
    public Sharding sharding() {
        return Sharding.WHOLE_MATRIX;
    }

    @Override
    protected void stepParameter(String name, Tensor p, Tensor grad, double lr) {
        Slot sl = slots.get(name);
        Subspace sp = sl.space;
        try (Scope sc = Scope.open()) {
            MemorySegment g = grad.data();
            if (sl.t % s.updateProjGap() == 0) {
                sp.svdProjector(g, sl.projector.data());
                sl.expAvg.fill(0);
                sl.expAvgSq.fill(0);
                sl.adamT = 0;
            }
            Tensor low = Tensor.empty(sp.lowShape());
            sp.project(sl.projector.data(), g, low.data());
            sl.t++;
            sl.adamT++;
            float b1 = (float) s.beta1(), b2 = (float) s.beta2(), eps = (float) s.eps();
            float bc1 = (float) (1 - StrictMath.pow(s.beta1(), sl.adamT)), bc2Sqrt = (float) Math.sqrt(1 - StrictMath.pow(s.beta2(), sl.adamT));
            MemorySegment lg = low.data(), m = sl.expAvg.data(), v = sl.expAvgSq.data();
            Tensor dir = Tensor.empty(sp.lowShape());
            MemorySegment d = dir.data();
            for (long i = 0, n = low.numel(); i < n; i++) {
                float gi = lg.getAtIndex(Mat.F, i);
                float mi = b1 * m.getAtIndex(Mat.F, i) + (1 - b1) * gi;
                float vi = b2 * v.getAtIndex(Mat.F, i) + (1 - b2) * gi * gi;
                m.setAtIndex(Mat.F, i, mi);
                v.setAtIndex(Mat.F, i, vi);
                d.setAtIndex(Mat.F, i, (mi / bc1) / ((float) Math.sqrt(vi) / bc2Sqrt + eps));
            }
            long mn = (long) sp.m * sp.n;
            Tensor inSpace = Tensor.empty(sp.m, sp.n), adam = Tensor.empty(sp.m, sp.n);
            sp.back(sl.projector.data(), lg, inSpace.data());
            sp.back(sl.projector.data(), d, adam.data());
            MemorySegment w = p.data(), gs = inSpace.data(), a = adam.data();
            Mat.decay(w, mn, lr, s.weightDecay());
            float free = (float) s.freeLrScale(), step = (float) lr;
            for (long i = 0; i < mn; i++) {
                float residual = g.getAtIndex(Mat.F, i) - gs.getAtIndex(Mat.F, i);
                float u = a.getAtIndex(Mat.F, i) + free * Math.signum(residual);
                w.setAtIndex(Mat.F, i, w.getAtIndex(Mat.F, i) - step * u);
            }
        }
    }

    @Override
    public Map<String, String> stateScalars() {
        Map<String, String> out = new LinkedHashMap<>();
        slots.forEach((n, sl) -> {
            out.put(n + "/step", Long.toString(sl.t));
            out.put(n + "/adam_step", Long.toString(sl.adamT));
        });
        return out;
    }

    @Override
    protected void loadScalars(Map<String, String> scalars) {
        slots.forEach((n, sl) -> {
            sl.t = Long.parseLong(scalar(scalars, n + "/step"));
            sl.adamT = Long.parseLong(scalar(scalars, n + "/adam_step"));
        });
    }
}
