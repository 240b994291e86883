package dev.weft.core;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Scopes own what is created while they are current, close in any order, and interleave as a pipeline schedule needs. */
class ScopeTest {
    @Test
    void aScopeClosedBeforeItsChildNeverOwnsWhatComesAfter() {
        Tensor a, b, later;
        Scope outer = Scope.open();
        a = Tensor.zeros(4);
        Scope inner = Scope.open();
        b = Tensor.zeros(4);
        outer.close(); // out of order: the inner one is still current
        assertTrue(a.isClosed());
        assertFalse(b.isClosed(), "the inner scope's tensor lives until the inner scope closes");
        Tensor mid = Tensor.zeros(4);
        inner.close();
        assertTrue(b.isClosed() && mid.isClosed());
        later = Tensor.zeros(4); // no scope is current now: the caller owns it
        try (Scope s = Scope.open()) {
            assertEquals(0, s.size());
        }
        assertFalse(later.isClosed());
        assertEquals(0, outer.size(), "a tensor made after both closed is not held by the closed outer scope (it would never be freed)");
        later.close();
    }

    @Test
    void microBatchScopesInterleaveAndCloseInAnyOrder() {
        Scope first = Scope.create(), second = Scope.create();
        Tensor a, b, c;
        try (var in = first.activate()) {
            a = Tensor.zeros(2);
            try (var in2 = second.activate()) {
                b = Tensor.zeros(2);
            }
            c = Tensor.zeros(2); // back in the first micro-batch
        }
        Tensor outside = Tensor.zeros(2);
        assertEquals(2, first.size());
        assertEquals(1, second.size());
        first.close();
        assertTrue(a.isClosed() && c.isClosed());
        assertFalse(b.isClosed(), "the second micro-batch's activations outlive the first's backward");
        second.close();
        assertTrue(b.isClosed());
        assertFalse(outside.isClosed(), "made with no scope current");
        outside.close();
        assertThrows(IllegalStateException.class, first::activate);
    }
}
