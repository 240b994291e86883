package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.GradFn;
import dev.weft.core.SavedTensor;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.FlashAttention;

import java.util.Arrays;

/**
 * Causal self-attention for a decoder, with grouped-query heads (several query heads share one
 * key/value head), computed tile by tile with an online softmax so that memory grows linearly in
 * the sequence length: forward keeps the output and one log-sum-exp per query row, and backward
 * recomputes the scores from q, k and those statistics (FlashAttention-2).
 *
 * <p>Tensors are in the layout the projections produce, [B, T, H, D] (a view of [B, T, H·D]), so
 * nothing is transposed on the way in or out.
 */
public final class Attention {
    /**
     * OpenBLAS runs a GEMM on its own thread pool once m·n·k exceeds 4·65536; every tile product
     * here has m·n·k = query rows · key rows · D, and the tiles are already spread over the Java
     * threads, so tiles are sized to stay at or under that bound. Above it, concurrent calls from
     * the Java threads queue for OpenBLAS's pool: measured at B=8, T=256, H=4, D=64 on 2 cores,
     * 128×64 tiles took 18–24 ms forward against 2.5–5 ms for 64×64.
     */
    private static final int SINGLE_THREAD_GEMM = 4 * 65536;
    private static final int MIN_TILE = 16, MAX_TILE = 64; // 128-row tiles measured no faster at D=32

    private Attention() {}

    /**
     * {@code softmax(scale · q kᵀ + causal mask) · v} per head. q is [B, T, Hq, D], k and v are
     * [B, T, Hkv, D] with Hq a multiple of Hkv; query head h attends with kv head h / (Hq / Hkv).
     * Returns [B, T, Hq, D].
     */
    public static Tensor causal(Tensor q, Tensor k, Tensor v, float scale) {
        int d = q.dim() == 4 ? q.size(3) : 1; // a bad rank is reported by the full check
        int[] tiles = tiles(d);
        return causal(q, k, v, scale, tiles[0], tiles[1]);
    }

    /**
     * {query rows, key rows} per tile for head dimension d: powers of two, square or twice as many
     * query rows as key rows, grown while a tile product stays within {@link #SINGLE_THREAD_GEMM}
     * (64×64 at D=64, 64×32 at D=128).
     */
    static int[] tiles(int d) {
        int budget = SINGLE_THREAD_GEMM / Math.max(1, d);
        int rows = MIN_TILE, cols = MIN_TILE;
        while (true) {
            if (rows == cols && rows * 2 <= MAX_TILE && rows * 2 * cols <= budget) rows *= 2;
            else if (cols < rows && rows * cols * 2 <= budget) cols *= 2;
            else return new int[] {rows, cols};
        }
    }

    /** As {@link #causal(Tensor, Tensor, Tensor, float)} with explicit tile sizes (tests, tuning). */
    static Tensor causal(Tensor q, Tensor k, Tensor v, float scale, int qTile, int kvTile) {
        return causal(q, k, v, scale, qTile, kvTile, FlashAttention.BackwardPlan.AUTO);
    }

    /** ... and an explicit backward plan (tests). */
    static Tensor causal(Tensor q, Tensor k, Tensor v, float scale, int qTile, int kvTile, FlashAttention.BackwardPlan plan) {
        FlashAttention.Shape s = shapeOf(q, k, v);
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("Attention.causal: scale must be finite, got " + scale);
        Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
        Tensor out = Tensor.empty(DType.F32, "attention", s.batch(), s.seq(), s.qHeads(), s.headDim());
        Tensor lse = Tensor.empty(DType.F32, "attention.lse", s.batch(), s.qHeads(), s.seq());
        FlashAttention.forward(s, scale, qTile, kvTile, qc.data(), kc.data(), vc.data(), out.data(), lse.data());
        if (Autograd.needsGrad(q, k, v)) out.attach(new CausalBackward(q, k, v, qc, kc, vc, out, lse, s, scale, qTile, kvTile, plan));
        else lse.close();
        return out;
    }

    /**
     * Attention of new queries against a key/value cache, for generation under no-grad: q is
     * [B, Tq, Hq, D] at positions [past, past + Tq); kCache and vCache are [B, capacity, Hkv, D]
     * and already hold positions [0, past + Tq). Each query row gets the same result as in
     * {@link #causal} over the whole sequence, up to the float rounding of the tile products.
     * Returns [B, Tq, Hq, D].
     */
    public static Tensor causalAfterPrefix(Tensor q, Tensor kCache, Tensor vCache, int past, float scale) {
        requireRank("q", q, "[B, Tq, Hq, D]");
        requireRank("k", kCache, "[B, capacity, Hkv, D]");
        requireRank("v", vCache, "[B, capacity, Hkv, D]");
        if (Autograd.needsGrad(q, kCache, vCache))
            throw new IllegalStateException("Attention.causalAfterPrefix has no backward: use it under Autograd.noGrad()");
        if (!Arrays.equals(kCache.shape(), vCache.shape()))
            throw new IllegalArgumentException("Attention.causalAfterPrefix: k cache " + Arrays.toString(kCache.shape())
                    + " and v cache " + Arrays.toString(vCache.shape()) + " must have the same shape");
        int b = q.size(0), t = q.size(1), hq = q.size(2), d = q.size(3), capacity = kCache.size(1), hkv = kCache.size(2);
        if (kCache.size(0) != b || kCache.size(3) != d || hkv == 0 || hq % hkv != 0)
            throw new IllegalArgumentException("Attention.causalAfterPrefix: cache " + Arrays.toString(kCache.shape())
                    + " does not fit q " + Arrays.toString(q.shape()) + " (batch and head dimension must agree, Hq a multiple of Hkv)");
        if (past < 0 || (long) past + t > capacity)
            throw new IllegalArgumentException("Attention.causalAfterPrefix: " + t + " queries after " + past
                    + " cached positions do not fit a cache of " + capacity);
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("Attention.causalAfterPrefix: scale must be finite, got " + scale);
        FlashAttention.Shape s = new FlashAttention.Shape(b, t, hq, hkv, d);
        int[] tiles = tiles(d);
        Tensor qc = q.contiguous();
        Tensor out = Tensor.empty(DType.F32, "attention", b, t, hq, d);
        try (Tensor lse = Tensor.empty(DType.F32, "attention.lse", b, hq, t)) {
            FlashAttention.forwardAfterPrefix(s, past, capacity, scale, tiles[0], tiles[1], qc.data(), kCache.contiguous().data(),
                    vCache.contiguous().data(), out.data(), lse.data());
        }
        if (qc != q) qc.close();
        return out;
    }

    private static FlashAttention.Shape shapeOf(Tensor q, Tensor k, Tensor v) {
        requireRank("q", q, "[B, T, Hq, D]");
        requireRank("k", k, "[B, T, Hkv, D]");
        requireRank("v", v, "[B, T, Hkv, D]");
        if (!Arrays.equals(k.shape(), v.shape()))
            throw new IllegalArgumentException("Attention.causal: k " + Arrays.toString(k.shape()) + " and v "
                    + Arrays.toString(v.shape()) + " must have the same shape");
        int b = q.size(0), t = q.size(1), hq = q.size(2), d = q.size(3), hkv = k.size(2);
        if (k.size(0) != b || k.size(1) != t || k.size(3) != d)
            throw new IllegalArgumentException("Attention.causal: k/v " + Arrays.toString(k.shape()) + " do not match q "
                    + Arrays.toString(q.shape()) + " in batch, sequence length or head dimension (B, T and D must agree)");
        if (hq == 0 || hkv == 0 || d == 0)
            throw new IllegalArgumentException("Attention.causal: heads and head dimension must be positive, got q "
                    + Arrays.toString(q.shape()) + ", k " + Arrays.toString(k.shape()));
        if (hq % hkv != 0)
            throw new IllegalArgumentException("Attention.causal: the " + hq + " query heads must be a multiple of the "
                    + hkv + " key/value heads (grouped-query attention)");
        return new FlashAttention.Shape(b, t, hq, hkv, d);
    }

    private static void requireRank(String name, Tensor x, String layout) {
        if (x.dim() != 4)
            throw new IllegalArgumentException("Attention.causal: " + name + " must be 4-D " + layout + ", got shape "
                    + Arrays.toString(x.shape()));
    }

    /**
     * Saves q, k, v, the output and the log-sum-exp: all linear in T. Score tiles are recomputed.
     */
    private static final class CausalBackward extends GradFn {
        private final SavedTensor q, k, v, out, lse;
        private final FlashAttention.Shape shape;
        private final float scale;
        private final int qTile, kvTile;
        private final FlashAttention.BackwardPlan plan;

        CausalBackward(Tensor qIn, Tensor kIn, Tensor vIn, Tensor qc, Tensor kc, Tensor vc, Tensor out, Tensor lse,
                       FlashAttention.Shape shape, float scale, int qTile, int kvTile, FlashAttention.BackwardPlan plan) {
            super("attention", qIn, kIn, vIn);
            this.q = save(qc);
            this.k = save(kc);
            this.v = save(vc);
            this.out = save(out);
            this.lse = save(lse);
            this.shape = shape;
            this.scale = scale;
            this.qTile = qTile;
            this.kvTile = kvTile;
            this.plan = plan;
        }

        @Override
        protected Tensor[] backward(Tensor g) {
            Tensor gc = g.contiguous();
            Tensor qv = q.get(), kv = k.get(), vv = v.get();
            // The kernel produces all three gradients in one pass; those not needed are dropped.
            Tensor dq = Tensor.empty(DType.F32, "attention.grad_q", qv.shape());
            Tensor dk = Tensor.empty(DType.F32, "attention.grad_k", kv.shape());
            Tensor dv = Tensor.empty(DType.F32, "attention.grad_v", vv.shape());
            FlashAttention.backward(shape, scale, qTile, kvTile, plan, qv.data(), kv.data(), vv.data(), out.get().data(), lse.get().data(),
                    gc.data(), dq.data(), dk.data(), dv.data());
            if (gc != g) gc.close();
            return new Tensor[] {keepIf(0, dq), keepIf(1, dk), keepIf(2, dv)};
        }

        private Tensor keepIf(int input, Tensor grad) {
            if (needsGrad(input)) return grad;
            grad.close();
            return null;
        }
    }
}
