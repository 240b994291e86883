package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.GradCheck;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class EmbeddingTest {
    @Test
    void gathersRowsInTheIdsShape() {
        try (Scope s = Scope.open()) {
            Tensor w = GradCheck.random(1, 11, 17);
            int[] ids = {3, 0, 10, 3, 7, 7};
            Tensor y = Embedding.lookup(w, ids, 2, 3);
            assertArrayEquals(new int[] {2, 3, 17}, y.shape());
            for (int t = 0; t < ids.length; t++)
                for (int j = 0; j < 17; j++) assertEquals(w.get(ids[t], j), y.get(t / 3, t % 3, j));
            assertArrayEquals(new int[] {6, 17}, Embedding.lookup(w, ids).shape());
        }
    }

    @Test
    void backwardScatterAddsRepeatedIds() {
        try (Scope s = Scope.open()) {
            int vocab = 9, d = 33;
            Tensor w = GradCheck.random(2, vocab, d).requiresGrad(true);
            int[] ids = {4, 1, 4, 8, 4, 1, 0};
            Tensor g = GradCheck.random(3, 7, d);
            float[] gv = g.toArray();
            float[] expect = new float[vocab * d];
            for (int t = 0; t < ids.length; t++) for (int j = 0; j < d; j++) expect[ids[t] * d + j] += gv[t * d + j];
            Autograd.backward(Embedding.lookup(w, ids, 7), g);
            assertArrayEquals(expect, w.grad().toArray(), 1e-6f);
            w.clearGrad();
        }
    }

    @Test
    void wideTableBackwardIsDeterministicAndExact() {
        // d large enough to be split over threads by columns.
        try (Scope s = Scope.open()) {
            int vocab = 50, d = 1000, n = 300;
            int[] ids = new int[n];
            for (int t = 0; t < n; t++) ids[t] = (t * 7) % 13;
            Tensor w = GradCheck.random(4, vocab, d).requiresGrad(true);
            Tensor g = GradCheck.random(5, n, d);
            float[] gv = g.toArray();
            float[] expect = new float[vocab * d];
            for (int t = 0; t < n; t++) for (int j = 0; j < d; j++) expect[ids[t] * d + j] += gv[t * d + j];
            Autograd.backward(Embedding.lookup(w, ids, n), g);
            assertArrayEquals(expect, w.grad().toArray(), "same order of additions as the sequential loop");
            w.clearGrad();
        }
    }

    @Test
    void gradients() {
        try (Scope s = Scope.open()) {
            for (int d : new int[] {1, 3, 17}) {
                GradCheck.check("embedding d=" + d, in -> Embedding.lookup(in[0], new int[] {2, 0, 2, 4, 1, 2}, 2, 3), GradCheck.random(6, 5, d));
            }
        }
    }

    @Test
    void outOfRangeIdNamesIdPositionAndVocabulary() {
        try (Scope s = Scope.open()) {
            Tensor w = Tensor.zeros(10, 4);
            var e = assertThrows(IllegalArgumentException.class, () -> Embedding.lookup(w, new int[] {1, 2, 10}, 3));
            assertTrue(e.getMessage().contains("id 10") && e.getMessage().contains("position 2") && e.getMessage().contains("10"), e.getMessage());
            var neg = assertThrows(IllegalArgumentException.class, () -> Embedding.lookup(w, new int[] {-1}, 1));
            assertTrue(neg.getMessage().contains("id -1") && neg.getMessage().contains("position 0"), neg.getMessage());
            var shape = assertThrows(IllegalArgumentException.class, () -> Embedding.lookup(w, new int[] {1, 2, 3}, 2, 2));
            assertTrue(shape.getMessage().contains("[2, 2]"), shape.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Embedding.lookup(Tensor.zeros(10), new int[] {1}));
        }
    }
}
