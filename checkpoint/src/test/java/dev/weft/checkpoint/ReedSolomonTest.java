package dev.weft.checkpoint;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class ReedSolomonTest {
    private static MemorySegment[] random(Arena arena, int n, long len, Random rnd) {
        MemorySegment[] s = new MemorySegment[n];
        for (int i = 0; i < n; i++) {
            byte[] b = new byte[(int) len];
            rnd.nextBytes(b);
            s[i] = arena.allocate(Math.max(1, len), 64).asSlice(0, len);
            MemorySegment.copy(b, 0, s[i], ValueLayout.JAVA_BYTE, 0, b.length);
        }
        return s;
    }

    private static MemorySegment[] zeros(Arena arena, int n, long len) {
        MemorySegment[] s = new MemorySegment[n];
        for (int i = 0; i < n; i++) s[i] = arena.allocate(Math.max(1, len), 64).asSlice(0, len);
        return s;
    }

    /** Every subset of {0..n-1} of size 1..maxSize. */
    private static List<int[]> patterns(int n, int maxSize) {
        List<int[]> out = new ArrayList<>();
        for (int mask = 1; mask < 1 << n; mask++) {
            if (Integer.bitCount(mask) > maxSize) continue;
            int[] p = new int[Integer.bitCount(mask)];
            for (int i = 0, j = 0; i < n; i++) if ((mask & 1 << i) != 0) p[j++] = i;
            out.add(p);
        }
        return out;
    }

    @Test
    void fieldInverseAndMatrixInverseAreConsistent() {
        for (int a = 1; a < 256; a++) assertEquals(1, Gf256.mul(a, Gf256.inv(a)), "a=" + a);
        int[][] p = ReedSolomon.of(5, 3).parityMatrix();
        // Every square submatrix of a Cauchy matrix is invertible: check all 2x2 and the 3x3s.
        for (int r0 = 0; r0 < 3; r0++) for (int r1 = r0 + 1; r1 < 3; r1++)
            for (int c0 = 0; c0 < 5; c0++) for (int c1 = c0 + 1; c1 < 5; c1++)
                assertNotEquals(0, Gf256.mul(p[r0][c0], p[r1][c1]) ^ Gf256.mul(p[r0][c1], p[r1][c0]));
    }

    @Test
    void vectorKernelMatchesReferenceOnAllErasurePatterns() {
        int[][] codes = {{1, 1}, {2, 1}, {3, 2}, {4, 2}, {6, 3}, {8, 2}, {3, 4}};
        long[] sizes = {1, 63, 64, 65, 200, 4096 + 17};
        Random rnd = new Random(42);
        for (int[] km : codes) {
            int k = km[0], m = km[1], n = k + m;
            ReedSolomon fast = ReedSolomon.of(k, m), ref = ReedSolomon.of(k, m, ReedSolomon.Kernel.REFERENCE);
            for (long len : sizes) {
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment[] data = random(arena, k, len, rnd);
                    MemorySegment[] pf = zeros(arena, m, len), pr = zeros(arena, m, len);
                    fast.encode(data, pf);
                    ref.encode(data, pr);
                    for (int j = 0; j < m; j++) assertEquals(-1, pf[j].mismatch(pr[j]), "RS(" + k + "," + m + ") len " + len + " parity " + j);
                    MemorySegment[] full = new MemorySegment[n];
                    System.arraycopy(data, 0, full, 0, k);
                    System.arraycopy(pf, 0, full, k, m);
                    for (int[] lost : patterns(n, m)) {
                        MemorySegment[] work = zeros(arena, n, len);
                        boolean[] present = new boolean[n];
                        Arrays.fill(present, true);
                        for (int i = 0; i < n; i++) work[i].copyFrom(full[i]);
                        for (int i : lost) {
                            present[i] = false;
                            work[i].fill((byte) 0x5A);
                        }
                        int[] rebuilt = (lost.length % 2 == 0 ? fast : ref).reconstruct(work, present);
                        assertArrayEquals(lost, rebuilt);
                        for (int i = 0; i < n; i++)
                            assertEquals(-1, work[i].mismatch(full[i]), "RS(" + k + "," + m + ") len " + len + " lost " + Arrays.toString(lost) + " piece " + i);
                    }
                }
            }
        }
    }

    /** The portable mode, on whatever vectors this CPU has (256-bit with AVX2, where it is also the default). */
    @Test
    void nibbleModeMatchesReference() {
        assertModeMatchesReference(VectorKernel.Mode.NIBBLE);
    }

    @Test
    void sevenBitModeMatchesReference() {
        assumeTrue(VectorKernel.V >= 64, "the seven-bit mode needs 64-byte (512-bit) vectors; this CPU's are " + VectorKernel.V + " bytes");
        assertModeMatchesReference(VectorKernel.Mode.SEVEN_BIT);
    }

    /** 1000 bytes: whole vectors and a tail, against the scalar table kernel. */
    private static void assertModeMatchesReference(VectorKernel.Mode mode) {
        int[][] coeffs = ReedSolomon.of(5, 3).parityMatrix();
        Random rnd = new Random(7);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment[] in = random(arena, 5, 1000, rnd);
            MemorySegment[] vector = zeros(arena, 3, 1000), reference = zeros(arena, 3, 1000);
            new VectorKernel(coeffs, mode).apply(in, vector, 0, 1000);
            new TableKernel(coeffs).apply(in, reference, 0, 1000);
            for (int j = 0; j < 3; j++) assertEquals(-1, vector[j].mismatch(reference[j]), mode + " parity " + j);
        }
    }

    @Test
    void propertyRandomCodesDataAndErasures() {
        Random rnd = new Random(1234);
        for (int iter = 0; iter < 150; iter++) {
            int k = 1 + rnd.nextInt(20), m = 1 + rnd.nextInt(8), n = k + m;
            long len = 1 + rnd.nextInt(3000);
            ReedSolomon rs = ReedSolomon.of(k, m);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment[] all = random(arena, n, len, rnd);
                MemorySegment[] copy = zeros(arena, n, len);
                rs.encode(Arrays.copyOf(all, k), Arrays.copyOfRange(all, k, n));
                for (int i = 0; i < n; i++) copy[i].copyFrom(all[i]);
                boolean[] present = new boolean[n];
                Arrays.fill(present, true);
                int lose = rnd.nextInt(m + 1);
                for (int e = 0; e < lose; ) {
                    int i = rnd.nextInt(n);
                    if (present[i]) { present[i] = false; all[i].fill((byte) rnd.nextInt()); e++; }
                }
                rs.reconstruct(all, present);
                for (int i = 0; i < n; i++) assertEquals(-1, all[i].mismatch(copy[i]), "iter " + iter + " RS(" + k + "," + m + ") piece " + i);
            }
        }
    }

    @Test
    void largestCodeAndParallelStripes() {
        Random rnd = new Random(5);
        // Many stripes so the work spreads over the pool; an odd length leaves a scalar tail.
        long len = 3L * ReedSolomon.STRIPE + 77;
        ReedSolomon rs = ReedSolomon.of(4, 2);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment[] all = random(arena, 6, len, rnd), copy = zeros(arena, 6, len);
            rs.encode(Arrays.copyOf(all, 4), Arrays.copyOfRange(all, 4, 6));
            MemorySegment[] refParity = zeros(arena, 2, len);
            ReedSolomon.of(4, 2, ReedSolomon.Kernel.REFERENCE).serial().encode(Arrays.copyOf(all, 4), refParity);
            assertEquals(-1, all[4].mismatch(refParity[0]));
            assertEquals(-1, all[5].mismatch(refParity[1]));
            for (int i = 0; i < 6; i++) copy[i].copyFrom(all[i]);
            boolean[] present = {false, true, true, false, true, true};
            assertArrayEquals(new int[]{0, 3}, rs.reconstruct(all, present));
            for (int i = 0; i < 6; i++) assertEquals(-1, all[i].mismatch(copy[i]));
        }
        // k + m = 255 still inverts: lose the first m data pieces.
        ReedSolomon big = ReedSolomon.of(200, 55);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment[] all = random(arena, 255, 130, rnd), copy = zeros(arena, 255, 130);
            big.encode(Arrays.copyOf(all, 200), Arrays.copyOfRange(all, 200, 255));
            for (int i = 0; i < 255; i++) copy[i].copyFrom(all[i]);
            boolean[] present = new boolean[255];
            Arrays.fill(present, true);
            for (int i = 0; i < 55; i++) { present[i * 3] = false; all[i * 3].fill((byte) 0); }
            big.reconstruct(all, present);
            for (int i = 0; i < 255; i++) assertEquals(-1, all[i].mismatch(copy[i]), "piece " + i);
        }
    }

    @Test
    void badArgumentsAreNamed() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ReedSolomon.of(200, 56)).getMessage().contains("k + m must be <= 255"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ReedSolomon.of(0, 2)).getMessage().contains("k (data pieces)"));
        try (Arena arena = Arena.ofConfined()) {
            ReedSolomon rs = ReedSolomon.of(2, 2);
            MemorySegment[] all = zeros(arena, 4, 10);
            var e = assertThrows(IllegalArgumentException.class, () -> rs.reconstruct(all, new boolean[]{true, false, false, false}));
            assertTrue(e.getMessage().contains("needs 2 pieces, only 1 present"), e.getMessage());
            var e2 = assertThrows(IllegalArgumentException.class, () -> rs.encode(new MemorySegment[]{all[0], arena.allocate(11)}, new MemorySegment[]{all[2], all[3]}));
            assertTrue(e2.getMessage().contains("same length"), e2.getMessage());
        }
    }
}
