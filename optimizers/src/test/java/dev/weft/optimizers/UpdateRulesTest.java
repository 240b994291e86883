package dev.weft.optimizers;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Every update rule against an independent double-precision computation written here, over
 * several steps on small matrices of both orientations (m &lt; n projects the left side, m ≥ n the
 * right), with projector refreshes (gap 3 over 7 steps) and APOLLO's limiter active.
 */
class UpdateRulesTest {
    static final int STEPS = 7, GAP = 3, RANK = 2;
    static final double LR = 1e-2, B1 = 0.9, B2 = 0.95, EPS = 1e-8, WD = 0.1;

    /** A reference optimizer on one matrix: returns the new weights. */
    interface RefStep {
        double[][] step(double[][] w, double[][] g, int t);
    }

    private static void compare(int m, int n, java.util.function.Function<Map<String, Tensor>, Optimizer> make, RefStep ref, double tol) {
        SplittableRandom r = new SplittableRandom(m * 31L + n);
        double[][] w = Ref.random(r, m, n);
        try (Scope s = Scope.open()) {
            Tensor p = Scope.outside(() -> Tensor.of(Ref.flat(w), m, n).requiresGrad(true).name("w"));
            try (Optimizer opt = make.apply(Map.of("w", p))) {
                double[][] want = w;
                for (int t = 0; t < STEPS; t++) {
                    double[][] g = Ref.random(r, m, n);
                    Ref.setGrad(p, Ref.flat(g));
                    opt.step(LR);
                    want = ref.step(want, g, t);
                    Ref.assertClose(want, p.toArray(), tol, opt.name() + " " + m + "x" + n + " step " + (t + 1));
                }
            }
            p.clearGrad();
            p.close();
        }
    }

    /** Adam moments in double on a low-rank matrix; returns m/(√v+ε) and updates the moments in place. */
    private static double[][] adam(double[][] mo, double[][] v, double[][] g) {
        double[][] out = new double[g.length][g[0].length];
        for (int i = 0; i < g.length; i++) for (int j = 0; j < g[0].length; j++) {
            mo[i][j] = B1 * mo[i][j] + (1 - B1) * g[i][j];
            v[i][j] = B2 * v[i][j] + (1 - B2) * g[i][j] * g[i][j];
            out[i][j] = mo[i][j] / (Math.sqrt(v[i][j]) + EPS);
        }
        return out;
    }

    private static double[][] project(double[][] p, double[][] g, boolean left) {
        return left ? Ref.mul(Ref.t(p), g) : Ref.mul(g, Ref.t(p));
    }

    private static double[][] back(double[][] p, double[][] low, boolean left) {
        return left ? Ref.mul(p, low) : Ref.mul(low, p);
    }

    private static double[][] lowZeros(int m, int n) {
        return m < n ? Ref.zeros(RANK, n) : Ref.zeros(m, RANK);
    }

    @ParameterizedTest
    @CsvSource({"4, 7", "7, 4"})
    void galore(int m, int n) {
        boolean left = m < n;
        double scale = 0.25;
        double[][][] st = {null, lowZeros(m, n), lowZeros(m, n)};
        compare(m, n, ps -> new GaLore(ps, new GaLore.Settings(RANK, GAP, scale, B1, B2, EPS, WD)), (w, g, t) -> {
            if (t % GAP == 0) st[0] = Ref.svdProjector(g, RANK);
            double[][] low = project(st[0], g, left);
            int k = t + 1;
            double[][] dir = adam(st[1], st[2], low);
            double ss = LR * Math.sqrt(1 - Math.pow(B2, k)) / (1 - Math.pow(B1, k));
            double[][] u = back(st[0], dir, left);
            double[][] out = new double[m][n];
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) out[i][j] = (w[i][j] - ss * scale * u[i][j]) * (1 - LR * WD);
            return out;
        }, 2e-5);
    }

    @ParameterizedTest
    @CsvSource({"4, 7", "7, 4"})
    void naturalGalore(int m, int n) {
        boolean left = m < n;
        double scale = 0.25, lambda = 0.5;
        int hist = 2;
        double[][][] st = {null, lowZeros(m, n), lowZeros(m, n)};
        List<double[]> history = new ArrayList<>();
        compare(m, n, ps -> new NaturalGaLore(ps, new NaturalGaLore.Settings(new GaLore.Settings(RANK, GAP, scale, B1, B2, EPS, WD), hist, lambda)),
                (w, g, t) -> {
                    if (t % GAP == 0) {
                        st[0] = Ref.svdProjector(g, RANK);
                        history.clear();
                    }
                    double[][] low = project(st[0], g, left);
                    int rows = low.length, cols = low[0].length, d = rows * cols;
                    double[] vec = new double[d];
                    for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) vec[i * cols + j] = low[i][j];
                    history.add(vec);
                    if (history.size() > hist) history.remove(0);
                    // F = λI + (1/c)Σ hhᵀ formed explicitly; solve F x = g by Gaussian elimination.
                    int c = history.size();
                    double[][] f = new double[d][d + 1];
                    for (int i = 0; i < d; i++) {
                        f[i][i] = lambda;
                        for (double[] h : history) for (int j = 0; j < d; j++) f[i][j] += h[i] * h[j] / c;
                        f[i][d] = vec[i];
                    }
                    double[] x = gauss(f, d);
                    double[][] nat = new double[rows][cols];
                    for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) nat[i][j] = x[i * cols + j];
                    int k = t + 1;
                    double[][] dir = adam(st[1], st[2], nat);
                    double ss = LR * Math.sqrt(1 - Math.pow(B2, k)) / (1 - Math.pow(B1, k));
                    double[][] u = back(st[0], dir, left);
                    double[][] out = new double[m][n];
                    for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) out[i][j] = (w[i][j] - ss * scale * u[i][j]) * (1 - LR * WD);
                    return out;
                }, 5e-5);
    }

    private static double[] gauss(double[][] a, int n) {
        for (int col = 0; col < n; col++) {
            int piv = col;
            for (int i = col + 1; i < n; i++) if (Math.abs(a[i][col]) > Math.abs(a[piv][col])) piv = i;
            double[] tmp = a[col];
            a[col] = a[piv];
            a[piv] = tmp;
            for (int i = 0; i < n; i++) {
                if (i == col) continue;
                double f = a[i][col] / a[col][col];
                for (int j = col; j <= n; j++) a[i][j] -= f * a[col][j];
            }
        }
        double[] x = new double[n];
        for (int i = 0; i < n; i++) x[i] = a[i][n] / a[i][i];
        return x;
    }

    @ParameterizedTest
    @CsvSource({"4, 7, channel", "7, 4, channel", "4, 7, tensor", "7, 4, tensor"})
    void apollo(int m, int n, String type) {
        boolean left = m < n, channel = type.equals("channel");
        double scale = channel ? 1 : 128;
        double[][][] st = {lowZeros(m, n), lowZeros(m, n)};
        double[] last = {0};
        Subspace sp = new Subspace(m, n, RANK);
        compare(m, n, ps -> new Apollo("apollo", ps, new Apollo.Settings(RANK, GAP, scale, channel ? Apollo.ScaleType.CHANNEL : Apollo.ScaleType.TENSOR,
                5, true, B1, B2, EPS, WD)), (w, g, t) -> {
            // The projector is the optimizer's seeded Gaussian matrix (seed = configured 5 + parameter index 1).
            double[][] p;
            try (Scope s = Scope.open()) {
                Tensor pt = Tensor.empty(sp.projectorShape());
                sp.randomProjector(Apollo.projectorSeed(6, t, GAP), pt.data());
                p = Ref.unflat(pt.toArray(), pt.size(0), pt.size(1));
            }
            double[][] low = project(p, g, left);
            int k = t + 1;
            double[][] dir = adam(st[0], st[1], low);
            double ss = LR * Math.sqrt(1 - Math.pow(B2, k)) / (1 - Math.pow(B1, k));
            double[][] scaled = new double[m][n];
            if (!channel) {
                double f = Ref.norm(dir) / (Ref.norm(low) + 1e-8);
                for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) scaled[i][j] = g[i][j] * f;
            } else if (left) { // low is r×n: one factor per column
                for (int j = 0; j < n; j++) {
                    double a = 0, b = 0;
                    for (int i = 0; i < RANK; i++) {
                        a += dir[i][j] * dir[i][j];
                        b += low[i][j] * low[i][j];
                    }
                    for (int i = 0; i < m; i++) scaled[i][j] = g[i][j] * Math.sqrt(a) / (Math.sqrt(b) + 1e-8);
                }
            } else { // low is m×r: one factor per row
                for (int i = 0; i < m; i++) {
                    double a = 0, b = 0;
                    for (int j = 0; j < RANK; j++) {
                        a += dir[i][j] * dir[i][j];
                        b += low[i][j] * low[i][j];
                    }
                    for (int j = 0; j < n; j++) scaled[i][j] = g[i][j] * Math.sqrt(a) / (Math.sqrt(b) + 1e-8);
                }
            }
            double nrm = Ref.norm(scaled);
            if (t > 0) {
                double limiter = Math.max(nrm / (last[0] + 1e-8), 1.01) / 1.01;
                for (double[] row : scaled) for (int j = 0; j < n; j++) row[j] /= limiter;
                last[0] = nrm / limiter;
            } else {
                last[0] = nrm;
            }
            double[][] out = new double[m][n];
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) out[i][j] = (w[i][j] - ss * Math.sqrt(scale) * scaled[i][j]) * (1 - LR * WD);
            return out;
        }, 5e-5);
    }

    @ParameterizedTest
    @CsvSource({"4, 7", "7, 4"})
    void frugal(int m, int n) {
        boolean left = m < n;
        double free = 0.5;
        double[][][] st = {null, null, null};
        int[] adamT = {0};
        compare(m, n, ps -> new Frugal(ps, new Frugal.Settings(RANK, GAP, free, B1, B2, EPS, WD)), (w, g, t) -> {
            if (t % GAP == 0) {
                st[0] = Ref.svdProjector(g, RANK);
                st[1] = lowZeros(m, n);
                st[2] = lowZeros(m, n);
                adamT[0] = 0;
            }
            double[][] low = project(st[0], g, left);
            int k = ++adamT[0];
            double[][] mo = st[1], v = st[2];
            double[][] dir = new double[low.length][low[0].length];
            for (int i = 0; i < low.length; i++) for (int j = 0; j < low[0].length; j++) {
                mo[i][j] = B1 * mo[i][j] + (1 - B1) * low[i][j];
                v[i][j] = B2 * v[i][j] + (1 - B2) * low[i][j] * low[i][j];
                dir[i][j] = (mo[i][j] / (1 - Math.pow(B1, k))) / (Math.sqrt(v[i][j] / (1 - Math.pow(B2, k))) + EPS);
            }
            double[][] inSpace = back(st[0], low, left), a = back(st[0], dir, left);
            double[][] out = new double[m][n];
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++)
                out[i][j] = w[i][j] * (1 - LR * WD) - LR * (a[i][j] + free * Math.signum(g[i][j] - inSpace[i][j]));
            return out;
        }, 5e-5);
    }

    @ParameterizedTest
    @CsvSource({"4, 7, true", "7, 4, true", "4, 7, false"})
    void muon(int m, int n, boolean nesterov) {
        double mu = 0.95;
        double[][][] buf = {Ref.zeros(m, n)};
        compare(m, n, ps -> new Muon(ps, new Muon.Settings(mu, nesterov, 5, WD)), (w, g, t) -> {
            double[][] u = new double[m][n];
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) {
                buf[0][i][j] = mu * buf[0][i][j] + (1 - mu) * g[i][j];
                u[i][j] = nesterov ? (1 - mu) * g[i][j] + mu * buf[0][i][j] : buf[0][i][j];
            }
            double[][] x = m > n ? Ref.t(u) : u;
            double nrm = Ref.norm(x) + 1e-7;
            for (double[] row : x) for (int j = 0; j < row.length; j++) row[j] /= nrm;
            for (int it = 0; it < 5; it++) {
                double[][] a = Ref.mul(x, Ref.t(x)), a2 = Ref.mul(a, a);
                double[][] b = new double[a.length][a.length];
                for (int i = 0; i < a.length; i++) for (int j = 0; j < a.length; j++) b[i][j] = Muon.B * a[i][j] + Muon.C * a2[i][j];
                double[][] bx = Ref.mul(b, x);
                for (int i = 0; i < x.length; i++) for (int j = 0; j < x[0].length; j++) x[i][j] = Muon.A * x[i][j] + bx[i][j];
            }
            double[][] o = m > n ? Ref.t(x) : x;
            double step = LR * Math.sqrt(Math.max(1.0, (double) m / n));
            double[][] out = new double[m][n];
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) out[i][j] = w[i][j] * (1 - LR * WD) - step * o[i][j];
            return out;
        }, 2e-5);
    }

    @ParameterizedTest
    @CsvSource({"0.9, 0, true", "0.9, 0.1, false", "0, 0, false"})
    void sgd(double mu, double damp, boolean nesterov) {
        double[][][] buf = {null};
        compare(3, 5, ps -> new Sgd(ps, new Sgd.Settings(mu, damp, nesterov, WD)), (w, g, t) -> {
            double[][] out = new double[3][5];
            if (buf[0] == null) buf[0] = new double[3][5];
            for (int i = 0; i < 3; i++) for (int j = 0; j < 5; j++) {
                double gi = g[i][j] + WD * w[i][j];
                if (mu > 0) {
                    buf[0][i][j] = t == 0 ? gi : mu * buf[0][i][j] + (1 - damp) * gi;
                    gi = nesterov ? gi + mu * buf[0][i][j] : buf[0][i][j];
                }
                out[i][j] = w[i][j] - LR * gi;
            }
            return out;
        }, 1e-6);
    }

    @ParameterizedTest
    @CsvSource({"16", "32"})
    void adamw8bit(int block) {
        int m = 5, n = 13; // 65 elements: the last block is partial
        double[] m1 = new double[m * n], v1 = new double[m * n];
        compare(m, n, ps -> new AdamW8bit(ps, new AdamW8bit.Settings(new AdamW.Settings(B1, B2, EPS, WD), block, 0)), (w, g, t) -> {
            int k = t + 1;
            double[][] out = new double[m][n];
            for (int start = 0; start < m * n; start += block) {
                int end = Math.min(m * n, start + block);
                double max1 = 0, max2 = 0;
                for (int i = start; i < end; i++) {
                    double gi = g[i / n][i % n];
                    m1[i] = B1 * m1[i] + (1 - B1) * gi;
                    v1[i] = B2 * v1[i] + (1 - B2) * gi * gi;
                    double mh = m1[i] / (1 - Math.pow(B1, k)), vh = v1[i] / (1 - Math.pow(B2, k));
                    out[i / n][i % n] = w[i / n][i % n] * (1 - LR * WD) - LR * mh / (Math.sqrt(vh) + EPS);
                    max1 = Math.max(max1, Math.abs(m1[i]));
                    max2 = Math.max(max2, v1[i]);
                }
                // Store the moments as the nearest dynamic-map code times the block's absmax.
                for (int i = start; i < end; i++) {
                    m1[i] = nearest(DynamicMap.SIGNED, m1[i] / max1) * max1;
                    v1[i] = nearest(DynamicMap.UNSIGNED, v1[i] / max2) * max2;
                }
            }
            return out;
        }, 2e-5);
    }

    private static double nearest(float[] codes, double x) {
        double best = codes[0];
        for (float c : codes) if (Math.abs(c - x) < Math.abs(best - x)) best = c;
        return best;
    }
}
