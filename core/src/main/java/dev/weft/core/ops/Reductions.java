package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.GradFn;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.ElementwiseKernels;
import dev.weft.core.kernels.Parallel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Sums and means, over everything or along one dimension. The summation order is fixed by the
 * shape alone (blocks and column ranges of constant size), never by the thread count, so a result
 * is bit-for-bit the same on any machine with the same vector width.
 */
public final class Reductions {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Elements per partial sum of a full reduction; the partials are then added in order. */
    private static final int BLOCK = 1 << 16;
    /** Columns per work item of a reduction along an outer dimension. */
    private static final int COLUMNS = 1024;

    private Reductions() {}

    /** The sum of all elements, shape []. */
    public static Tensor sum(Tensor a) {
        return all(a, false);
    }

    /** The mean of all elements, shape []; NaN for an empty tensor. */
    public static Tensor mean(Tensor a) {
        return all(a, true);
    }

    /** Sum along {@code dim} (negative counts from the end); keepDim leaves it as size 1. */
    public static Tensor sum(Tensor a, int dim, boolean keepDim) {
        return along(a, dim, keepDim, false);
    }

    /** Mean along {@code dim} (negative counts from the end); keepDim leaves it as size 1. */
    public static Tensor mean(Tensor a, int dim, boolean keepDim) {
        return along(a, dim, keepDim, true);
    }

    private static Tensor all(Tensor a, boolean mean) {
        String name = mean ? "mean" : "sum";
        Tensor ac = Dense.of(a);
        int n = Dense.elements(a, name);
        MemorySegment x = ac.data();
        int blocks = (n + BLOCK - 1) / BLOCK;
        double[] partial = new double[blocks];
        Parallel.forRange(blocks, 1, (from, to) -> {
            for (int k = from; k < to; k++) {
                int start = k * BLOCK;
                partial[k] = ElementwiseKernels.sumDouble(x, start, Math.min(BLOCK, n - start));
            }
        });
        double total = 0;
        for (double p : partial) total += p;
        float scale = mean ? 1f / n : 1f;
        Tensor out = Tensor.empty(DType.F32, name, new int[0]);
        out.data().setAtIndex(F, 0, (float) (mean ? total / n : total));
        Dense.release(ac, a);
        if (Autograd.needsGrad(a)) out.attach(new AllBackward(name, a, scale));
        return out;
    }

    private static final class AllBackward extends GradFn {
        private final float scale;
        private final int[] shape;

        AllBackward(String name, Tensor a, float scale) {
            super(name, a);
            this.scale = scale;
            this.shape = a.shape();
        }

        @Override
        protected Tensor[] backward(Tensor g) {
            Tensor ga = Tensor.empty(DType.F32, name() + ".grad", shape);
            float v = g.item() * scale;
            MemorySegment m = ga.data();
            int n = Math.toIntExact(ga.numel());
            Parallel.forRange(n, 1 << 15, (from, to) -> ElementwiseKernels.fill(m, from, to - from, v));
            return new Tensor[] {ga};
        }
    }

    private static Tensor along(Tensor a, int dim, boolean keepDim, boolean mean) {
        String name = mean ? "mean" : "sum";
        int[] s = a.shape();
        int d;
        try {
            d = a.axis(dim);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(name + ": dim " + dim + " is out of range for shape " + Arrays.toString(s)
                    + " (allowed " + -s.length + ".." + (s.length - 1) + ")");
        }
        int outer = 1, n = s[d], inner = 1;
        for (int k = 0; k < d; k++) outer *= s[k];
        for (int k = d + 1; k < s.length; k++) inner *= s[k];
        int[] outShape = reducedShape(s, d, keepDim);
        Tensor ac = Dense.of(a);
        Tensor out = Tensor.empty(DType.F32, name, outShape);
        MemorySegment x = ac.data(), y = out.data();
        float scale = mean ? 1f / n : 1f;
        int fOuter = outer, fInner = inner;
        if (inner == 1) {
            Parallel.forRange(outer, Math.max(1, (1 << 14) / Math.max(1, n)), (from, to) -> {
                for (int o = from; o < to; o++) {
                    double t = ElementwiseKernels.sumDouble(x, (long) o * n, n);
                    y.setAtIndex(F, o, (float) (mean ? t / n : t));
                }
            });
        } else {
            // Work item = (outer index, column range): each output element adds its n inputs in order.
            int chunks = (inner + COLUMNS - 1) / COLUMNS;
            Parallel.forRange(outer * chunks, 1, (from, to) -> {
                for (int w = from; w < to; w++) {
                    int o = w / chunks, c0 = (w % chunks) * COLUMNS, len = Math.min(COLUMNS, fInner - c0);
                    long dst = (long) o * fInner + c0;
                    ElementwiseKernels.fill(y, dst, len, 0f);
                    for (int j = 0; j < n; j++) ElementwiseKernels.accumulate(x, ((long) o * n + j) * fInner + c0, y, dst, len);
                    if (mean) ElementwiseKernels.affine(y, dst, scale, 0f, y, dst, len);
                }
            });
        }
        Dense.release(ac, a);
        if (Autograd.needsGrad(a)) out.attach(new AlongBackward(name, a, fOuter, n, fInner, scale));
        return out;
    }

    private static int[] reducedShape(int[] s, int d, boolean keepDim) {
        if (keepDim) {
            int[] r = s.clone();
            r[d] = 1;
            return r;
        }
        int[] r = new int[s.length - 1];
        for (int k = 0, j = 0; k < s.length; k++) if (k != d) r[j++] = s[k];
        return r;
    }

    private static final class AlongBackward extends GradFn {
        private final int[] shape;
        private final int outer, n, inner;
        private final float scale;

        AlongBackward(String name, Tensor a, int outer, int n, int inner, float scale) {
            super(name, a);
            this.shape = a.shape();
            this.outer = outer;
            this.n = n;
            this.inner = inner;
            this.scale = scale;
        }

        @Override
        protected Tensor[] backward(Tensor gIn) {
            Tensor g = Dense.of(gIn);
            Tensor ga = Tensor.empty(DType.F32, name() + ".grad", shape);
            MemorySegment gm = g.data(), m = ga.data();
            // Every input row (o, j) receives the output row o, scaled.
            Parallel.forRange(outer * n, Math.max(1, (1 << 14) / Math.max(1, inner)), (from, to) -> {
                for (int r = from; r < to; r++) {
                    int o = r / n;
                    if (inner == 1) m.setAtIndex(F, r, gm.getAtIndex(F, o) * scale);
                    else ElementwiseKernels.affine(gm, (long) o * inner, scale, 0f, m, (long) r * inner, inner);
                }
            });
            Dense.release(g, gIn);
            return new Tensor[] {ga};
        }
    }
}
