package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.GradFn;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.ElementwiseKernels;
import dev.weft.core.kernels.Parallel;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Token embedding: rows of a [V, d] table gathered by id. The backward scatter-adds gradient rows
 * into the table's gradient; threads own column ranges of the table and walk the tokens in order,
 * so repeated ids never race and every sum has the same order on every run.
 */
public final class Embedding {
    private Embedding() {}

    /**
     * {@code weight[V, d]} rows for {@code ids}, shaped {@code [idsShape..., d]} ({@code [ids.length, d]}
     * when no shape is given).
     */
    public static Tensor lookup(Tensor weight, int[] ids, int... idsShape) {
        return lookupRows(weight, 0, weight.dim() == 2 ? weight.size(0) : 0, ids, idsShape);
    }

    /**
     * As {@link #lookup}, where {@code weight} holds rows {@code firstRow ..} of a table of
     * {@code vocab} rows (a vocabulary-parallel block): ids outside the block give zero rows, and
     * add nothing to the gradient.
     */
    public static Tensor lookupRows(Tensor weight, int firstRow, int vocab, int[] ids, int... idsShape) {
        if (weight.dim() != 2)
            throw new IllegalArgumentException("embedding: weight must be 2-D [vocab, dim], got " + Dense.shape(weight));
        int[] shape = idsShape.length == 0 ? new int[] {ids.length} : idsShape.clone();
        if (Tensor.numel(shape) != ids.length)
            throw new IllegalArgumentException("embedding: idsShape " + Arrays.toString(shape) + " holds " + Tensor.numel(shape)
                    + " ids but " + ids.length + " were given");
        int rows = weight.size(0), d = weight.size(1);
        if (firstRow < 0 || firstRow + rows > vocab)
            throw new IllegalArgumentException("embedding: rows " + firstRow + ".." + (firstRow + rows) + " are not within a vocabulary of " + vocab);
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocab)
                throw new IllegalArgumentException("embedding: id " + ids[i] + " at position " + i + " is out of range for a vocabulary of "
                        + vocab + " (allowed 0.." + (vocab - 1) + ")");
        }
        int[] local = new int[ids.length]; // row in this block, or -1
        for (int i = 0; i < ids.length; i++) local[i] = ids[i] >= firstRow && ids[i] < firstRow + rows ? ids[i] - firstRow : -1;
        int[] outShape = Arrays.copyOf(shape, shape.length + 1);
        outShape[shape.length] = d;
        Tensor wc = Dense.of(weight);
        Tensor out = Tensor.empty(DType.F32, "embedding", outShape);
        MemorySegment w = wc.data(), y = out.data();
        long rowBytes = d * 4L;
        Parallel.forRange(ids.length, Math.max(1, (1 << 14) / Math.max(1, d)), (from, to) -> {
            for (int t = from; t < to; t++) {
                if (local[t] >= 0) MemorySegment.copy(w, local[t] * rowBytes, y, t * rowBytes, rowBytes);
                else y.asSlice(t * rowBytes, rowBytes).fill((byte) 0);
            }
        });
        Dense.release(wc, weight);
        if (Autograd.needsGrad(weight)) out.attach(new EmbeddingBackward(weight, local, rows, d));
        return out;
    }

    private static final class EmbeddingBackward extends GradFn {
        private final int[] ids;
        private final int vocab, d;

        EmbeddingBackward(Tensor weight, int[] ids, int vocab, int d) {
            super("embedding", weight);
            this.ids = ids;
            this.vocab = vocab;
            this.d = d;
        }

        @Override
        protected Tensor[] backward(Tensor gIn) {
            Tensor g = Dense.of(gIn);
            if (defersGradient(0)) {
                // Postponed whole: holding the token gradients costs far less than a [vocab, d] result.
                Tensor dy = g == gIn ? gIn.detach() : g;
                deferGradient(0, () -> {
                    try (dy) {
                        return scatter(dy);
                    }
                });
                return new Tensor[] {null};
            }
            Tensor gw = scatter(g);
            Dense.release(g, gIn);
            return new Tensor[] {gw};
        }

        private Tensor scatter(Tensor g) {
            Tensor gw = Tensor.zeros(vocab, d);
            MemorySegment gm = g.data(), wm = gw.data();
            Parallel.forRange(d, 64, (c0, c1) -> {
                for (int t = 0; t < ids.length; t++)
                    if (ids[t] >= 0) ElementwiseKernels.accumulate(gm, (long) t * d + c0, wm, (long) ids[t] * d + c0, c1 - c0);
            });
            return gw;
        }
    }
}
