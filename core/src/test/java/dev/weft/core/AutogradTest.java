package dev.weft.core;

import dev.weft.core.ops.Elementwise;
import dev.weft.core.ops.Matmul;
import dev.weft.core.ops.Reductions;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class AutogradTest {
    @Test
    void gradReadyFiresOncePerLeafAfterItsLastContribution() {
        try (Scope s = Scope.open()) {
            Tensor w = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2).requiresGrad(true).name("w");
            Tensor x = Tensor.of(new float[] {1, 1, 1, 1}, 2, 2);
            List<String> events = new ArrayList<>();
            w.onGradReady(p -> events.add("ready:" + p.grad().get(0, 0)));
            // w is used twice; the hook must see the sum of both contributions, once.
            Tensor y = Elementwise.add(Matmul.linear(x, w), Matmul.linear(x, w));
            Reductions.sum(y).backward();
            assertEquals(List.of("ready:4.0"), events); // 2 rows of ones, twice
            // gradient accumulation: a second backward adds to .grad and fires again
            Reductions.sum(Matmul.linear(x, w)).backward();
            assertEquals(List.of("ready:4.0", "ready:6.0"), events);
            w.clearGrad();
        }
    }

    @Test
    void savedTensorsPassThroughInstalledHooks() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.of(new float[] {1, 2, 3}, 1, 3).requiresGrad(true);
            Tensor b = Tensor.of(new float[] {4, 5, 6}, 1, 3).requiresGrad(true);
            List<String> log = new ArrayList<>();
            Tensor y;
            try (var h = SavedTensorHooks.install(new SavedTensorHooks() {
                @Override
                public Object pack(Tensor t) {
                    log.add("pack");
                    return t.toArray(); // keep a host copy, as offload would, and forget the tensor
                }

                @Override
                public Tensor unpack(Object packed) {
                    log.add("unpack");
                    float[] v = (float[]) packed;
                    return Tensor.of(v, 1, v.length);
                }
            })) {
                y = Elementwise.mul(a, b);
            }
            assertTrue(log.contains("pack"), log.toString());
            Reductions.sum(y).backward();
            assertTrue(log.contains("unpack"), log.toString());
            assertArrayEquals(new float[] {4, 5, 6}, a.grad().toArray());
            assertArrayEquals(new float[] {1, 2, 3}, b.grad().toArray());
        }
    }

    @Test
    void noGradRecordsNothing() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.of(new float[] {1, 2}, 2).requiresGrad(true);
            Tensor y;
            try (var ng = Autograd.noGrad()) {
                y = Elementwise.scale(a, 2f);
            }
            assertFalse(y.requiresGrad());
            assertTrue(Elementwise.scale(a, 2f).requiresGrad());
        }
    }

    @Test
    void backwardOfANonScalarNeedsASeed() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.of(new float[] {1, 2}, 2).requiresGrad(true);
            var e = assertThrows(IllegalArgumentException.class, () -> Elementwise.scale(a, 2f).backward());
            assertTrue(e.getMessage().contains("scalar"), e.getMessage());
        }
    }

    @Test
    void scopeReturnsActivationsToThePool() {
        MemoryPool pool = MemoryPool.host();
        long before = pool.liveBytes();
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.ones(256, 256).requiresGrad(true);
            Reductions.sum(Elementwise.mul(a, a)).backward();
            assertTrue(pool.liveBytes() > before);
            Scope.outside(() -> { a.clearGrad(); return null; });
        }
        assertEquals(before, pool.liveBytes(), "everything created in the scope is released");
    }
}
