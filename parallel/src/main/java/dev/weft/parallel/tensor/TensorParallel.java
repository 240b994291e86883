package dev.weft.parallel.tensor;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.GradFn;
import dev.weft.core.Tensor;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.ReduceOp;

import java.lang.foreign.MemorySegment;

/**
 * The four communication ops of Megatron-style tensor parallelism, each an autograd op whose
 * backward is the forward's transpose:
 * <pre>
 *   copyToGroup            forward: identity             backward: all-reduce   (input of a column-parallel layer)
 *   reduceFromGroup        forward: all-reduce           backward: identity     (output of a row-parallel layer)
 *   gatherSequence         forward: all-gather along t   backward: reduce-scatter along t   (sequence parallelism)
 *   reduceScatterSequence  forward: reduce-scatter along t  backward: all-gather along t
 * </pre>
 * Sequence-parallel tensors are [b, t / size, d] blocks of [b, t, d]: rank r holds positions
 * [r t / size, (r + 1) t / size) of every sequence.
 */
public final class TensorParallel {
    private TensorParallel() {}

    public static Tensor copyToGroup(Tensor x, ProcessGroup group) {
        if (!Autograd.needsGrad(x)) return x;
        Tensor alias = x.detach();
        return alias.attach(new Transposed("tp.copy", x, g -> allReduced(g, group)));
    }

    public static Tensor reduceFromGroup(Tensor x, ProcessGroup group) {
        Tensor y = allReduced(x, group);
        return Autograd.needsGrad(x) ? y.attach(new Transposed("tp.reduce", x, Tensor::detach)) : y;
    }

    public static Tensor gatherSequence(Tensor x, ProcessGroup group) {
        Tensor y = gathered(x, group);
        return Autograd.needsGrad(x) ? y.attach(new Transposed("sp.gather", x, g -> reduceScattered(g, group))) : y;
    }

    public static Tensor reduceScatterSequence(Tensor x, ProcessGroup group) {
        Tensor y = reduceScattered(x, group);
        return Autograd.needsGrad(x) ? y.attach(new Transposed("sp.reduce_scatter", x, g -> gathered(g, group))) : y;
    }

    /** A one-input op whose backward applies {@code transpose} to the output's gradient. */
    private static final class Transposed extends GradFn {
        private final java.util.function.UnaryOperator<Tensor> transpose;

        Transposed(String name, Tensor input, java.util.function.UnaryOperator<Tensor> transpose) {
            super(name, input);
            this.transpose = transpose;
        }

        @Override
        protected Tensor[] backward(Tensor gradOutput) {
            return new Tensor[] {transpose.apply(gradOutput)};
        }
    }

    private static Tensor allReduced(Tensor x, ProcessGroup group) {
        Tensor y = Tensor.empty(DType.F32, "tp.activations", x.shape());
        copy(x, y);
        group.allReduce(y, ReduceOp.SUM);
        return y;
    }

    /** [b, tl, d] on each rank → [b, size tl, d]: gathered rank-major, then laid out sequence-major. */
    private static Tensor gathered(Tensor x, ProcessGroup group) {
        int[] s = sequenceShape(x, "gather");
        int p = group.size(), b = s[0], tl = s[1], d = s[2];
        Tensor in = x.detach().contiguous();
        int[] full = {b, tl * p, d};
        Tensor y = Tensor.empty(DType.F32, "tp.activations", full);
        if (b == 1) {
            group.allGather(in, y);
        } else {
            Tensor blocks = Tensor.empty(DType.F32, "tp.activations", p, b, tl, d);
            group.allGather(in, blocks);
            long run = (long) tl * d * 4;
            for (int r = 0; r < p; r++)
                for (int i = 0; i < b; i++)
                    MemorySegment.copy(blocks.data(), ((long) r * b + i) * run, y.data(), ((long) i * p + r) * run, run);
            blocks.close();
        }
        in.close();
        return y;
    }

    /** [b, t, d] partial sums on each rank → this rank's [b, t / size, d] block of their sum. */
    private static Tensor reduceScattered(Tensor x, ProcessGroup group) {
        int[] s = sequenceShape(x, "reduce-scatter");
        int p = group.size(), b = s[0], t = s[1], d = s[2];
        if (t % p != 0)
            throw new IllegalArgumentException("sequence parallelism: sequence length " + t + " is not divisible by the tensor-parallel size " + p);
        int tl = t / p;
        Tensor blocks = Tensor.empty(DType.F32, "tp.activations", p, b, tl, d);
        Tensor in = x.detach().contiguous();
        long run = (long) tl * d * 4;
        for (int i = 0; i < b; i++)
            for (int r = 0; r < p; r++)
                MemorySegment.copy(in.data(), ((long) i * p + r) * run, blocks.data(), ((long) r * b + i) * run, run);
        in.close();
        Tensor y = Tensor.empty(DType.F32, "tp.activations", b, tl, d);
        group.reduceScatter(blocks, y, ReduceOp.SUM);
        blocks.close();
        return y;
    }

    private static int[] sequenceShape(Tensor x, String op) {
        if (x.dim() != 3) throw new IllegalArgumentException("sequence parallelism: " + op + " needs [batch, seq, dim], got " + java.util.Arrays.toString(x.shape()));
        return x.shape();
    }

    private static void copy(Tensor from, Tensor to) {
        Tensor c = from.detach().contiguous();
        MemorySegment.copy(c.data(), 0, to.data(), 0, c.numel() * 4);
        if (c != from) c.close();
    }
}
