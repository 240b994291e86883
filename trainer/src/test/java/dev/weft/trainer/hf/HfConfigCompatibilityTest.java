package dev.weft.trainer.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.weft.core.model.LlamaConfig;
import dev.weft.trainer.HfConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * config.json keys that change a Hugging Face Llama's numerics: weft must either honour them or
 * refuse the checkpoint, never load it and silently compute different logits.
 */
class HfConfigCompatibilityTest {
    @TempDir
    Path dir;

    static final String BASE = """
            "model_type": "llama", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64, "max_position_embeddings": 64,
            "rms_norm_eps": 1e-05, "tie_word_embeddings": false""";

    LlamaConfig read(String extra) throws IOException {
        Path f = dir.resolve("config.json");
        Files.writeString(f, "{" + BASE + (extra.isEmpty() ? "" : ", " + extra) + "}");
        return HfConfig.read(f).model();
    }

    String rejected(String extra) {
        return assertThrows(IllegalArgumentException.class, () -> read(extra)).getMessage();
    }

    /** What transformers reads: exactly these keys, in this order, each with its JSON type. */
    @Test
    void writtenConfigIsTheLlamaConfigTransformersReads() throws IOException {
        LlamaConfig c = new LlamaConfig(2, 32, 4, 2, 48, 64, 64, 500000f, 1e-5f, true, 0.02);
        String tokenizer = "bpe:C:\\vocab \"v2\".json"; // a path a user may name, with JSON's two special characters
        Path f = dir.resolve("config.json");
        HfConfig.write(f, c, tokenizer);

        JsonNode j = new ObjectMapper().readTree(f.toFile());
        List<String> keys = new ArrayList<>();
        j.fieldNames().forEachRemaining(keys::add);
        assertEquals(List.of("architectures", "model_type", "hidden_act", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings", "rope_theta",
                "rms_norm_eps", "tie_word_embeddings", "initializer_range", "attention_bias", "mlp_bias", "torch_dtype",
                "weft_tokenizer"), keys);
        assertEquals("[\"LlamaForCausalLM\"]", j.get("architectures").toString());
        assertEquals("llama", j.get("model_type").textValue());
        assertEquals("silu", j.get("hidden_act").textValue());
        assertEquals(32, j.get("hidden_size").intValue());
        assertEquals(48, j.get("intermediate_size").intValue());
        assertEquals(2, j.get("num_hidden_layers").intValue());
        assertEquals(4, j.get("num_attention_heads").intValue());
        assertEquals(2, j.get("num_key_value_heads").intValue());
        assertEquals(8, j.get("head_dim").intValue());
        assertEquals(64, j.get("vocab_size").intValue());
        assertEquals(64, j.get("max_position_embeddings").intValue());
        assertEquals(500000.0, j.get("rope_theta").doubleValue());
        assertEquals(1e-5f, j.get("rms_norm_eps").floatValue());
        assertTrue(j.get("tie_word_embeddings").booleanValue());
        assertEquals(0.02, j.get("initializer_range").doubleValue());
        assertFalse(j.get("attention_bias").booleanValue());
        assertFalse(j.get("mlp_bias").booleanValue());
        assertEquals("float32", j.get("torch_dtype").textValue());
        assertEquals(tokenizer, j.get("weft_tokenizer").textValue());

        HfConfig.Loaded back = HfConfig.read(f);
        assertEquals(c, back.model());
        assertEquals(tokenizer, back.tokenizer());
    }

    @Test
    void transformers4StyleConfigReadsAsBefore() throws IOException {
        LlamaConfig c = read("\"rope_theta\": 500000.0, \"rope_scaling\": null, \"hidden_act\": \"silu\", \"attention_bias\": false, \"mlp_bias\": false");
        assertEquals(500000f, c.ropeTheta());
        assertEquals(1e-5f, c.normEps());
        assertEquals(2, c.kvHeads());
        assertEquals(10000f, read("").ropeTheta(), "HF's default rope_theta");
    }

    /** transformers 5 writes rope_theta only inside rope_parameters; reading the default 10000 instead would be silently wrong. */
    @Test
    void ropeThetaInsideRopeParametersIsRead() throws IOException {
        assertEquals(500000f, read("\"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"}").ropeTheta());
    }

    @Test
    void ropeScalingIsRefusedRatherThanIgnored() {
        String m = rejected("\"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                + "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}");
        assertTrue(m.contains("rope_scaling") && m.contains("llama3"), m);
        m = rejected("\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}");
        assertTrue(m.contains("linear"), m);
        m = rejected("\"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"yarn\", \"factor\": 4.0}");
        assertTrue(m.contains("rope_parameters") && m.contains("yarn"), m);
        m = rejected("\"rope_parameters\": {\"rope_theta\": 10000.0, \"partial_rotary_factor\": 0.5}");
        assertTrue(m.contains("partial_rotary_factor"), m);
    }

    @Test
    void biasesAndOtherActivationsAreRefused() {
        assertTrue(rejected("\"attention_bias\": true").contains("attention_bias"));
        assertTrue(rejected("\"mlp_bias\": true").contains("mlp_bias"));
        assertTrue(rejected("\"hidden_act\": \"gelu\"").contains("hidden_act"));
    }
}
