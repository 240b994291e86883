package dev.weft.core;

import dev.weft.core.ops.Matmul;
import dev.weft.core.ops.Reductions;
import dev.weft.core.ops.RmsNorm;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Lifetimes and hooks of a backward whose weight gradients were postponed. */
class DeferredWeightsTest {
    /** Saved-tensor hooks that keep a private copy, as offload does, so the pool shows what is still saved. */
    private static final SavedTensorHooks COPYING = new SavedTensorHooks() {
        @Override
        public Object pack(Tensor t) {
            return Scope.outside(() -> Tensor.empty(DType.F32, "saved-copy", t.shape()).copyFrom(t));
        }

        @Override
        public Tensor unpack(Object packed) {
            return (Tensor) packed;
        }

        @Override
        public void release(Object packed) {
            ((Tensor) packed).close();
        }
    };

    private static long savedBytes() {
        return MemoryPool.host().liveBytesByLabel().getOrDefault("saved-copy", 0L);
    }

    @Test
    void savedTensorsStayUntilTheWeightPassAndAreReleasedAfterIt() {
        MemoryPool pool = MemoryPool.host();
        long baseline = pool.liveBytes();
        Tensor w1 = Scope.outside(() -> Tensor.full(0.1f, 16, 8).requiresGrad(true).name("w1"));
        Tensor norm = Scope.outside(() -> Tensor.ones(16).requiresGrad(true).name("norm"));
        Tensor w2 = Scope.outside(() -> Tensor.full(-0.2f, 4, 16).requiresGrad(true).name("w2"));
        List<String> ready = new ArrayList<>();
        for (Tensor p : List.of(w1, norm, w2)) p.onGradReady(t -> ready.add(t.name()));
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.full(0.5f, 6, 8);
            Tensor loss;
            try (var h = SavedTensorHooks.install(COPYING)) {
                loss = Reductions.sum(Matmul.linear(RmsNorm.apply(Matmul.linear(x, w1), norm, 1e-5f), w2));
            }
            long afterForward = savedBytes();
            assertTrue(afterForward > 0);
            DeferredWeights w;
            try (DeferredWeights d = Autograd.deferWeightGradients(List.of(w1, norm, w2))) {
                loss.backward();
                w = d;
            }
            long afterB = savedBytes();
            assertTrue(afterB > 0 && afterB < afterForward,
                    "the linears' saved tensors wait for W, the norm's are gone: " + afterB + " of " + afterForward);
            assertTrue(ready.isEmpty(), ready.toString());
            w.run();
            assertEquals(0, savedBytes(), "the weight pass released every saved tensor");
            assertEquals(List.of("w2", "norm", "w1"), ready, "each hook once, in the order backward reached the weights");
        }
        for (Tensor p : List.of(w1, norm, w2)) {
            p.clearGrad();
            p.close();
        }
        assertEquals(baseline, pool.liveBytes(), "everything is back in the pool");
    }

    @Test
    void discardReleasesWithoutTouchingTheGradients() {
        Tensor w1 = Scope.outside(() -> Tensor.full(0.1f, 4, 8).requiresGrad(true));
        try (Scope s = Scope.open()) {
            Tensor loss;
            try (var h = SavedTensorHooks.install(COPYING)) {
                loss = Reductions.sum(Matmul.linear(Tensor.full(0.5f, 3, 8), w1));
            }
            DeferredWeights w = Autograd.deferWeightGradients(List.of(w1));
            loss.backward();
            w.close();
            assertEquals(1, w.size());
            w.discard();
            assertEquals(0, savedBytes());
            assertNull(w1.grad());
            var e = assertThrows(IllegalStateException.class, w::run);
            assertTrue(e.getMessage().contains("already ran"), e.getMessage());
        }
        w1.close();
    }

    /** Closing the handle ends deferral: a later backward adds into .grad at once, and nothing more is recorded. */
    @Test
    void deferralEndsWhenTheHandleCloses() {
        Tensor w1 = Scope.outside(() -> Tensor.full(0.1f, 4, 8).requiresGrad(true));
        try (Scope s = Scope.open()) {
            DeferredWeights w;
            try (DeferredWeights d = Autograd.deferWeightGradients(List.of(w1))) {
                Reductions.sum(Matmul.linear(Tensor.full(0.5f, 3, 8), w1)).backward();
                w = d;
            }
            Reductions.sum(Matmul.linear(Tensor.full(0.5f, 3, 8), w1)).backward();
            assertNotNull(w1.grad());
            assertEquals(1.5f, w1.grad().get(0, 0), "one pass added at once: 3 rows of 0.5");
            assertEquals(1, w.size());
            w.run();
            assertEquals(3f, w1.grad().get(0, 0), "the deferred pass added the other");
            w1.clearGrad();
        }
        w1.close();
    }

    @Test
    void aComputedTensorIsNotAWeight() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.ones(2).requiresGrad(true);
            Tensor b = dev.weft.core.ops.Elementwise.scale(a, 2f);
            var e = assertThrows(IllegalArgumentException.class, () -> Autograd.deferWeightGradients(List.of(b)));
            assertTrue(e.getMessage().contains("not a weight"), e.getMessage());
        }
    }
}
