package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.Tensor;

import java.util.Arrays;

/** Small helpers the ops share: contiguous float32 operands for kernels, shape text for errors. */
final class Dense {
    private Dense() {}

    /**
     * The tensor itself when it is contiguous float32, else a contiguous float32 copy. The copy is
     * made without recording a graph node: the op attaches its own backward to the original input.
     */
    static Tensor of(Tensor t) {
        try (var ignored = Autograd.noGrad()) {
            return t.contiguous();
        }
    }

    /** Frees a copy that {@link #of} made, once the op no longer needs it; never the caller's tensor. */
    static void release(Tensor copy, Tensor original) {
        if (copy != original) copy.close();
    }

    static String shape(Tensor t) {
        return Arrays.toString(t.shape());
    }

    /** Rows of length {@code lastDim} in a tensor of {@code numel} elements, as an int for the kernels. */
    static int rows(long numel, int lastDim, String op) {
        long rows = lastDim == 0 ? 0 : numel / lastDim;
        if (rows > Integer.MAX_VALUE) throw new IllegalArgumentException(op + ": " + rows + " rows is more than the kernels index");
        return (int) rows;
    }

    static int elements(Tensor t, String op) {
        long n = t.numel();
        if (n > Integer.MAX_VALUE) throw new IllegalArgumentException(op + ": " + n + " elements is more than the kernels index (2^31-1)");
        return (int) n;
    }
}
