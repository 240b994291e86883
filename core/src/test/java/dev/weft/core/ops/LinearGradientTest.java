package dev.weft.core.ops;

import dev.weft.core.MemoryPool;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.*;

/** A weight's gradient is added straight into its gradient buffer: no fresh tensor, no copy, the same values. */
class LinearGradientTest {
    @Test
    void theWeightGradientLandsInItsBufferWithoutATemporary() {
        float[] xs = new float[6 * 3], ws = new float[4 * 3];
        for (int i = 0; i < xs.length; i++) xs[i] = (i % 5) * 0.25f - 0.5f;
        for (int i = 0; i < ws.length; i++) ws[i] = (i % 7) * 0.1f - 0.3f;
        try (Tensor w = Tensor.of(ws, 4, 3).requiresGrad(true); Tensor buffer = Tensor.full(0.5f, 4, 3)) {
            w.useGrad(buffer); // a gradient buffer that already holds something, as in accumulation
            AtomicReference<String> liveAtReady = new AtomicReference<>();
            w.onGradReady(t -> liveAtReady.set(MemoryPool.host().describeLive(100)));
            try (Scope s = Scope.open()) {
                Tensor x = Tensor.of(xs, 6, 3);
                Reductions.sum(Matmul.linear(x, w)).backward();
            }
            assertSame(buffer, w.grad(), "the gradient is the buffer it was given");
            assertFalse(liveAtReady.get().contains("linear.grad_weight"), "no temporary for dW: " + liveAtReady.get());
            // d(sum(x Wᵀ))/dW[o][i] = sum over rows of x[r][i], plus what the buffer held
            for (int o = 0; o < 4; o++) {
                for (int i = 0; i < 3; i++) {
                    float expect = 0.5f;
                    for (int r = 0; r < 6; r++) expect += xs[r * 3 + i];
                    assertEquals(expect, buffer.get(o, i), 1e-6, "dW[" + o + "][" + i + "]");
                }
            }
            w.useGrad(null);
        }
    }
}
