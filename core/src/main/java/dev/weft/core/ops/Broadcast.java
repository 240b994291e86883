package dev.weft.core.ops;

import dev.weft.core.Tensor;
import dev.weft.core.kernels.ElementwiseKernels;
import dev.weft.core.kernels.Parallel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Numpy broadcasting for contiguous operands. Shapes align at the right; a dimension of size 1
 * (or a missing leading one) repeats. Dimensions that are laid out alike in every operand are
 * merged first, so the work becomes rows of one inner run that the kernels stream through:
 * {@code [B,T,d] op [d]} is B*T rows of d against one row, {@code [B,T,d] op [B,T,1]} is B*T rows
 * against one repeated value each.
 */
final class Broadcast {
    private static final int GRAIN = 1 << 14;

    private Broadcast() {}

    /** The broadcast shape of a and b, or an error naming the op and the clashing dimension. */
    static int[] shape(String op, int[] a, int[] b) {
        int r = Math.max(a.length, b.length);
        int[] out = new int[r];
        for (int k = 0; k < r; k++) {
            int da = k - (r - a.length), db = k - (r - b.length);
            int sa = da < 0 ? 1 : a[da], sb = db < 0 ? 1 : b[db];
            if (sa != sb && sa != 1 && sb != 1)
                throw new IllegalArgumentException(op + ": shapes " + Arrays.toString(a) + " and " + Arrays.toString(b)
                        + " cannot be broadcast (dimension " + (k - r) + " is " + sa + " vs " + sb + "; sizes must match or one must be 1)");
            out[k] = sa == 1 ? sb : sa;
        }
        return out;
    }

    /** Element strides of a contiguous tensor of shape {@code s} read as shape {@code out}: 0 where it repeats. */
    private static long[] strides(int[] s, int[] out) {
        long[] st = new long[out.length];
        long acc = 1;
        for (int k = out.length - 1; k >= 0; k--) {
            int d = k - (out.length - s.length);
            if (d < 0 || s[d] == 1) st[k] = 0;
            else {
                st[k] = acc;
                acc *= s[d];
            }
        }
        return st;
    }

    /** A loop nest after merging: outer sizes and per-operand outer strides, then one inner run. */
    private record Nest(int[] outer, long[][] outerStrides, int inner, int[] innerStrides) {
        long rows() {
            long n = 1;
            for (int s : outer) n *= s;
            return n;
        }

        /** Element offset of outer row {@code row} in operand {@code k}. */
        long offset(int k, long row) {
            long off = 0;
            for (int d = outer.length - 1; d >= 0; d--) {
                off += (row % outer[d]) * outerStrides[k][d];
                row /= outer[d];
            }
            return off;
        }
    }

    /** Drops size-1 dimensions and merges neighbours whose strides chain in every operand. */
    private static Nest nest(int[] shape, long[]... strides) {
        int n = strides.length;
        int[] sizes = new int[shape.length];
        long[][] st = new long[n][shape.length];
        int m = 0;
        for (int d = 0; d < shape.length; d++) {
            if (shape[d] == 1) continue;
            boolean merge = m > 0;
            for (int k = 0; k < n && merge; k++) merge = st[k][m - 1] == strides[k][d] * shape[d];
            if (merge) {
                sizes[m - 1] *= shape[d];
                for (int k = 0; k < n; k++) st[k][m - 1] = strides[k][d];
            } else {
                sizes[m] = shape[d];
                for (int k = 0; k < n; k++) st[k][m] = strides[k][d];
                m++;
            }
        }
        if (m == 0) { // a single element
            int[] zero = new int[n];
            return new Nest(new int[0], new long[n][0], 1, zero);
        }
        int[] inner = new int[n];
        long[][] outerSt = new long[n][];
        for (int k = 0; k < n; k++) {
            inner[k] = (int) st[k][m - 1];
            outerSt[k] = Arrays.copyOf(st[k], m - 1);
        }
        return new Nest(Arrays.copyOf(sizes, m - 1), outerSt, sizes[m - 1], inner);
    }

    /** {@code out = a op b} with broadcasting; all three contiguous, out of the broadcast shape. */
    static void apply(int op, Tensor a, Tensor b, Tensor out) {
        int[] s = out.shape();
        Nest nest = nest(s, strides(a.shape(), s), strides(b.shape(), s), strides(s, s));
        MemorySegment am = a.data(), bm = b.data(), om = out.data();
        int inner = nest.inner(), sa = nest.innerStrides()[0], sb = nest.innerStrides()[1];
        int rows = Math.toIntExact(nest.rows());
        if (rows == 1) {
            Parallel.forRange(inner, GRAIN, (from, to) ->
                    ElementwiseKernels.binary(op, am, (long) from * sa, sa, bm, (long) from * sb, sb, om, from, to - from));
            return;
        }
        Parallel.forRange(rows, Math.max(1, GRAIN / Math.max(1, inner)), (from, to) -> {
            for (int r = from; r < to; r++)
                ElementwiseKernels.binary(op, am, nest.offset(0, r), sa, bm, nest.offset(1, r), sb, om, (long) r * inner, inner);
        });
    }

    /**
     * The gradient of a broadcast operand: {@code g} (contiguous, the broadcast shape) summed over
     * the dimensions along which the operand of shape {@code target} was repeated. Returns g itself
     * when nothing was repeated. Summation order is fixed (row order), whatever the thread count.
     */
    static Tensor sumTo(Tensor g, int[] target) {
        int[] s = g.shape();
        if (Arrays.equals(s, target)) return g;
        Tensor dst = Tensor.zeros(target);
        if (dst.numel() == 0 || g.numel() == 0) return dst;
        Nest nest = nest(s, strides(s, s), strides(target, s));
        MemorySegment gm = g.data(), dm = dst.data();
        int inner = nest.inner();
        int rows = Math.toIntExact(nest.rows());
        if (nest.innerStrides()[1] == 1) {
            // The inner run is kept: threads own column ranges and add every row in order, so no two
            // threads write the same element and each element sums its rows in the same order.
            Parallel.forRange(inner, 256, (c0, c1) -> {
                for (int r = 0; r < rows; r++)
                    ElementwiseKernels.accumulate(gm, (long) r * inner + c0, dm, nest.offset(1, r) + c0, c1 - c0);
            });
        } else {
            // The inner run is summed away: row sums in parallel, then added to their targets in row order.
            double[] rowSum = new double[rows];
            Parallel.forRange(rows, Math.max(1, GRAIN / inner), (from, to) -> {
                for (int r = from; r < to; r++) rowSum[r] = ElementwiseKernels.sumDouble(gm, (long) r * inner, inner);
            });
            double[] acc = new double[Math.toIntExact(dst.numel())];
            for (int r = 0; r < rows; r++) acc[(int) nest.offset(1, r)] += rowSum[r];
            for (int i = 0; i < acc.length; i++) dm.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (float) acc[i]);
        }
        return dst;
    }
}
