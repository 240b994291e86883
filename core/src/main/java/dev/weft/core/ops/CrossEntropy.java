package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.GradFn;
import dev.weft.core.SavedTensor;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.Parallel;
import dev.weft.core.kernels.SoftmaxKernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Mean cross-entropy of logits[N, V] against integer targets, fused: forward keeps one
 * log-sum-exp per row, backward writes {@code (softmax - onehot) / count} straight into the
 * gradient. Rows whose target is {@code ignoreIndex} (padding) add nothing and count for nothing;
 * when every row is ignored the loss is 0 and the gradient zero.
 */
public final class CrossEntropy {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private CrossEntropy() {}

    public static Tensor loss(Tensor logits, int[] targets, int ignoreIndex) {
        if (logits.dim() != 2) throw new IllegalArgumentException("cross_entropy: logits must be 2-D [rows, vocab], got " + Dense.shape(logits));
        int n = logits.size(0), v = logits.size(1);
        if (targets.length != n)
            throw new IllegalArgumentException("cross_entropy: " + targets.length + " targets for " + n + " rows of logits " + Dense.shape(logits));
        int count = 0;
        for (int r = 0; r < n; r++) {
            int t = targets[r];
            if (t == ignoreIndex) continue;
            if (t < 0 || t >= v)
                throw new IllegalArgumentException("cross_entropy: target " + t + " at row " + r + " is out of range for " + v
                        + " classes (allowed 0.." + (v - 1) + ", or ignoreIndex " + ignoreIndex + ")");
            count++;
        }
        Tensor xc = Dense.of(logits);
        Tensor lse = Tensor.empty(DType.F32, "cross_entropy.lse", n);
        MemorySegment xm = xc.data(), lm = lse.data();
        float[] rowLoss = new float[n];
        Parallel.forRange(n, Math.max(1, (1 << 14) / Math.max(1, v)), (from, to) -> {
            for (int r = from; r < to; r++) {
                int t = targets[r];
                if (t == ignoreIndex) {
                    lm.setAtIndex(F, r, 0f);
                    continue;
                }
                float l = SoftmaxKernels.logSumExp(xm, (long) r * v, v);
                lm.setAtIndex(F, r, l);
                rowLoss[r] = l - xm.getAtIndex(F, (long) r * v + t);
            }
        });
        double total = 0; // row order: the same sum whatever the thread count
        for (float l : rowLoss) total += l;
        Tensor out = Tensor.empty(DType.F32, "cross_entropy", new int[0]);
        out.data().setAtIndex(F, 0, count == 0 ? 0f : (float) (total / count));
        if (Autograd.needsGrad(logits)) attachBackward(out, logits, xc, lse, targets.clone(), ignoreIndex, count, 0);
        else {
            lse.close();
            Dense.release(xc, logits);
        }
        return out;
    }

    /**
     * Makes {@code loss} differentiable in {@code logits} (whose contiguous copy is {@code xc}):
     * {@code (softmax - onehot) / count} from each row's log-sum-exp {@code lse}, over logits that
     * hold the vocabulary's columns from {@code firstColumn} (0: all of it; a tensor-parallel block
     * otherwise). Keeps {@code xc} and {@code lse} for backward.
     */
    public static void attachBackward(Tensor loss, Tensor logits, Tensor xc, Tensor lse, int[] targets, int ignoreIndex, int count, int firstColumn) {
        loss.attach(new CrossEntropyBackward(logits, xc, lse, targets, ignoreIndex, count, firstColumn));
    }

    private static final class CrossEntropyBackward extends GradFn {
        private final SavedTensor logits, lse;
        private final int[] targets;
        private final int ignoreIndex, count, first;

        CrossEntropyBackward(Tensor in, Tensor xc, Tensor lse, int[] targets, int ignoreIndex, int count, int first) {
            super(first == 0 ? "cross_entropy" : "vocab_parallel_cross_entropy", in);
            this.logits = save(xc);
            this.lse = save(lse);
            this.targets = targets;
            this.ignoreIndex = ignoreIndex;
            this.count = count;
            this.first = first;
        }

        @Override
        protected Tensor[] backward(Tensor g) {
            Tensor xv = logits.get(), lv = lse.get();
            int n = xv.size(0), v = xv.size(1);
            Tensor gx = Tensor.empty(DType.F32, "cross_entropy.grad", n, v);
            float scale = count == 0 ? 0f : g.item() / count;
            MemorySegment xm = xv.data(), lm = lv.data(), gm = gx.data();
            Parallel.forRange(n, Math.max(1, (1 << 14) / Math.max(1, v)),
                    (from, to) -> SoftmaxKernels.crossEntropyGradient(xm, lm, targets, ignoreIndex, scale, first, v, from, to, gm));
            return new Tensor[] {gx};
        }
    }
}
