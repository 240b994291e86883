package dev.weft.checkpoint;

import dev.weft.core.Tensor;
import dev.weft.parallel.ProcessGroup;

/**
 * All-gathers small integer tables over a process group, whose collectives carry float32. Each
 * long travels as four 16-bit halves, each exact as a float, so no bit pattern can become a NaN a
 * transport might rewrite.
 */
final class IntExchange {
    private IntExchange() {}

    /** Every rank's {@code row} (the same length on every rank), in rank order. */
    static long[][] allGather(ProcessGroup group, long[] row) {
        int n = row.length, world = group.size();
        float[] mine = new float[4 * n];
        for (int j = 0; j < n; j++)
            for (int q = 0; q < 4; q++) mine[4 * j + q] = (row[j] >>> (16 * q)) & 0xffff;
        try (Tensor in = Tensor.of(mine, 4 * n); Tensor out = Tensor.empty(world * 4 * n)) {
            group.allGather(in, out);
            float[] got = out.toArray();
            long[][] rows = new long[world][n];
            for (int r = 0; r < world; r++)
                for (int j = 0; j < n; j++)
                    for (int q = 0; q < 4; q++) rows[r][j] |= ((long) got[r * 4 * n + 4 * j + q]) << (16 * q);
            return rows;
        }
    }
}
