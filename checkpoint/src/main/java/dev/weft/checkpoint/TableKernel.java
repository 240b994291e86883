package dev.weft.checkpoint;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The reference kernel: one 256-entry product table per coefficient, one byte at a time. Slow,
 * obviously correct, and the yardstick the vector kernel is tested and benchmarked against.
 */
final class TableKernel implements GfKernel {
    private static final int BLOCK = 4096;
    private final int rows, cols;
    private final byte[][][] tables;

    TableKernel(int[][] coeffs) {
        rows = coeffs.length;
        cols = coeffs[0].length;
        tables = new byte[rows][cols][];
        for (int j = 0; j < rows; j++)
            for (int i = 0; i < cols; i++) {
                byte[] t = new byte[256];
                for (int x = 0; x < 256; x++) t[x] = (byte) Gf256.mul(coeffs[j][i], x);
                tables[j][i] = t;
            }
    }

    @Override
    public void apply(MemorySegment[] in, MemorySegment[] out, long from, long to) {
        byte[] src = new byte[BLOCK], acc = new byte[BLOCK];
        for (long base = from; base < to; base += BLOCK) {
            int n = (int) Math.min(BLOCK, to - base);
            for (int j = 0; j < rows; j++) {
                java.util.Arrays.fill(acc, 0, n, (byte) 0);
                for (int i = 0; i < cols; i++) {
                    MemorySegment.copy(in[i], ValueLayout.JAVA_BYTE, base, src, 0, n);
                    byte[] t = tables[j][i];
                    for (int b = 0; b < n; b++) acc[b] ^= t[src[b] & 0xFF];
                }
                MemorySegment.copy(acc, 0, out[j], ValueLayout.JAVA_BYTE, base, n);
            }
        }
    }
}
