package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.GradFn;
import dev.weft.core.KeptProjections;
import dev.weft.core.SavedTensor;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.Gemm;
import dev.weft.core.kernels.Parallel;

import java.util.Arrays;

/**
 * Matrix products through OpenBLAS. {@link #matmul} is the batched product of the last two
 * dimensions; {@link #linear} is {@code x · Wᵀ} with W stored [out, in] as Hugging Face stores it,
 * done as one GEMM over all leading rows without transposing W.
 */
public final class Matmul {
    private Matmul() {}

    /** {@code x[..., in] · w[out, in]ᵀ → [..., out]}. */
    public static Tensor linear(Tensor x, Tensor w) {
        if (w.dim() != 2) throw new IllegalArgumentException("linear: weight must be 2-D [out, in], got " + Arrays.toString(w.shape()));
        int in = w.size(1), out = w.size(0);
        if (x.size(-1) != in)
            throw new IllegalArgumentException("linear: input " + Arrays.toString(x.shape()) + " does not match weight " + Arrays.toString(w.shape()));
        Tensor xc = x.contiguous(), wc = w.contiguous();
        int rows = (int) (xc.numel() / in);
        int[] outShape = x.shape();
        outShape[outShape.length - 1] = out;
        // Selective recompute keeps projection outputs in forward and hands them back in its replay.
        KeptProjections kept = KeptProjections.current();
        Tensor y = kept == null ? null : kept.replay(outShape);
        if (y == null) {
            y = Tensor.empty(DType.F32, "linear", outShape);
            Gemm.sgemm(false, true, rows, out, in, 1f, xc.data(), 0, in, wc.data(), 0, in, 0f, y.data(), 0, out);
            if (kept != null) kept.record(y);
        }
        if (Autograd.needsGrad(x, w)) y.attach(new LinearBackward(x, w, xc, wc, rows));
        return y;
    }

    private static final class LinearBackward extends GradFn {
        private final SavedTensor x, w;
        private final int rows, out, in;
        private final int[] xShape;

        LinearBackward(Tensor xIn, Tensor wIn, Tensor xc, Tensor wc, int rows) {
            super("linear", xIn, wIn);
            this.x = save(xc);
            this.w = save(wc);
            this.rows = rows;
            this.out = wc.size(0);
            this.in = wc.size(1);
            this.xShape = xc.shape();
        }

        @Override
        protected Tensor[] backward(Tensor g) {
            Tensor gc = g.contiguous();
            Tensor gx = null, gw = null;
            if (needsGrad(0)) { // dX = dY · W
                Tensor wv = w.get();
                gx = Tensor.empty(DType.F32, "linear.grad_input", xShape);
                Gemm.sgemm(false, false, rows, in, out, 1f, gc.data(), 0, out, wv.data(), 0, in, 0f, gx.data(), 0, in);
            }
            if (defersGradient(1)) {
                // Autograd closes g once this node is done; a view keeps its memory for the weight pass.
                Tensor dy = gc == g ? g.detach() : gc;
                deferGradient(1, () -> {
                    try (dy) {
                        return weightGradient(dy);
                    }
                });
            } else if (needsGrad(1)) {
                gw = weightGradient(gc);
            }
            return new Tensor[] {gx, gw};
        }

        /** dW = dYᵀ · X, added straight into the weight's gradient when it is a parameter. */
        private Tensor weightGradient(Tensor dy) {
            Tensor xv = x.get();
            Tensor acc = leafGradient(1);
            Tensor gw = acc != null && acc.isContiguous() ? acc : Tensor.empty(DType.F32, "linear.grad_weight", out, in);
            Gemm.sgemm(true, false, out, in, rows, 1f, dy.data(), 0, out, xv.data(), 0, in, gw == acc ? 1f : 0f, gw.data(), 0, in);
            return gw;
        }
    }

    /**
     * Batched product over the last two dimensions: {@code a[..., m, k] · b[..., k, n]}. Leading
     * dimensions must match, or {@code b} may be 2-D and shared by every batch entry.
     */
    public static Tensor matmul(Tensor a, Tensor b) {
        if (a.dim() < 2 || b.dim() < 2) throw new IllegalArgumentException("matmul needs at least 2-D operands, got "
                + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape()));
        if (b.dim() == 2 && a.dim() > 2) {
            // Shared right operand: fold the batch into rows, one GEMM.
            int k = a.size(-1);
            if (b.size(0) != k) throw mismatch(a, b);
            Tensor flat = a.reshape(-1, k);
            Tensor y = matmul(flat, b);
            int[] s = a.shape();
            s[s.length - 1] = b.size(1);
            return y.view(s);
        }
        if (a.dim() != b.dim()) throw mismatch(a, b);
        int[] as = a.shape(), bs = b.shape();
        for (int d = 0; d < as.length - 2; d++) if (as[d] != bs[d]) throw mismatch(a, b);
        int m = as[as.length - 2], k = as[as.length - 1], n = bs[bs.length - 1];
        if (bs[bs.length - 2] != k) throw mismatch(a, b);
        Tensor ac = a.contiguous(), bc = b.contiguous();
        int batch = (int) (a.numel() / ((long) m * k));
        int[] outShape = as.clone();
        outShape[outShape.length - 1] = n;
        Tensor y = Tensor.empty(DType.F32, "matmul", outShape);
        batched(false, false, batch, m, n, k, ac, bc, y);
        if (Autograd.needsGrad(a, b)) y.attach(new MatmulBackward(a, b, ac, bc));
        return y;
    }

    /**
     * {@code out[i] = op(a[i]) · op(b[i])} for each of {@code batch} contiguous row-major matrices,
     * op being a transpose where asked; the product is m x n over k. Small products spread over
     * the batch; a single large one is split by {@link Gemm} itself.
     */
    private static void batched(boolean transA, boolean transB, int batch, int m, int n, int k, Tensor a, Tensor b, Tensor out) {
        int lda = transA ? m : k, ldb = transB ? k : n;
        Parallel.forRange(batch, 1, (from, to) -> {
            for (int i = from; i < to; i++) {
                Gemm.sgemm(transA, transB, m, n, k, 1f, a.data(), (long) i * m * k, lda, b.data(), (long) i * k * n, ldb,
                        0f, out.data(), (long) i * m * n, n);
            }
        });
    }

    private static final class MatmulBackward extends GradFn {
        private final SavedTensor a, b;

        MatmulBackward(Tensor aIn, Tensor bIn, Tensor ac, Tensor bc) {
            super("matmul", aIn, bIn);
            this.a = save(ac);
            this.b = save(bc);
        }

        @Override
        protected Tensor[] backward(Tensor g) {
            Tensor av = a.get(), bv = b.get();
            Tensor gc = g.contiguous();
            int m = av.size(-2), k = av.size(-1), n = bv.size(-1);
            int batch = (int) (av.numel() / ((long) m * k));
            Tensor ga = null, gb = null;
            if (needsGrad(0)) { // dA = dY · Bᵀ
                ga = Tensor.empty(DType.F32, "matmul.grad_a", av.shape());
                batched(false, true, batch, m, k, n, gc, bv, ga);
            }
            if (needsGrad(1)) { // dB = Aᵀ · dY
                gb = Tensor.empty(DType.F32, "matmul.grad_b", bv.shape());
                batched(true, false, batch, k, n, m, av, gc, gb);
            }
            return new Tensor[] {ga, gb};
        }
    }

    private static IllegalArgumentException mismatch(Tensor a, Tensor b) {
        return new IllegalArgumentException("matmul: shapes " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape()) + " do not match");
    }
}
