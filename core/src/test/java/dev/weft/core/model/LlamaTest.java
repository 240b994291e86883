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
}
