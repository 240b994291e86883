package dev.weft.optimizers;

import dev.weft.core.Autograd;
import dev.weft.core.Tensor;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Straightforward double-precision matrix helpers for reference computations in tests. */
final class Ref {
    private Ref() {}

    static double[][] random(SplittableRandom r, int m, int n) {
        double[][] a = new double[m][n];
        for (double[] row : a) for (int j = 0; j < n; j++) row[j] = (float) r.nextGaussian();
        return a;
    }

    static double[][] mul(double[][] a, double[][] b) {
        int m = a.length, k = b.length, n = b[0].length;
        double[][] c = new double[m][n];
        for (int i = 0; i < m; i++) for (int p = 0; p < k; p++) for (int j = 0; j < n; j++) c[i][j] += a[i][p] * b[p][j];
        return c;
    }

    static double[][] t(double[][] a) {
        double[][] b = new double[a[0].length][a.length];
        for (int i = 0; i < a.length; i++) for (int j = 0; j < a[0].length; j++) b[j][i] = a[i][j];
        return b;
    }

    static double[][] zeros(int m, int n) {
        return new double[m][n];
    }

    static double norm(double[][] a) {
        double s = 0;
        for (double[] row : a) for (double v : row) s += v * v;
        return Math.sqrt(s);
    }

    static float[] flat(double[][] a) {
        float[] f = new float[a.length * a[0].length];
        for (int i = 0; i < a.length; i++) for (int j = 0; j < a[0].length; j++) f[i * a[0].length + j] = (float) a[i][j];
        return f;
    }

    static double[][] unflat(float[] f, int m, int n) {
        double[][] a = new double[m][n];
        for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) a[i][j] = f[i * n + j];
        return a;
    }

    /** Eigenvectors (columns) and eigenvalues of a symmetric matrix by cyclic Jacobi, in descending eigenvalue order. */
    static double[][][] eigh(double[][] s) {
        int n = s.length;
        double[][] a = new double[n][];
        for (int i = 0; i < n; i++) a[i] = s[i].clone();
        double[][] v = new double[n][n];
        for (int i = 0; i < n; i++) v[i][i] = 1;
        for (int sweep = 0; sweep < 100; sweep++) {
            double off = 0;
            for (int i = 0; i < n; i++) for (int j = i + 1; j < n; j++) off += a[i][j] * a[i][j];
            if (off < 1e-30) break;
            for (int p = 0; p < n; p++) for (int q = p + 1; q < n; q++) {
                if (Math.abs(a[p][q]) < 1e-300) continue;
                double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
                double tt = Math.signum(theta) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
                if (theta == 0) tt = 1;
                double c = 1 / Math.sqrt(tt * tt + 1), sn = tt * c;
                for (int k = 0; k < n; k++) {
                    double akp = a[k][p], akq = a[k][q];
                    a[k][p] = c * akp - sn * akq;
                    a[k][q] = sn * akp + c * akq;
                }
                for (int k = 0; k < n; k++) {
                    double apk = a[p][k], aqk = a[q][k];
                    a[p][k] = c * apk - sn * aqk;
                    a[q][k] = sn * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = v[k][p], vkq = v[k][q];
                    v[k][p] = c * vkp - sn * vkq;
                    v[k][q] = sn * vkp + c * vkq;
                }
            }
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) order[i] = i;
        java.util.Arrays.sort(order, (x, y) -> Double.compare(a[y][y], a[x][x]));
        double[][] vecs = new double[n][n];
        double[][] vals = new double[1][n];
        for (int j = 0; j < n; j++) {
            vals[0][j] = a[order[j]][order[j]];
            for (int i = 0; i < n; i++) vecs[i][j] = v[i][order[j]];
        }
        return new double[][][] {vecs, vals};
    }

    /**
     * GaLore's projector for G (m×n) in double: the top-r left singular vectors (m×r) when m &lt; n,
     * else the top-r rows of Vᵀ (r×n); signs make each left vector's largest-magnitude entry positive.
     */
    static double[][] svdProjector(double[][] g, int r) {
        int m = g.length, n = g[0].length;
        if (m < n) {
            double[][] u = eigh(mul(g, t(g)))[0];
            double[][] p = new double[m][r];
            for (int j = 0; j < r; j++) {
                int arg = 0;
                for (int i = 1; i < m; i++) if (Math.abs(u[i][j]) > Math.abs(u[arg][j])) arg = i;
                double s = u[arg][j] < 0 ? -1 : 1;
                for (int i = 0; i < m; i++) p[i][j] = s * u[i][j];
            }
            return p;
        }
        double[][] v = eigh(mul(t(g), g))[0];
        double[][] p = new double[r][n];
        for (int j = 0; j < r; j++) {
            double[] u = new double[m];
            for (int i = 0; i < m; i++) for (int c = 0; c < n; c++) u[i] += g[i][c] * v[c][j];
            int arg = 0;
            for (int i = 1; i < m; i++) if (Math.abs(u[i]) > Math.abs(u[arg])) arg = i;
            double s = u[arg] < 0 ? -1 : 1;
            for (int c = 0; c < n; c++) p[j][c] = s * v[c][j];
        }
        return p;
    }

    /** Sets p.grad to g (the gradient of sum(p * g)). */
    static void setGrad(Tensor p, float[] g) {
        p.clearGrad();
        Autograd.backward(p, Tensor.of(g, p.shape()));
    }

    static void assertClose(double[][] want, float[] got, double tol, String what) {
        int n = want[0].length;
        for (int i = 0; i < want.length; i++)
            for (int j = 0; j < n; j++) assertEquals(want[i][j], got[i * n + j], tol, what + " [" + i + "," + j + "]");
    }
}
