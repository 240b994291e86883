package dev.weft.optimizers;

import dev.weft.core.kernels.Gemm;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Small dense helpers on row-major float segments; products go through {@link Gemm}. */
final class Mat {
    static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private Mat() {}

    /** C[m,n] = op(A)·op(B), with A stored k×m when {@code ta} (else m×k) and B stored n×k when {@code tb} (else k×n). */
    static void mul(boolean ta, boolean tb, int m, int n, int k, MemorySegment a, MemorySegment b, MemorySegment c) {
        Gemm.sgemm(ta, tb, m, n, k, 1f, a, 0, ta ? m : k, b, 0, tb ? k : n, 0f, c, 0, n);
    }

    /** C[m,n] = alpha·op(A)·op(B) + beta·C. */
    static void mulAdd(boolean ta, boolean tb, int m, int n, int k, float alpha, MemorySegment a, MemorySegment b, float beta, MemorySegment c) {
        Gemm.sgemm(ta, tb, m, n, k, alpha, a, 0, ta ? m : k, b, 0, tb ? k : n, beta, c, 0, n);
    }

    /** Frobenius norm, accumulated in double. */
    static double norm(MemorySegment x, long n) {
        double s = 0;
        for (long i = 0; i < n; i++) {
            double v = x.getAtIndex(F, i);
            s += v * v;
        }
        return Math.sqrt(s);
    }

    /** Row-major transpose of an r×c matrix into c×r. */
    static void transpose(MemorySegment src, int r, int c, MemorySegment dst) {
        for (int i = 0; i < r; i++) for (int j = 0; j < c; j++) dst.setAtIndex(F, (long) j * r + i, src.getAtIndex(F, (long) i * c + j));
    }

    /** p ← p·(1 − lr·wd): decoupled weight decay. */
    static void decay(MemorySegment p, long n, double lr, double wd) {
        if (wd == 0 || lr == 0) return;
        float f = (float) (1 - lr * wd);
        for (long i = 0; i < n; i++) p.setAtIndex(F, i, p.getAtIndex(F, i) * f);
    }
}
