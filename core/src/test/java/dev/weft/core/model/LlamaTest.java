package dev.weft.core.model;

import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class LlamaTest {
    @Test
    void parameterNamesAreTheHuggingFaceOnesAndCountsMatchTheFormula() {
        LlamaConfig c = new LlamaConfig(2, 32, 4, 2, 48, 50, 16, 10000f, 1e-5f, false, 0.02);
        Llama m = new Llama(c, 7);
        List<String> names = List.copyOf(m.namedParameters().keySet());
        assertEquals("model.embed_tokens.weight", names.get(0));
        assertTrue(names.contains("model.layers.1.self_attn.q_proj.weight"));
        assertTrue(names.contains("model.layers.0.self_attn.k_proj.weight"));
        assertTrue(names.contains("model.layers.0.mlp.gate_proj.weight"));
        assertTrue(names.contains("model.layers.0.input_layernorm.weight"));
        assertTrue(names.contains("model.layers.0.post_attention_layernorm.weight"));
        assertTrue(names.contains("model.norm.weight"));
        assertEquals("lm_head.weight", names.get(names.size() - 1));
        assertArrayEquals(new int[] {2 * 8, 32}, m.namedParameters().get("model.layers.0.self_attn.k_proj.weight").shape());
        assertEquals(c.nonEmbeddingParameters() + 50L * 32, m.parameterCount());
        Tensor norm = m.namedParameters().get("model.norm.weight");
        for (float v : norm.toArray()) assertEquals(1f, v);
        m.close();
    }

    @Test
    void sameSeedSameWeights() {
        LlamaConfig c = new LlamaConfig(1, 16, 2, 2, 24, 20, 8, 10000f, 1e-5f, true, 0.02);
        Llama a = new Llama(c, 5), b = new Llama(c, 5);
        for (String n : a.namedParameters().keySet())
            assertArrayEquals(a.namedParameters().get(n).toArray(), b.namedParameters().get(n).toArray(), n);
        assertFalse(a.namedParameters().containsKey("lm_head.weight"));
        a.close();
        b.close();
    }

    @Test
    void invalidShapesAreRejectedWithTheKeyNamed() {
        var e = assertThrows(IllegalArgumentException.class, () -> new LlamaConfig(1, 30, 4, 4, 8, 10, 8, 10000f, 1e-5f, false, 0.02));
        assertTrue(e.getMessage().contains("d_model") && e.getMessage().contains("heads"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new LlamaConfig(1, 32, 4, 3, 8, 10, 8, 10000f, 1e-5f, false, 0.02));
        assertTrue(e.getMessage().contains("kv_heads"), e.getMessage());
    }

    /**
     * Feeding a sequence through a KV cache in pieces (a prompt, single tokens, a chunk) gives every
     * position the logits of one forward over the whole sequence. Not bit-equal: a tile product of
     * one query row may round differently from the same row inside a 64-row tile in OpenBLAS, so
     * we allow 4e-6 of the largest |logit| (about 30 float32 ulps; measured 1.5e-6 here, while a
     * wrong position or a missed key moves logits by 1e-2 or more).
     * 75 positions cross a 64-key tile; two kv heads under four query heads cover grouped queries;
     * batch 2 covers the per-sequence offsets into the cache.
     */
    @Test
    void kvCacheGivesTheLogitsOfTheWholeSequence() {
        LlamaConfig c = new LlamaConfig(2, 32, 4, 2, 48, 50, 80, 10000f, 1e-5f, false, 0.2);
        Llama m = new Llama(c, 11);
        int batch = 2, n = 75;
        int[] ids = new int[batch * n];
        java.util.SplittableRandom r = new java.util.SplittableRandom(3);
        for (int i = 0; i < ids.length; i++) ids[i] = r.nextInt(c.vocab());
        int[] pieces = {7, 1, 1, 1, 5, 1, 59};
        float maxDiff = 0, maxLogit = 0;
        try (var ng = dev.weft.core.Autograd.noGrad(); KvCache cache = new KvCache(c, batch)) {
            float[] full = m.forward(ids, batch, n).toArray();
            for (float f : full) maxLogit = Math.max(maxLogit, Math.abs(f));
            int at = 0;
            for (int len : pieces) {
                int[] piece = new int[batch * len];
                for (int b = 0; b < batch; b++) System.arraycopy(ids, b * n + at, piece, b * len, len);
                float[] got;
                try (Tensor logits = m.forward(piece, batch, len, cache)) {
                    got = logits.toArray();
                }
                for (int b = 0; b < batch; b++)
                    for (int t = 0; t < len; t++)
                        for (int v = 0; v < c.vocab(); v++) {
                            float want = full[((b * n) + at + t) * c.vocab() + v];
                            maxDiff = Math.max(maxDiff, Math.abs(want - got[(b * len + t) * c.vocab() + v]));
                        }
                at += len;
            }
            assertEquals(n, at);
            assertEquals(n, cache.length());
        }
        System.out.println("kv cache: largest logit difference against the full forward " + maxDiff + ", largest |logit| " + maxLogit);
        assertTrue(maxLogit > 1, "logits of order 1 or more make the tolerance meaningful: " + maxLogit);
        assertTrue(maxDiff <= 4e-6f * maxLogit, "largest logit difference " + maxDiff + " for logits up to " + maxLogit);
        m.close();
    }

    @Test
    void kvCacheRefusesGradientsAndOverflow() {
        LlamaConfig c = new LlamaConfig(1, 16, 2, 2, 24, 20, 8, 10000f, 1e-5f, true, 0.02);
        Llama m = new Llama(c, 5);
        try (KvCache cache = new KvCache(c, 1)) {
            var e = assertThrows(IllegalStateException.class, () -> m.forward(new int[] {1, 2}, 1, 2, cache));
            assertTrue(e.getMessage().contains("noGrad"), e.getMessage());
            try (var ng = dev.weft.core.Autograd.noGrad()) {
                cache.clear();
                m.forward(new int[] {1, 2, 3, 4, 5, 6}, 1, 6, cache).close();
                var over = assertThrows(IllegalArgumentException.class, () -> m.forward(new int[] {1, 2, 3}, 1, 3, cache));
                assertTrue(over.getMessage().contains("max_seq_len = 8"), over.getMessage());
                assertThrows(IllegalArgumentException.class, () -> m.forward(new int[] {1, 2}, 2, 1, cache));
            }
        }
        m.close();
    }
}
