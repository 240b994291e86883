package dev.weft.checkpoint;

import java.lang.foreign.MemorySegment;

/**
 * Multiplies a matrix over GF(2^8) by a column of equally long byte streams:
 * {@code out[j][b] = XOR over i of coeffs[j][i] * in[i][b]} for every byte b in [from, to).
 * Encoding (parity rows) and reconstruction (rows of an inverted matrix) are both this product.
 */
interface GfKernel {
    /** Prepares a kernel for one coefficient matrix (rows = outputs, columns = inputs). */
    interface Factory {
        GfKernel forMatrix(int[][] coeffs);
    }

    void apply(MemorySegment[] in, MemorySegment[] out, long from, long to);
}
