package dev.weft.optimizers;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * APOLLO (Zhu et al., 2024): Adam moments of a seeded Gaussian random projection of the gradient
 * are used only to estimate how much Adam would rescale each channel; the raw gradient is scaled
 * by that ratio, ‖Ñ‖/‖R̃‖ per channel (or for the whole tensor), where R̃ is the projected gradient
 * and Ñ the projected Adam direction. Fira's norm-growth limiter then caps the growth of the
 * update's norm at 1.01× per step, and the result is scaled by √scale (the reference multiplies by
 * the square root of its {@code scale} argument, after the limiter). Step size, ε and the
 * decoupled weight decay after the update follow the reference (apollo_torch.AdamW).
 *
 * <p>Channels are the dimension the projection keeps: for R̃ of shape r×n (m &lt; n) the n columns,
 * for m×r the m rows. The projector is never stored: it is regenerated each step from the
 * parameter's seed and its refresh index (⌊t / update_proj_gap⌋), so the state is the seed, the
 * step count, the limiter's previous norm and the two r×n moments. The moments are kept across a
 * projector change, as in the reference.
 *
 * <p>APOLLO-Mini is this class with rank 1, tensor-wise scaling and scale 128.
 */
public final class Apollo extends ParameterOptimizer {
    public enum ScaleType { CHANNEL, TENSOR }

    public record Settings(int rank, int updateProjGap, double scale, ScaleType scaleType, long seed, boolean limiter,
                           double beta1, double beta2, double eps, double weightDecay) {
        public Settings {
            if (rank < 1) throw new IllegalArgumentException("apollo: rank must be >= 1, got " + rank);
            if (updateProjGap < 1) throw new IllegalArgumentException("apollo: update_proj_gap must be >= 1, got " + updateProjGap);
            if (!(scale > 0)) throw new IllegalArgumentException("apollo: scale must be > 0, got " + scale);
            if (scaleType == null) throw new IllegalArgumentException("apollo: scale_type must be channel or tensor");
            new AdamW.Settings(beta1, beta2, eps, weightDecay);
        }

        /** APOLLO-Mini's defaults: rank 1, tensor-wise scaling, scale 128. */
        public static Settings mini(int updateProjGap, long seed, double beta1, double beta2, double eps, double weightDecay) {
            return new Settings(1, updateProjGap, 128, ScaleType.TENSOR, seed, true, beta1, beta2, eps, weightDecay);
        }
    }

    private static final class Slot {
        final Subspace space;
        final Tensor expAvg, expAvgSq;
        long seed, t;
        float lastNorm; // the limiter's memory: the norm of the previous (limited) scaled gradient

        Slot(Subspace space, Tensor expAvg, Tensor expAvgSq, long seed) {
            this.space = space;
            this.expAvg = expAvg;
            this.expAvgSq = expAvgSq;
            this.seed = seed;
        }
    }

    private final Settings s;
    private final String name;
    private final Map<String, Slot> slots = new LinkedHashMap<>();
    // The last step's limiter figures: matrices it could act on, how many it cut, the sum of its factors.
    private int limiterSeen, limiterCut;
    private double limiterSum;

    public Apollo(String name, Map<String, Tensor> parameters, Settings settings) {
        this(name, parameters, null, settings);
    }

    /**
     * Over part of a group (ZeRO: the matrices this rank owns); {@code group} lists every member in
     * order (null: {@code parameters} is the whole group), so each matrix gets the seed it would get
     * on one process.
     */
    public Apollo(String name, Map<String, Tensor> parameters, java.util.Collection<String> group, Settings settings) {
        super(parameters);
        this.s = settings;
        this.name = name;
        java.util.List<String> members = java.util.List.copyOf(group == null ? params.keySet() : group);
        for (var e : params.entrySet()) {
            int[] mn = matrixShape(name, e.getKey(), e.getValue());
            Subspace sp = new Subspace(mn[0], mn[1], s.rank());
            // Like the reference, each parameter gets its own seed from its position in the group (offset by the configured seed).
            slots.put(e.getKey(), new Slot(sp, newState(e.getKey(), "exp_avg", sp.lowShape()), newState(e.getKey(), "exp_avg_sq", sp.lowShape()),
                    s.seed() + 1 + members.indexOf(e.getKey())));
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public Sharding sharding() {
        return Sharding.WHOLE_MATRIX;
    }

    /** The seed of the projector used at a parameter's step t (0-based). */
    static long projectorSeed(long seed, long t, int gap) {
        long refresh = t / gap;
        long z = seed * 0x9E3779B97F4A7C15L + refresh * 0xBF58476D1CE4E5B9L;
        return z ^ (z >>> 31);
    }

    @Override
    protected void beginStep(double lr) {
        limiterSeen = limiterCut = 0;
        limiterSum = 0;
    }

    @Override
    protected void stepParameter(String name, Tensor p, Tensor grad, double lr) {
        Slot sl = slots.get(name);
        Subspace sp = sl.space;
        try (Scope sc = Scope.open()) {
            MemorySegment g = grad.data();
            Tensor proj = Tensor.empty(sp.projectorShape());
            sp.randomProjector(projectorSeed(sl.seed, sl.t, s.updateProjGap()), proj.data());
            Tensor low = Tensor.empty(sp.lowShape());
            sp.project(proj.data(), g, low.data());
            sl.t++;
            Tensor dir = GaLore.adamDirection(low, sl.expAvg, sl.expAvgSq, s.beta1(), s.beta2(), s.eps());
            double stepSize = lr * Math.sqrt(1 - StrictMath.pow(s.beta2(), sl.t)) / (1 - StrictMath.pow(s.beta1(), sl.t));
            int[] ls = sp.lowShape();
            long mn = (long) sp.m * sp.n;
            Tensor scaled = Tensor.empty(sp.m, sp.n);
            MemorySegment u = scaled.data();
            if (s.scaleType() == ScaleType.TENSOR) {
                float f = (float) (Mat.norm(dir.data(), dir.numel()) / (Mat.norm(low.data(), low.numel()) + 1e-8));
                for (long i = 0; i < mn; i++) u.setAtIndex(Mat.F, i, g.getAtIndex(Mat.F, i) * f);
            } else if (ls[0] < ls[1]) {
                float[] f = columnRatios(dir.data(), low.data(), ls[0], ls[1]);
                for (int i = 0; i < sp.m; i++) for (int j = 0; j < sp.n; j++) {
                    long k = (long) i * sp.n + j;
                    u.setAtIndex(Mat.F, k, g.getAtIndex(Mat.F, k) * f[j]);
                }
            } else {
                float[] f = rowRatios(dir.data(), low.data(), ls[0], ls[1]);
                for (int i = 0; i < sp.m; i++) for (int j = 0; j < sp.n; j++) {
                    long k = (long) i * sp.n + j;
                    u.setAtIndex(Mat.F, k, g.getAtIndex(Mat.F, k) * f[i]);
                }
            }
            float norm = (float) Mat.norm(u, mn);
            if (s.limiter()) {
                if (sl.t > 1) {
                    float limiter = Math.max(norm / (sl.lastNorm + 1e-8f), 1.01f) / 1.01f;
                    for (long i = 0; i < mn; i++) u.setAtIndex(Mat.F, i, u.getAtIndex(Mat.F, i) / limiter);
                    sl.lastNorm = norm / limiter;
                    limiterSeen++;
                    limiterSum += limiter;
                    if (limiter > 1) limiterCut++;
                } else {
                    sl.lastNorm = norm;
                }
            }
            float step = (float) (stepSize * Math.sqrt(s.scale()));
            MemorySegment w = p.data();
            for (long i = 0; i < mn; i++) w.setAtIndex(Mat.F, i, w.getAtIndex(Mat.F, i) - step * u.getAtIndex(Mat.F, i));
            Mat.decay(w, mn, lr, s.weightDecay());
        }
    }

    private static float[] columnRatios(MemorySegment num, MemorySegment den, int rows, int cols) {
        double[] a = new double[cols], b = new double[cols];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) {
            double x = num.getAtIndex(Mat.F, (long) i * cols + j), y = den.getAtIndex(Mat.F, (long) i * cols + j);
            a[j] += x * x;
            b[j] += y * y;
        }
        float[] f = new float[cols];
        for (int j = 0; j < cols; j++) f[j] = (float) (Math.sqrt(a[j]) / (Math.sqrt(b[j]) + 1e-8));
        return f;
    }

    private static float[] rowRatios(MemorySegment num, MemorySegment den, int rows, int cols) {
        float[] f = new float[rows];
        for (int i = 0; i < rows; i++) {
            double a = 0, b = 0;
            for (int j = 0; j < cols; j++) {
                double x = num.getAtIndex(Mat.F, (long) i * cols + j), y = den.getAtIndex(Mat.F, (long) i * cols + j);
                a += x * x;
                b += y * y;
            }
            f[i] = (float) (Math.sqrt(a) / (Math.sqrt(b) + 1e-8));
        }
        return f;
    }

    /**
     * "NAME/limited": the fraction of matrices whose update the limiter cut in the last step;
     * "NAME/limiter": the mean factor it divided them by (1 = not cut). A limiter that cuts most steps
     * is setting the learning rate itself: the update then follows the smallest recent norm, growing
     * 1% per step.
     */
    @Override
    public Map<String, Double> stepStats() {
        if (limiterSeen == 0) return Map.of();
        Map<String, Double> out = new LinkedHashMap<>();
        out.put(name + "/limited", (double) limiterCut / limiterSeen);
        out.put(name + "/limiter", limiterSum / limiterSeen);
        return out;
    }

    @Override
    public Map<String, String> stateScalars() {
        Map<String, String> out = new LinkedHashMap<>();
        slots.forEach((n, sl) -> {
            out.put(n + "/step", Long.toString(sl.t));
            out.put(n + "/seed", Long.toString(sl.seed));
            out.put(n + "/limiter_norm", bits(sl.lastNorm));
        });
        return out;
    }

    @Override
    protected void loadScalars(Map<String, String> scalars) {
        slots.forEach((n, sl) -> {
            sl.t = Long.parseLong(scalar(scalars, n + "/step"));
            sl.seed = Long.parseLong(scalar(scalars, n + "/seed"));
            sl.lastNorm = unbits(scalar(scalars, n + "/limiter_norm"));
        });
    }
}
