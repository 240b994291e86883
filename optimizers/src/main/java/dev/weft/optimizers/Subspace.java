package dev.weft.optimizers;

import dev.weft.optimizers.linalg.Lapack;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

/**
 * The geometry of a rank-r projection of an m×n gradient G, shared by the low-rank optimizers.
 * Following GaLore's reference, the smaller side is projected: when m &lt; n the projector P is
 * m×r and the low-rank gradient is R = PᵀG (r×n); otherwise P is stored as an r×n matrix (rows of
 * Vᵀ) and R = GPᵀ (m×r). The rank is clamped to min(m, n).
 */
final class Subspace {
    final int m, n, r;
    final boolean left;

    Subspace(int m, int n, int rank) {
        if (rank < 1) throw new IllegalArgumentException("rank must be >= 1, got " + rank);
        this.m = m;
        this.n = n;
        this.r = Math.min(rank, Math.min(m, n));
        this.left = m < n;
    }

    int[] projectorShape() {
        return left ? new int[] {m, r} : new int[] {r, n};
    }

    int[] lowShape() {
        return left ? new int[] {r, n} : new int[] {m, r};
    }

    long lowNumel() {
        return (long) r * (left ? n : m);
    }

    /** out = R, the low-rank gradient. */
    void project(MemorySegment p, MemorySegment g, MemorySegment out) {
        if (left) Mat.mul(true, false, r, n, m, p, g, out);
        else Mat.mul(false, true, m, r, n, g, p, out);
    }

    /** out (m×n) = the low-rank matrix mapped back to the full space. */
    void back(MemorySegment p, MemorySegment low, MemorySegment out) {
        if (left) Mat.mul(false, false, m, n, r, p, low, out);
        else Mat.mul(false, false, m, n, r, low, p, out);
    }

    /** P from the top-r singular vectors of G (left vectors when m &lt; n, right ones otherwise). */
    void svdProjector(MemorySegment g, MemorySegment p) {
        Lapack.Svd s = Lapack.svd(g, m, n);
        int k = s.k();
        if (left) {
            for (int i = 0; i < m; i++) for (int j = 0; j < r; j++) p.setAtIndex(Mat.F, (long) i * r + j, s.u()[i * k + j]);
        } else {
            for (int j = 0; j < r; j++) for (int c = 0; c < n; c++) p.setAtIndex(Mat.F, (long) j * n + c, s.vt()[j * n + c]);
        }
    }

    /**
     * P with independent N(0, 1/r) entries drawn from {@code seed}, as APOLLO's random projector
     * (whose Gaussian generator is torch's; ours is Box–Muller on {@link SplittableRandom}'s
     * uniforms, so the matrices differ from the reference's while having the same distribution).
     * StrictMath, not Math: Math's log/cos may round differently once the JIT compiles them, and a
     * projector regenerated after a resume must be bit-identical.
     */
    void randomProjector(long seed, MemorySegment p) {
        SplittableRandom rnd = new SplittableRandom(seed);
        double sd = 1 / Math.sqrt(r);
        long count = (long) r * (left ? m : n);
        for (long i = 0; i < count; i += 2) {
            double u1 = 1 - rnd.nextDouble(), u2 = rnd.nextDouble(); // u1 in (0, 1]
            double rad = StrictMath.sqrt(-2 * StrictMath.log(u1)), th = 2 * Math.PI * u2;
            p.setAtIndex(Mat.F, i, (float) (rad * StrictMath.cos(th) * sd));
            if (i + 1 < count) p.setAtIndex(Mat.F, i + 1, (float) (rad * StrictMath.sin(th) * sd));
        }
    }
}
