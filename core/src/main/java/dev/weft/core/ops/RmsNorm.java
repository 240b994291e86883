package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.GradFn;
import dev.weft.core.SavedTensor;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.ElementwiseKernels;
import dev.weft.core.kernels.NormKernels;
import dev.weft.core.kernels.Parallel;

import java.lang.foreign.MemorySegment;

/**
 * RMS normalisation as Llama (and Hugging Face's LlamaRMSNorm) defines it:
 * {@code y = x / sqrt(mean(x²) + eps) * weight} over the last dimension, in float32. Forward and
 * backward are each one fused pass per row; only x and the per-row 1/rms are kept for backward.
 */
public final class RmsNorm {
    /**
     * Rows per partial weight gradient. The partials are added in block order, so the weight
     * gradient does not depend on how many threads ran.
     */
    private static final int ROW_BLOCK = 64;

    private RmsNorm() {}

    public static Tensor apply(Tensor x, Tensor weight, float eps) {
        if (x.dim() < 1) throw new IllegalArgumentException("rmsnorm: x must have at least 1 dimension, got a scalar");
        int d = x.size(-1);
        if (weight.dim() != 1 || weight.size(0) != d)
            throw new IllegalArgumentException("rmsnorm: weight must be [" + d + "] to match x " + Dense.shape(x) + ", got " + Dense.shape(weight));
        if (!(eps >= 0)) throw new IllegalArgumentException("rmsnorm: eps must be >= 0, got " + eps);
        Tensor xc = Dense.of(x), wc = Dense.of(weight);
        int rows = Dense.rows(x.numel(), d, "rmsnorm");
        Tensor y = Tensor.empty(DType.F32, "rmsnorm", x.shape());
        Tensor rstd = Tensor.empty(DType.F32, "rmsnorm.rstd", rows);
        MemorySegment xm = xc.data(), wm = wc.data(), ym = y.data(), rm = rstd.data();
        Parallel.forRange(rows, Math.max(1, (1 << 13) / Math.max(1, d)),
                (from, to) -> NormKernels.rmsNormForward(xm, wm, ym, rm, d, eps, from, to));
        if (Autograd.needsGrad(x, weight)) {
            y.attach(new RmsNormBackward(x, weight, xc, wc, rstd));
        } else {
            rstd.close();
            Dense.release(xc, x);
            Dense.release(wc, weight);
        }
        return y;
    }

    private static final class RmsNormBackward extends GradFn {
        private final SavedTensor x, w, rstd;

        RmsNormBackward(Tensor xIn, Tensor wIn, Tensor xc, Tensor wc, Tensor rstd) {
            super("rmsnorm", xIn, wIn);
            this.x = save(xc);
            this.w = save(wc);
            this.rstd = save(rstd);
        }

        @Override
        protected Tensor[] backward(Tensor gIn) {
            Tensor g = Dense.of(gIn), xv = x.get(), wv = w.get(), rv = rstd.get();
            int d = wv.size(0), rows = rv.size(0);
            Tensor gx = needsGrad(0) ? Tensor.empty(DType.F32, "rmsnorm.grad_input", xv.shape()) : null;
            int blocks = (rows + ROW_BLOCK - 1) / ROW_BLOCK;
            Tensor partial = needsGrad(1) ? Tensor.zeros(Math.max(1, blocks), d) : null;
            MemorySegment xm = xv.data(), wm = wv.data(), rm = rv.data(), gm = g.data();
            MemorySegment gxm = gx == null ? null : gx.data(), pm = partial == null ? null : partial.data();
            Parallel.forRange(blocks, 1, (from, to) -> {
                for (int b = from; b < to; b++)
                    NormKernels.rmsNormBackward(xm, wm, rm, gm, gxm, pm, (long) b * d, d, b * ROW_BLOCK, Math.min(rows, (b + 1) * ROW_BLOCK));
            });
            Tensor gw = null;
            if (partial != null) {
                gw = Tensor.zeros(d);
                MemorySegment gwm = gw.data();
                Parallel.forRange(d, 256, (c0, c1) -> {
                    for (int b = 0; b < blocks; b++) ElementwiseKernels.accumulate(pm, (long) b * d + c0, gwm, c0, c1 - c0);
                });
                partial.close();
            }
            Dense.release(g, gIn);
            return new Tensor[] {gx, gw};
        }
    }
}
