package dev.weft.checkpoint;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * The fast kernel, on the Vector API. Multiplying a vector of bytes x by a constant c is done
 * with table lookups done by byte shuffles, never with per-byte loads:
 * <ul>
 *   <li>{@link Mode#NIBBLE} (portable): c*x = T_lo[x & 15] ^ T_hi[x >>> 4], two 16-entry tables
 *       looked up with {@code selectFrom} (a PSHUFB/VPERMB).</li>
 *   <li>{@link Mode#SEVEN_BIT} (wide vectors, 64 lanes): c*x = T[x & 127] ^ (x &lt; 0 ? c*128 : 0),
 *       one 128-entry table looked up with the two-table {@code selectFrom} (a VPERMI2B), which
 *       halves the shuffles. It needs at least 64 byte lanes so that two vectors hold 128 entries.</li>
 * </ul>
 * For each group of up to four outputs, each input vector is loaded once and accumulated into
 * registers, and each output vector is stored once.
 */
final class VectorKernel implements GfKernel {
    enum Mode { NIBBLE, SEVEN_BIT }

    static final VectorSpecies<Byte> S = ByteVector.SPECIES_PREFERRED;
    static final int V = S.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    static final Mode DEFAULT_MODE = V >= 64 ? Mode.SEVEN_BIT : Mode.NIBBLE;

    private final int rows, cols;
    private final Mode mode;
    /** Per (row, col): two V-byte tables (nibble: low/high; seven-bit: products of 0..127). */
    private final byte[] tables;
    /** Per (row, col), seven-bit mode: c*128 repeated across V lanes. */
    private final byte[] top;
    private final TableKernel tail;

    VectorKernel(int[][] coeffs) {
        this(coeffs, DEFAULT_MODE);
    }

    VectorKernel(int[][] coeffs, Mode mode) {
        if (mode == Mode.SEVEN_BIT && V < 64)
            throw new IllegalArgumentException("seven-bit mode needs 64 byte lanes, this CPU has " + V);
        this.rows = coeffs.length;
        this.cols = coeffs[0].length;
        this.mode = mode;
        this.tables = new byte[rows * cols * 2 * V];
        this.top = new byte[rows * cols * V];
        for (int j = 0; j < rows; j++)
            for (int i = 0; i < cols; i++) {
                int c = coeffs[j][i], t = (j * cols + i) * 2 * V;
                if (mode == Mode.NIBBLE) {
                    for (int x = 0; x < 16; x++) {
                        tables[t + x] = (byte) Gf256.mul(c, x);
                        tables[t + V + x] = (byte) Gf256.mul(c, x << 4);
                    }
                } else {
                    for (int x = 0; x < 128; x++) tables[t + x] = (byte) Gf256.mul(c, x);
                    java.util.Arrays.fill(top, (j * cols + i) * V, (j * cols + i + 1) * V, (byte) Gf256.mul(c, 128));
                }
            }
        this.tail = new TableKernel(coeffs);
    }

    @Override
    public void apply(MemorySegment[] in, MemorySegment[] out, long from, long to) {
        long bound = from + (to - from) / V * V;
        for (int j0 = 0; j0 < rows; j0 += 4) {
            int g = Math.min(4, rows - j0);
            if (mode == Mode.SEVEN_BIT) sevenBit(in, out, j0, g, from, bound);
            else nibble(in, out, j0, g, from, bound);
        }
        if (bound < to) tail.apply(in, out, bound, to);
    }

    private ByteVector table(int t) {
        return ByteVector.fromArray(S, tables, t);
    }

    private void nibble(MemorySegment[] in, MemorySegment[] out, int j0, int g, long from, long bound) {
        int stride = cols * 2 * V;
        for (long o = from; o < bound; o += V) {
            ByteVector a0 = ByteVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
            for (int i = 0; i < cols; i++) {
                ByteVector x = ByteVector.fromMemorySegment(S, in[i], o, LE);
                ByteVector lo = x.and((byte) 0x0F);
                ByteVector hi = x.lanewise(VectorOperators.LSHR, 4);
                int t = (j0 * cols + i) * 2 * V;
                a0 = a0.lanewise(VectorOperators.XOR, lo.selectFrom(table(t))).lanewise(VectorOperators.XOR, hi.selectFrom(table(t + V)));
                if (g > 1) a1 = a1.lanewise(VectorOperators.XOR, lo.selectFrom(table(t + stride))).lanewise(VectorOperators.XOR, hi.selectFrom(table(t + stride + V)));
                if (g > 2) a2 = a2.lanewise(VectorOperators.XOR, lo.selectFrom(table(t + 2 * stride))).lanewise(VectorOperators.XOR, hi.selectFrom(table(t + 2 * stride + V)));
                if (g > 3) a3 = a3.lanewise(VectorOperators.XOR, lo.selectFrom(table(t + 3 * stride))).lanewise(VectorOperators.XOR, hi.selectFrom(table(t + 3 * stride + V)));
            }
            a0.intoMemorySegment(out[j0], o, LE);
            if (g > 1) a1.intoMemorySegment(out[j0 + 1], o, LE);
            if (g > 2) a2.intoMemorySegment(out[j0 + 2], o, LE);
            if (g > 3) a3.intoMemorySegment(out[j0 + 3], o, LE);
        }
    }

    private void sevenBit(MemorySegment[] in, MemorySegment[] out, int j0, int g, long from, long bound) {
        int stride = cols * 2 * V, topStride = cols * V;
        for (long o = from; o < bound; o += V) {
            ByteVector a0 = ByteVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
            for (int i = 0; i < cols; i++) {
                ByteVector x = ByteVector.fromMemorySegment(S, in[i], o, LE);
                VectorMask<Byte> high = x.lt((byte) 0);
                int t = (j0 * cols + i) * 2 * V, p = (j0 * cols + i) * V;
                a0 = a0.lanewise(VectorOperators.XOR, x.selectFrom(table(t), table(t + V)))
                        .lanewise(VectorOperators.XOR, ByteVector.fromArray(S, top, p), high);
                if (g > 1) a1 = a1.lanewise(VectorOperators.XOR, x.selectFrom(table(t + stride), table(t + stride + V)))
                        .lanewise(VectorOperators.XOR, ByteVector.fromArray(S, top, p + topStride), high);
                if (g > 2) a2 = a2.lanewise(VectorOperators.XOR, x.selectFrom(table(t + 2 * stride), table(t + 2 * stride + V)))
                        .lanewise(VectorOperators.XOR, ByteVector.fromArray(S, top, p + 2 * topStride), high);
                if (g > 3) a3 = a3.lanewise(VectorOperators.XOR, x.selectFrom(table(t + 3 * stride), table(t + 3 * stride + V)))
                        .lanewise(VectorOperators.XOR, ByteVector.fromArray(S, top, p + 3 * topStride), high);
            }
            a0.intoMemorySegment(out[j0], o, LE);
            if (g > 1) a1.intoMemorySegment(out[j0 + 1], o, LE);
            if (g > 2) a2.intoMemorySegment(out[j0 + 2], o, LE);
            if (g > 3) a3.intoMemorySegment(out[j0 + 3], o, LE);
        }
    }
}
