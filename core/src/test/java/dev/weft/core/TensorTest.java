package dev.weft.core;

import dev.weft.core.ops.Matmul;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class TensorTest {
    @Test
    void viewsTransposeAndContiguousKeepValues() {
        try (Scope s = Scope.open()) {
            Tensor t = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
            Tensor tt = t.transpose(0, 1);
            assertArrayEquals(new int[] {3, 2}, tt.shape());
            assertFalse(tt.isContiguous());
            assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, tt.contiguous().toArray());
            assertEquals(6f, t.view(3, 2).get(2, 1));
            assertArrayEquals(new float[] {2, 3, 5, 6}, t.narrow(1, 1, 2).toArray());
        }
    }

    @Test
    void bf16RoundTripIsCloseAndRoundsToNearestEven() {
        try (Scope s = Scope.open()) {
            Tensor t = Tensor.of(new float[] {1f, -2.5f, 3.14159f, 1e-3f, 65504f}, 5);
            Tensor b = t.to(DType.BF16);
            assertEquals(DType.BF16, b.dtype());
            float[] back = b.to(DType.F32).toArray();
            float[] orig = t.toArray();
            for (int i = 0; i < orig.length; i++) assertEquals(orig[i], back[i], Math.abs(orig[i]) * 0x1p-8);
            // 1 + 2^-8 is exactly halfway between two bf16 values; ties go to the even one (1.0).
            assertEquals(1f, DType.fromBf16(DType.toBf16(1f + 0x1p-8f)));
        }
    }

    @Test
    void matmulMatchesNaiveProductAndGradients() {
        try (Scope s = Scope.open()) {
            int m = 5, k = 7, n = 3;
            float[] av = new float[m * k], bv = new float[k * n];
            for (int i = 0; i < av.length; i++) av[i] = (i % 11) * 0.1f - 0.4f;
            for (int i = 0; i < bv.length; i++) bv[i] = (i % 5) * 0.2f - 0.3f;
            Tensor a = Tensor.of(av, m, k).requiresGrad(true);
            Tensor b = Tensor.of(bv, k, n).requiresGrad(true);
            Tensor y = Matmul.matmul(a, b);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double ref = 0;
                    for (int p = 0; p < k; p++) ref += av[i * k + p] * bv[p * n + j];
                    assertEquals(ref, y.get(i, j), 1e-5);
                }
            // loss = sum(y): dA[i,p] = sum_j B[p,j], dB[p,j] = sum_i A[i,p]
            Autograd.backward(y, Tensor.ones(m, n));
            for (int i = 0; i < m; i++)
                for (int p = 0; p < k; p++) {
                    double ref = 0;
                    for (int j = 0; j < n; j++) ref += bv[p * n + j];
                    assertEquals(ref, a.grad().get(i, p), 1e-5);
                }
            a.clearGrad();
            b.clearGrad();
        }
    }

    @Test
    void budgetExhaustionNamesWhatWasLive() {
        MemoryPool pool = new MemoryPool("test", 1 << 20);
        Tensor keep = Tensor.allocate(pool, DType.F32, "activations", 200_000);
        var e = assertThrows(MemoryBudgetExceededException.class, () -> Tensor.allocate(pool, DType.F32, "logits", 100_000));
        assertTrue(e.getMessage().contains("activations"), e.getMessage());
        assertTrue(e.getMessage().contains("logits"), e.getMessage());
        keep.close();
        assertEquals(0, pool.liveBytes());
        Tensor.allocate(pool, DType.F32, "logits", 100_000).close(); // fits once the cache is trimmed
    }

    @Test
    void poolReusesFreedBlocks() {
        MemoryPool pool = new MemoryPool("reuse", Long.MAX_VALUE);
        for (int i = 0; i < 10; i++) Tensor.allocate(pool, DType.F32, "x", 1000).close();
        assertEquals(1, pool.cachedSizes());
        assertEquals(4032, pool.peakReservedBytes()); // 4000 bytes rounded up to 64
    }
}
