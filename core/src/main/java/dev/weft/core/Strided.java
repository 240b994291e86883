package dev.weft.core;

import java.lang.foreign.MemorySegment;

/** Copies between layouts: a strided float32 view into a contiguous float32 tensor. */
final class Strided {
    private Strided() {}

    static void copy(Tensor src, Tensor dst) {
        if (src.dtype() != DType.F32 || dst.dtype() != DType.F32 || !dst.isContiguous())
            throw new IllegalArgumentException("strided copy needs float32 source and contiguous float32 destination");
        int[] shape = src.shape();
        long[] st = src.strides();
        MemorySegment in = src.storage().segment();
        MemorySegment out = dst.data();
        int rank = shape.length;
        if (rank == 0) {
            out.setAtIndex(Tensor.F, 0, in.getAtIndex(Tensor.F, src.offset()));
            return;
        }
        long n = src.numel();
        if (n == 0) return;
        int inner = shape[rank - 1];
        long innerStride = st[rank - 1];
        int[] idx = new int[rank - 1];
        long o = 0;
        for (long done = 0; done < n; done += inner) {
            long base = src.offset();
            for (int d = 0; d < rank - 1; d++) base += idx[d] * st[d];
            if (innerStride == 1) {
                MemorySegment.copy(in, base * 4, out, o * 4, inner * 4L);
                o += inner;
            } else {
                for (int i = 0; i < inner; i++) out.setAtIndex(Tensor.F, o++, in.getAtIndex(Tensor.F, base + i * innerStride));
            }
            for (int d = rank - 2; d >= 0; d--) {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
    }
}
