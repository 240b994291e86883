package dev.weft.parallel.tensor;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.Parallel;
import dev.weft.core.ops.CrossEntropy;
import dev.weft.core.kernels.SoftmaxKernels;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.ReduceOp;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Mean cross-entropy over logits whose vocabulary is split across a tensor-parallel group: each
 * rank holds columns [first, first + V / size) of every row, and the full-vocabulary logits are
 * never gathered. Forward all-reduces three numbers per row (the row max, then the sum of exps and
 * the target's logit); backward is local, one process's ({@link CrossEntropy}) on this rank's columns.
 * Its summation order differs from one process's (a max and a sum over blocks), so the loss agrees
 * to float rounding, not to the bit.
 */
public final class VocabParallelCrossEntropy {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private VocabParallelCrossEntropy() {}

    /** {@code logits} [N, V / size] hold vocabulary columns from {@code first}; targets are global ids (or ignoreIndex). */
    public static Tensor loss(Tensor logits, int[] targets, int ignoreIndex, int first, int vocab, ProcessGroup group) {
        if (logits.dim() != 2) throw new IllegalArgumentException("cross_entropy: logits must be 2-D [rows, vocab block], got " + java.util.Arrays.toString(logits.shape()));
        int n = logits.size(0), v = logits.size(1);
        if (targets.length != n) throw new IllegalArgumentException("cross_entropy: " + targets.length + " targets for " + n + " rows of logits");
        int count = 0;
        for (int r = 0; r < n; r++) {
            int t = targets[r];
            if (t == ignoreIndex) continue;
            if (t < 0 || t >= vocab)
                throw new IllegalArgumentException("cross_entropy: target " + t + " at row " + r + " is out of range for " + vocab + " classes");
            count++;
        }
        Tensor xc = logits.detach().contiguous();
        MemorySegment xm = xc.data();
        Tensor max = Tensor.empty(DType.F32, "cross_entropy.max", n);
        MemorySegment mm = max.data();
        Parallel.forRange(n, Math.max(1, (1 << 14) / Math.max(1, v)), (from, to) -> {
            for (int r = from; r < to; r++) mm.setAtIndex(F, r, SoftmaxKernels.max(xm, (long) r * v, v));
        });
        group.allReduce(max, ReduceOp.MAX);
        Tensor sums = Tensor.empty(DType.F32, "cross_entropy.sums", 2, n); // row 0: Σ exp(x - max), row 1: the target's logit
        MemorySegment sm = sums.data();
        Parallel.forRange(n, Math.max(1, (1 << 14) / Math.max(1, v)), (from, to) -> {
            for (int r = from; r < to; r++) {
                int t = targets[r];
                boolean ignored = t == ignoreIndex;
                sm.setAtIndex(F, r, ignored ? 0f : (float) SoftmaxKernels.sumExp(xm, (long) r * v, v, mm.getAtIndex(F, r)));
                sm.setAtIndex(F, n + r, !ignored && t >= first && t < first + v ? xm.getAtIndex(F, (long) r * v + t - first) : 0f);
            }
        });
        group.allReduce(sums, ReduceOp.SUM);
        Tensor lse = Tensor.empty(DType.F32, "cross_entropy.lse", n);
        MemorySegment lm = lse.data();
        double total = 0; // row order: the same sum on every rank and whatever the thread count
        for (int r = 0; r < n; r++) {
            if (targets[r] == ignoreIndex) {
                lm.setAtIndex(F, r, 0f);
                continue;
            }
            float l = (float) (mm.getAtIndex(F, r) + StrictMath.log(sm.getAtIndex(F, r)));
            lm.setAtIndex(F, r, l);
            total += l - sm.getAtIndex(F, n + r);
        }
        max.close();
        sums.close();
        Tensor out = Tensor.empty(DType.F32, "cross_entropy", new int[0]);
        out.data().setAtIndex(F, 0, count == 0 ? 0f : (float) (total / count));
        if (Autograd.needsGrad(logits)) CrossEntropy.attachBackward(out, logits, xc, lse, targets.clone(), ignoreIndex, count, first);
        else {
            lse.close();
            xc.close();
        }
        return out;
    }
}
