package dev.weft.checkpoint;

import dev.weft.core.kernels.Parallel;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A systematic Reed-Solomon code RS(k, m) over GF(2^8): k data pieces, m parity pieces, any k of
 * the k + m recover the rest. The generator is the identity stacked on a k x m Cauchy matrix
 * (entry 1 / (x_j + y_i) with x_j = k + j, y_i = i, all distinct), so every square submatrix of the
 * parity part is invertible and the code is MDS for every k + m &lt;= 256 (this class allows 255).
 *
 * <p>Pieces are off-heap {@link MemorySegment}s of equal length. Work is split into stripes of
 * {@link #STRIPE} bytes that run concurrently on the compute pool ({@link Parallel}) when the
 * segments are shared (global, auto or shared arenas; confined ones keep the work on the calling
 * thread); a code made with {@link #serial()} always stays on the calling thread.
 */
public final class ReedSolomon {
    /** Which multiply kernel runs the code. */
    public enum Kernel {
        /** Vector API table-by-shuffle kernel (the default). */
        VECTOR,
        /** Byte-at-a-time 256-entry table lookups: the reference. */
        REFERENCE
    }

    /** Bytes per concurrent stripe: large enough to amortise a hand-off, small enough to spread. */
    static final int STRIPE = 256 * 1024;

    private final int k, m;
    private final Kernel kernel;
    private final boolean parallel;
    private final int[][] parity;        // m x k
    private final GfKernel encoder;

    private ReedSolomon(int k, int m, Kernel kernel, boolean parallel) {
        this.k = k;
        this.m = m;
        this.kernel = kernel;
        this.parallel = parallel;
        this.parity = new int[m][k];
        for (int j = 0; j < m; j++)
            for (int i = 0; i < k; i++) parity[j][i] = Gf256.inv((k + j) ^ i);
        this.encoder = m == 0 ? null : kernelFor(parity);
    }

    /** RS(k, m) on the vector kernel, concurrent over stripes. */
    public static ReedSolomon of(int k, int m) {
        return of(k, m, Kernel.VECTOR);
    }

    public static ReedSolomon of(int k, int m, Kernel kernel) {
        if (k < 1) throw new IllegalArgumentException("RS(k, m): k (data pieces) must be >= 1, got " + k);
        if (m < 0) throw new IllegalArgumentException("RS(k, m): m (parity pieces) must be >= 0, got " + m);
        if (k + m > 255) throw new IllegalArgumentException("RS(k, m): k + m must be <= 255 over GF(2^8), got " + k + " + " + m);
        return new ReedSolomon(k, m, kernel, true);
    }

    /** The same code, running on the calling thread only (for per-core measurement). */
    public ReedSolomon serial() {
        return new ReedSolomon(k, m, kernel, false);
    }

    public int dataPieces() { return k; }
    public int parityPieces() { return m; }
    public int totalPieces() { return k + m; }
    public Kernel kernel() { return kernel; }

    /** Computes the m parity pieces from the k data pieces; all pieces must have the same length. */
    public void encode(MemorySegment[] data, MemorySegment[] parityOut) {
        if (data.length != k) throw new IllegalArgumentException("encode: expected " + k + " data pieces, got " + data.length);
        if (parityOut.length != m) throw new IllegalArgumentException("encode: expected " + m + " parity pieces, got " + parityOut.length);
        long len = sameLength(data, parityOut);
        if (m > 0) run(encoder, data, parityOut, len);
    }

    /**
     * Rebuilds the missing pieces in place. {@code pieces} holds k + m segments (data first, then
     * parity), all the same length; {@code present[i]} says whether piece i holds valid bytes. At
     * least k must be present. Returns the indices rebuilt, in increasing order.
     */
    public int[] reconstruct(MemorySegment[] pieces, boolean[] present) {
        if (pieces.length != k + m || present.length != k + m)
            throw new IllegalArgumentException("reconstruct: expected " + (k + m) + " pieces and flags, got " + pieces.length + " and " + present.length);
        long len = sameLength(pieces);
        int[] have = new int[k];
        int n = 0;
        List<Integer> missing = new ArrayList<>();
        for (int i = 0; i < k + m; i++) {
            if (present[i] && n < k) have[n++] = i;
            else if (!present[i]) missing.add(i);
        }
        if (n < k)
            throw new IllegalArgumentException("reconstruct: RS(" + k + ", " + m + ") needs " + k + " pieces, only " + n
                    + " present; missing " + missing);
        if (missing.isEmpty()) return new int[0];
        // Rows of the generator for the surviving pieces; its inverse maps them back to data.
        int[][] sub = new int[k][];
        for (int r = 0; r < k; r++) sub[r] = generatorRow(have[r]);
        int[][] decode = Gf256.invert(sub);
        int[][] rows = new int[missing.size()][];
        for (int r = 0; r < rows.length; r++) {
            int idx = missing.get(r);
            rows[r] = idx < k ? decode[idx] : Gf256.multiply(new int[][]{parity[idx - k]}, decode)[0];
        }
        MemorySegment[] in = new MemorySegment[k], out = new MemorySegment[rows.length];
        for (int r = 0; r < k; r++) in[r] = pieces[have[r]];
        for (int r = 0; r < rows.length; r++) out[r] = pieces[missing.get(r)];
        run(kernelFor(rows), in, out, len);
        return missing.stream().mapToInt(Integer::intValue).toArray();
    }

    private int[] generatorRow(int piece) {
        if (piece >= k) return parity[piece - k].clone();
        int[] row = new int[k];
        row[piece] = 1;
        return row;
    }

    private GfKernel kernelFor(int[][] coeffs) {
        return kernel == Kernel.VECTOR ? new VectorKernel(coeffs) : new TableKernel(coeffs);
    }

    private void run(GfKernel g, MemorySegment[] in, MemorySegment[] out, long len) {
        long stripes = (len + STRIPE - 1) / STRIPE;
        if (!parallel || stripes <= 1 || !shareable(in) || !shareable(out)) {
            g.apply(in, out, 0, len);
            return;
        }
        Parallel.forRange(Math.toIntExact(stripes), 1, (from, to) ->
                g.apply(in, out, (long) from * STRIPE, Math.min(len, (long) to * STRIPE)));
    }

    /** An unstarted thread: segments it may access may be handed to the pool (confined ones may not). */
    private static final Thread ANOTHER = new Thread(() -> {});

    private static boolean shareable(MemorySegment[] segments) {
        for (MemorySegment s : segments) if (!s.isAccessibleBy(ANOTHER)) return false;
        return true;
    }

    private static long sameLength(MemorySegment[]... groups) {
        long len = -1;
        for (MemorySegment[] g : groups)
            for (MemorySegment s : g) {
                if (len < 0) len = s.byteSize();
                else if (s.byteSize() != len)
                    throw new IllegalArgumentException("all pieces must have the same length: found " + len + " and " + s.byteSize() + " bytes");
            }
        return Math.max(0, len);
    }

    @Override
    public String toString() {
        return "RS(" + k + ", " + m + ", " + kernel + ")";
    }

    /** The m x k parity matrix (for tests and documentation). */
    int[][] parityMatrix() {
        int[][] c = new int[m][];
        for (int j = 0; j < m; j++) c[j] = Arrays.copyOf(parity[j], k);
        return c;
    }
}
