package dev.weft.core.kernels;

import dev.weft.core.DType;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

import java.lang.foreign.MemorySegment;

import static dev.weft.core.kernels.VectorMath.F;
import static dev.weft.core.kernels.VectorMath.LANES;
import static dev.weft.core.kernels.VectorMath.ORDER;
import static dev.weft.core.kernels.VectorMath.SPECIES;

/**
 * Causal self-attention with grouped-query heads, tiled with an online softmax in the manner of
 * FlashAttention-2, so that no T×T matrix ever exists: forward keeps the output and one
 * log-sum-exp per query row; backward recomputes each score tile from q, k and that statistic.
 *
 * <p>Layout: q and the output are [B, T, Hq, D], k and v [B, T, Hkv, D], all contiguous, so the rows
 * of one head are {@code H·D} floats apart and go to OpenBLAS as a strided matrix without copies.
 * The log-sum-exp is [B, Hq, T]. Query head h reads kv head {@code h / (Hq / Hkv)}.
 *
 * <p>Tile products run through {@link Gemm#sgemm}; the softmax parts (max, exp, rescale) are
 * Vector API loops. Every output element is produced by exactly one task in a fixed order, so
 * results never depend on timing, nor, for a given {@link BackwardPlan}, on the thread count.
 */
public final class FlashAttention {
    private FlashAttention() {}

    /** Sizes of one attention call: batch, sequence length, query heads, kv heads, head dimension. */
    public record Shape(int batch, int seq, int qHeads, int kvHeads, int headDim) {
        public Shape {
            if (batch < 0 || seq < 0 || qHeads <= 0 || kvHeads <= 0 || headDim <= 0 || qHeads % kvHeads != 0)
                throw new IllegalArgumentException("invalid attention shape " + this);
        }

        int group() {
            return qHeads / kvHeads;
        }

        /** Element offset of row t of query head h (also the output and its gradient). */
        long qRow(int b, int t, int h) {
            return (((long) b * seq + t) * qHeads + h) * headDim;
        }

        /** Element offset of row t of kv head g. */
        long kvRow(int b, int t, int g) {
            return (((long) b * seq + t) * kvHeads + g) * headDim;
        }

        /** Element offset of the statistics of query head h, time t. */
        long statRow(int b, int h, int t) {
            return ((long) b * qHeads + h) * seq + t;
        }
    }

    /**
     * Forward: writes softmax(scale·q·kᵀ + causal mask)·v into {@code out} and the per-row
     * log-sum-exp of the scaled, masked scores into {@code lse}.
     */
    public static void forward(Shape s, float scale, int qTile, int kvTile, MemorySegment q, MemorySegment k, MemorySegment v,
                               MemorySegment out, MemorySegment lse) {
        checkTiles(qTile, kvTile);
        int qTiles = ceilDiv(s.seq, qTile);
        int tasks = s.batch * s.qHeads * qTiles;
        Parallel.forRange(tasks, 1, (from, to) -> {
            try (Tensor scores = scratch(qTile * kvTile)) {
                float[] rowMax = new float[qTile], rowSum = new float[qTile];
                MemorySegment sc = scores.data();
                for (int task = from; task < to; task++) {
                    int bh = task / qTiles;
                    int i0 = balancedTile(task % qTiles, qTiles) * qTile;
                    forwardRows(s, 0, s.seq, scale, kvTile, bh / s.qHeads, bh % s.qHeads, i0, Math.min(qTile, s.seq - i0),
                            q, k, v, out, lse, sc, rowMax, rowSum);
                }
            }
        });
    }

    /**
     * Forward for queries that continue a cached prefix (generation with a KV cache): q, out and
     * lse are shaped by {@code s}, whose seq is the number of new queries, at positions
     * [past, past + s.seq); k and v are [B, capacity, Hkv, D] caches whose first past + s.seq rows
     * hold every position up to the last query. Each query row runs the online softmax of
     * {@link #forward} over the same key tiles; only the shapes of the tile products differ, so
     * results agree with a forward over the whole sequence up to the rounding of those products.
     */
    public static void forwardAfterPrefix(Shape s, int past, int capacity, float scale, int qTile, int kvTile, MemorySegment q,
                                          MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse) {
        checkTiles(qTile, kvTile);
        if (past < 0 || (long) past + s.seq > capacity)
            throw new IllegalArgumentException("attention: " + s.seq + " queries after " + past + " cached positions exceed the cache of " + capacity);
        int qTiles = ceilDiv(s.seq, qTile);
        int tasks = s.batch * s.qHeads * qTiles;
        Parallel.forRange(tasks, 1, (from, to) -> {
            try (Tensor scores = scratch(qTile * kvTile)) {
                float[] rowMax = new float[qTile], rowSum = new float[qTile];
                MemorySegment sc = scores.data();
                for (int task = from; task < to; task++) {
                    int bh = task / qTiles;
                    int i0 = (task % qTiles) * qTile;
                    forwardRows(s, past, capacity, scale, kvTile, bh / s.qHeads, bh % s.qHeads, i0, Math.min(qTile, s.seq - i0),
                            q, k, v, out, lse, sc, rowMax, rowSum);
                }
            }
        });
    }

    /**
     * One block of query rows [i0, i0 + br) of one head against every key at or before them. Query
     * row i sits at position {@code past + i}; k and v hold {@code kvSeq} rows per batch entry.
     */
    private static void forwardRows(Shape s, int past, int kvSeq, float scale, int kvTile, int b, int h, int i0, int br,
                                    MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse,
                                    MemorySegment sc, float[] rowMax, float[] rowSum) {
        int d = s.headDim, ldq = s.qHeads * d, ldk = s.kvHeads * d, g = h / s.group();
        long qOff = s.qRow(b, i0, h);
        int keysEnd = past + i0 + br; // causal: these rows see keys [0, keysEnd) at most
        for (int j0 = 0; j0 < keysEnd; j0 += kvTile) {
            int bc = Math.min(kvTile, keysEnd - j0);
            long kOff = (((long) b * kvSeq + j0) * s.kvHeads + g) * d;
            boolean first = j0 == 0;
            Gemm.sgemm(false, true, br, bc, d, scale, q, qOff, ldq, k, kOff, ldk, 0f, sc, 0, bc);
            for (int r = 0; r < br; r++) {
                long row = (long) r * bc;
                int valid = Math.min(bc, past + i0 + r - j0 + 1);
                if (valid <= 0) { // the whole tile lies after this row's position
                    zero(sc, row, bc);
                    continue;
                }
                float previous = first ? Float.NEGATIVE_INFINITY : rowMax[r];
                float m = Math.max(previous, max(sc, row, valid));
                float sum = expShifted(sc, row, valid, bc, m);
                if (first) {
                    rowSum[r] = sum;
                } else if (m != previous) {
                    // A larger maximum arrived: rescale what this row has accumulated so far.
                    float alpha = VectorMath.exp(previous - m);
                    rowSum[r] = rowSum[r] * alpha + sum;
                    scale(out, qOff + (long) r * ldq, d, alpha);
                } else {
                    rowSum[r] += sum;
                }
                rowMax[r] = m;
            }
            Gemm.sgemm(false, false, br, d, bc, 1f, sc, 0, bc, v, kOff, ldk, first ? 0f : 1f, out, qOff, ldq);
        }
        long stat = s.statRow(b, h, i0);
        for (int r = 0; r < br; r++) {
            scale(out, qOff + (long) r * ldq, d, 1f / rowSum[r]);
            lse.setAtIndex(F, stat + r, rowMax[r] + (float) StrictMath.log(rowSum[r]));
        }
    }

    /**
     * How backward spreads its work over threads. Each plan gives bitwise the same gradients on
     * every run and thread count; the two plans differ from each other only by float rounding.
     */
    public enum BackwardPlan {
        /** {@link #PER_KV_HEAD} when there are at least as many (batch, kv head) pairs as threads, else {@link #PER_TILE}. */
        AUTO,
        /**
         * One task per (batch, kv head): it walks the kv tiles, and for each one every query head of
         * the group and every query tile at or after it, so dK and dV of that kv head and dQ of its
         * query heads are each accumulated by one thread in a fixed order. Five tile products per
         * tile pair.
         */
        PER_KV_HEAD,
        /**
         * Two passes with finer tasks, for when (batch, kv head) pairs are fewer than threads: one
         * task per (batch, kv head, kv tile) accumulates dK and dV, then one per (batch, query head,
         * query tile) accumulates dQ. Recomputing P and dP in the second pass costs seven tile
         * products per tile pair instead of five.
         */
        PER_TILE
    }

    /**
     * Backward: given the forward's inputs, output, log-sum-exp and the output gradient, writes the
     * gradients of q, k and v (every element is overwritten; they need not be zeroed).
     */
    public static void backward(Shape s, float scale, int qTile, int kvTile, BackwardPlan plan,
                                MemorySegment q, MemorySegment k, MemorySegment v, MemorySegment out, MemorySegment lse,
                                MemorySegment dOut, MemorySegment dq, MemorySegment dk, MemorySegment dv) {
        checkTiles(qTile, kvTile);
        if (plan == BackwardPlan.AUTO)
            plan = s.batch * s.kvHeads >= Parallel.threads() ? BackwardPlan.PER_KV_HEAD : BackwardPlan.PER_TILE;
        Tiles t = new Tiles(s, scale, qTile, kvTile, q, k, v, lse, dOut);
        try (Tensor delta = Scope.outside(() -> Tensor.empty(DType.F32, "attention.delta", s.batch * s.qHeads * s.seq))) {
            MemorySegment dl = delta.data();
            // delta_i = dO_i · O_i, the row term of the softmax gradient: dS = P ∘ (dP − delta).
            Parallel.forRange(s.batch * s.qHeads, 1, (from, to) -> {
                for (int bh = from; bh < to; bh++)
                    for (int i = 0; i < s.seq; i++) {
                        long row = s.qRow(bh / s.qHeads, i, bh % s.qHeads);
                        dl.setAtIndex(F, s.statRow(bh / s.qHeads, bh % s.qHeads, i), VectorMath.dot(dOut, row, out, row, s.headDim));
                    }
            });
            if (plan == BackwardPlan.PER_KV_HEAD) {
                Parallel.forRange(s.batch * s.kvHeads, 1, (from, to) -> {
                    try (Tensor p = scratch(qTile * kvTile); Tensor ds = scratch(qTile * kvTile)) {
                        for (int task = from; task < to; task++)
                            t.perKvHead(task / s.kvHeads, task % s.kvHeads, dl, p.data(), ds.data(), dq, dk, dv);
                    }
                });
            } else {
                int kvTiles = ceilDiv(s.seq, kvTile), qTiles = ceilDiv(s.seq, qTile);
                Parallel.forRange(s.batch * s.kvHeads * kvTiles, 1, (from, to) -> {
                    try (Tensor p = scratch(qTile * kvTile); Tensor ds = scratch(qTile * kvTile)) {
                        for (int task = from; task < to; task++) {
                            int bg = task / kvTiles;
                            int j0 = balancedTile(task % kvTiles, kvTiles) * kvTile;
                            t.keyValueTile(bg / s.kvHeads, bg % s.kvHeads, j0, dl, p.data(), ds.data(), dk, dv);
                        }
                    }
                });
                Parallel.forRange(s.batch * s.qHeads * qTiles, 1, (from, to) -> {
                    try (Tensor p = scratch(qTile * kvTile); Tensor ds = scratch(qTile * kvTile)) {
                        for (int task = from; task < to; task++) {
                            int bh = task / qTiles;
                            int i0 = balancedTile(task % qTiles, qTiles) * qTile;
                            t.queryTile(bh / s.qHeads, bh % s.qHeads, i0, dl, p.data(), ds.data(), dq);
                        }
                    }
                });
            }
        }
    }

    /** The operands of one backward call and the tile steps over them. */
    private record Tiles(Shape s, float scale, int qTile, int kvTile, MemorySegment q, MemorySegment k, MemorySegment v,
                         MemorySegment lse, MemorySegment dOut) {

        /** Every gradient contribution of kv head g of batch b ({@link BackwardPlan#PER_KV_HEAD}). */
        void perKvHead(int b, int g, MemorySegment delta, MemorySegment p, MemorySegment ds,
                       MemorySegment dq, MemorySegment dk, MemorySegment dv) {
            int d = s.headDim, ldq = s.qHeads * d, ldk = s.kvHeads * d, group = s.group(), t = s.seq;
            for (int j0 = 0; j0 < t; j0 += kvTile) {
                int bc = Math.min(kvTile, t - j0);
                long kOff = s.kvRow(b, j0, g);
                int firstQTile = j0 / qTile * qTile; // tiles that end before j0 see none of these keys
                for (int h = g * group; h < (g + 1) * group; h++) {
                    for (int i0 = firstQTile; i0 < t; i0 += qTile) {
                        int br = Math.min(qTile, t - i0);
                        long qOff = s.qRow(b, i0, h);
                        boolean firstForKv = h == g * group && i0 == firstQTile;
                        scoreGradients(b, h, g, i0, br, j0, bc, delta, p, ds);
                        // dV_j += Pᵀ dO_i ; dQ_i += scale · dS K_j ; dK_j += scale · dSᵀ Q_i
                        Gemm.sgemm(true, false, bc, d, br, 1f, p, 0, bc, dOut, qOff, ldq, firstForKv ? 0f : 1f, dv, kOff, ldk);
                        Gemm.sgemm(false, false, br, d, bc, scale, ds, 0, bc, k, kOff, ldk, j0 == 0 ? 0f : 1f, dq, qOff, ldq);
                        Gemm.sgemm(true, false, bc, d, br, scale, ds, 0, bc, q, qOff, ldq, firstForKv ? 0f : 1f, dk, kOff, ldk);
                    }
                }
            }
        }

        /** dK and dV of keys [j0, j0 + kvTile) of kv head g ({@link BackwardPlan#PER_TILE}, first pass). */
        void keyValueTile(int b, int g, int j0, MemorySegment delta, MemorySegment p, MemorySegment ds,
                          MemorySegment dk, MemorySegment dv) {
            int d = s.headDim, ldq = s.qHeads * d, ldk = s.kvHeads * d, group = s.group(), t = s.seq;
            int bc = Math.min(kvTile, t - j0);
            long kOff = s.kvRow(b, j0, g);
            int firstQTile = j0 / qTile * qTile;
            for (int h = g * group; h < (g + 1) * group; h++) {
                for (int i0 = firstQTile; i0 < t; i0 += qTile) {
                    int br = Math.min(qTile, t - i0);
                    long qOff = s.qRow(b, i0, h);
                    boolean first = h == g * group && i0 == firstQTile;
                    scoreGradients(b, h, g, i0, br, j0, bc, delta, p, ds);
                    Gemm.sgemm(true, false, bc, d, br, 1f, p, 0, bc, dOut, qOff, ldq, first ? 0f : 1f, dv, kOff, ldk);
                    Gemm.sgemm(true, false, bc, d, br, scale, ds, 0, bc, q, qOff, ldq, first ? 0f : 1f, dk, kOff, ldk);
                }
            }
        }

        /** dQ of query rows [i0, i0 + qTile) of head h ({@link BackwardPlan#PER_TILE}, second pass). */
        void queryTile(int b, int h, int i0, MemorySegment delta, MemorySegment p, MemorySegment ds, MemorySegment dq) {
            int d = s.headDim, ldq = s.qHeads * d, ldk = s.kvHeads * d, g = h / s.group();
            int br = Math.min(qTile, s.seq - i0);
            long qOff = s.qRow(b, i0, h);
            for (int j0 = 0; j0 < i0 + br; j0 += kvTile) {
                int bc = Math.min(kvTile, i0 + br - j0); // keys past the last row are all masked
                scoreGradients(b, h, g, i0, br, j0, bc, delta, p, ds);
                Gemm.sgemm(false, false, br, d, bc, scale, ds, 0, bc, k, s.kvRow(b, j0, g), ldk, j0 == 0 ? 0f : 1f, dq, qOff, ldq);
            }
        }

        /**
         * For query rows [i0, i0 + br) of head h against keys [j0, j0 + bc) of kv head g: the
         * probabilities P = exp(scale·Q Kᵀ − lse), zero above the diagonal, into p, and the score
         * gradient dS = P ∘ (dO Vᵀ − delta) into ds, both [br, bc].
         */
        private void scoreGradients(int b, int h, int g, int i0, int br, int j0, int bc, MemorySegment delta,
                                    MemorySegment p, MemorySegment ds) {
            int d = s.headDim, ldq = s.qHeads * d, ldk = s.kvHeads * d;
            long qOff = s.qRow(b, i0, h), kOff = s.kvRow(b, j0, g), stat = s.statRow(b, h, i0);
            Gemm.sgemm(false, true, br, bc, d, scale, q, qOff, ldq, k, kOff, ldk, 0f, p, 0, bc);
            for (int r = 0; r < br; r++) {
                int valid = Math.max(0, Math.min(bc, i0 + r - j0 + 1));
                expShifted(p, (long) r * bc, valid, bc, lse.getAtIndex(F, stat + r));
            }
            Gemm.sgemm(false, true, br, bc, d, 1f, dOut, qOff, ldq, v, kOff, ldk, 0f, ds, 0, bc);
            for (int r = 0; r < br; r++) softmaxGrad(p, ds, (long) r * bc, bc, delta.getAtIndex(F, stat + r));
        }
    }

    // ---- vector row kernels -------------------------------------------------------------------

    /** max of x[off, off + n), n ≥ 1. */
    static float max(MemorySegment x, long off, int n) {
        FloatVector acc = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) acc = acc.max(VectorMath.load(x, off + i));
        if (i < n) {
            VectorMask<Float> m = SPECIES.indexInRange(i, n);
            acc = acc.lanewise(VectorOperators.MAX, FloatVector.fromMemorySegment(SPECIES, x, (off + i) * 4, ORDER, m), m);
        }
        return acc.reduceLanes(VectorOperators.MAX);
    }

    /**
     * x[off + c] = exp(x[off + c] − shift) for c < valid and 0 for valid ≤ c < width; returns the
     * sum of the row.
     *
     * <p>The exp is {@link VectorMath#exp(FloatVector)}, not {@code lanewise(EXP)}: the JDK's SVML
     * exp rounds differently from its own interpreted fallback, which broke exact resume.
     */
    static float expShifted(MemorySegment x, long off, int valid, int width, float shift) {
        FloatVector sh = FloatVector.broadcast(SPECIES, shift);
        FloatVector acc = FloatVector.zero(SPECIES);
        int i = 0;
        for (int bound = SPECIES.loopBound(valid); i < bound; i += LANES) {
            FloatVector e = VectorMath.exp(VectorMath.load(x, off + i).sub(sh));
            VectorMath.store(e, x, off + i);
            acc = acc.add(e);
        }
        for (; i < width; i += LANES) { // ragged end: keep lanes < valid, zero the rest of the row
            VectorMask<Float> keep = SPECIES.indexInRange(i, valid), inRow = SPECIES.indexInRange(i, width);
            FloatVector e = VectorMath.exp(FloatVector.fromMemorySegment(SPECIES, x, (off + i) * 4, ORDER, keep).sub(sh))
                    .blend(0f, keep.not());
            e.intoMemorySegment(x, (off + i) * 4, ORDER, inRow);
            acc = acc.add(e);
        }
        return VectorMath.sumLanes(acc);
    }

    /** ds[off + c] = p[off + c] · (ds[off + c] − delta) for c < width. */
    static void softmaxGrad(MemorySegment p, MemorySegment ds, long off, int width, float delta) {
        FloatVector dl = FloatVector.broadcast(SPECIES, delta);
        int i = 0;
        for (int bound = SPECIES.loopBound(width); i < bound; i += LANES)
            VectorMath.store(VectorMath.load(p, off + i).mul(VectorMath.load(ds, off + i).sub(dl)), ds, off + i);
        if (i < width) {
            VectorMask<Float> m = SPECIES.indexInRange(i, width);
            long byteOff = (off + i) * 4;
            FloatVector pv = FloatVector.fromMemorySegment(SPECIES, p, byteOff, ORDER, m);
            FloatVector dv = FloatVector.fromMemorySegment(SPECIES, ds, byteOff, ORDER, m);
            pv.mul(dv.sub(dl)).intoMemorySegment(ds, byteOff, ORDER, m);
        }
    }

    /** x[off, off + n) *= a. */
    static void scale(MemorySegment x, long off, int n, float a) {
        int i = 0;
        for (int bound = SPECIES.loopBound(n); i < bound; i += LANES) VectorMath.store(VectorMath.load(x, off + i).mul(a), x, off + i);
        if (i < n) {
            VectorMask<Float> m = SPECIES.indexInRange(i, n);
            long byteOff = (off + i) * 4;
            FloatVector.fromMemorySegment(SPECIES, x, byteOff, ORDER, m).mul(a).intoMemorySegment(x, byteOff, ORDER, m);
        }
    }

    private static void zero(MemorySegment x, long off, int n) {
        for (int i = 0; i < n; i++) x.setAtIndex(F, off + i, 0f);
    }

    // ---- helpers ------------------------------------------------------------------------------

    /**
     * The causal work of a tile grows (query tiles) or shrinks (kv tiles) with its index; visiting
     * tiles as 0, n−1, 1, n−2, ... makes the contiguous chunks that {@link Parallel#forRange} hands
     * out about equally heavy.
     */
    static int balancedTile(int position, int tiles) {
        return (position & 1) == 0 ? position >> 1 : tiles - 1 - (position >> 1);
    }

    /** Scratch for one thread: pool memory (so it shows in the accounting), outside any caller's scope. */
    private static Tensor scratch(int floats) {
        return Scope.outside(() -> Tensor.empty(DType.F32, "attention.scratch", floats));
    }

    private static void checkTiles(int qTile, int kvTile) {
        if (qTile <= 0 || kvTile <= 0)
            throw new IllegalArgumentException("attention tile sizes must be positive, got qTile=" + qTile + ", kvTile=" + kvTile);
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }
}
