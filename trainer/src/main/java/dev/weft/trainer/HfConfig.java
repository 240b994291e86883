package dev.weft.trainer;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.weft.core.model.LlamaConfig;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * The Hugging Face {@code config.json} of a Llama model. weft writes one beside every checkpoint,
 * so a checkpoint directory loads in transformers with {@code LlamaForCausalLM.from_pretrained(dir)},
 * and reads one to load a transformers checkpoint. The tokenizer weft trained with travels in the
 * extra key {@code weft_tokenizer}.
 */
public final class HfConfig {
    private HfConfig() {}

    /** A model shape plus the tokenizer it was trained with (null for foreign checkpoints). */
    public record Loaded(LlamaConfig model, String tokenizer) {}

    /** Jackson keeps an ObjectNode's keys in insertion order, so the file reads top to bottom as transformers documents it. */
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Writes {@code file}; {@code tokenizer} (a built-in's name or a tokenizer.json's identity) may be null when unknown. */
    public static void write(Path file, LlamaConfig c, String tokenizer) {
        ObjectNode j = JSON.createObjectNode();
        j.putArray("architectures").add("LlamaForCausalLM");
        j.put("model_type", "llama");
        j.put("hidden_act", "silu");
        j.put("hidden_size", c.dModel());
        j.put("intermediate_size", c.ffnDim());
        j.put("num_hidden_layers", c.layers());
        j.put("num_attention_heads", c.heads());
        j.put("num_key_value_heads", c.kvHeads());
        j.put("head_dim", c.headDim());
        j.put("vocab_size", c.vocab());
        j.put("max_position_embeddings", c.maxSeqLen());
        j.put("rope_theta", c.ropeTheta());
        j.put("rms_norm_eps", c.normEps());
        j.put("tie_word_embeddings", c.tiedEmbeddings());
        j.put("initializer_range", c.initStd());
        j.put("attention_bias", false);
        j.put("mlp_bias", false);
        j.put("torch_dtype", "float32");
        if (tokenizer != null) j.put("weft_tokenizer", tokenizer);
        try {
            Files.writeString(file, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(j) + "\n");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    public static Loaded read(Path file) {
        Map<?, ?> j;
        try {
            Object parsed = JSON.readValue(file.toFile(), Object.class);
            if (!(parsed instanceof Map<?, ?> m)) throw new IllegalArgumentException(file + " is not a JSON object");
            j = m;
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException("malformed JSON in " + file + ": " + e.getOriginalMessage().lines().findFirst().orElse("")
                    + " at line " + e.getLocation().getLineNr());
        } catch (java.io.FileNotFoundException e) {
            if (!Files.exists(file))
                throw new IllegalArgumentException("no config.json at " + file + "; is this a weft or Hugging Face checkpoint directory?");
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
        Object type = j.get("model_type");
        if (type != null && !"llama".equals(type))
            throw new IllegalArgumentException(file + ": model_type '" + type + "' is not supported (weft loads Llama models)");
        rejectUnsupported(j, file);
        int hidden = intOf(j, "hidden_size", file, null);
        int heads = intOf(j, "num_attention_heads", file, null);
        if (j.get("head_dim") != null && intOf(j, "head_dim", file, null) != hidden / heads)
            throw new IllegalArgumentException(file + ": head_dim != hidden_size / num_attention_heads is not supported");
        LlamaConfig c = new LlamaConfig(intOf(j, "num_hidden_layers", file, null), hidden, heads,
                intOf(j, "num_key_value_heads", file, heads), intOf(j, "intermediate_size", file, null), intOf(j, "vocab_size", file, null),
                intOf(j, "max_position_embeddings", file, 2048), (float) ropeTheta(j, file),
                (float) numOf(j, "rms_norm_eps", file, 1e-6), Boolean.TRUE.equals(j.get("tie_word_embeddings")),
                numOf(j, "initializer_range", file, 0.02));
        Object tok = j.get("weft_tokenizer");
        return new Loaded(c, tok == null ? null : tok.toString());
    }

    /**
     * Rejects configs whose numerics weft does not implement, which would otherwise load "fine" and
     * compute different logits than transformers: rotary scaling (Llama 3.1's "llama3", linear,
     * dynamic, yarn, ...), partial rotary, biases, activations other than SiLU.
     */
    private static void rejectUnsupported(Map<?, ?> j, Path file) {
        Object act = j.get("hidden_act");
        if (act != null && !"silu".equals(act))
            throw new IllegalArgumentException(file + ": hidden_act '" + act + "' is not supported (weft's Llama MLP uses silu)");
        for (String bias : new String[] {"attention_bias", "mlp_bias"})
            if (Boolean.TRUE.equals(j.get(bias)))
                throw new IllegalArgumentException(file + ": " + bias + " = true is not supported (weft's Llama has no bias terms)");
        for (String key : new String[] {"rope_scaling", "rope_parameters"}) {
            Object v = j.get(key);
            if (v == null) continue;
            if (!(v instanceof Map<?, ?> rope)) throw new IllegalArgumentException(file + ": '" + key + "' = " + v + " is not a JSON object");
            Object type = rope.get("rope_type") != null ? rope.get("rope_type") : rope.get("type");
            if (type != null && !"default".equals(type))
                throw new IllegalArgumentException(file + ": " + key + " with rope_type '" + type + "' is not supported; weft implements only "
                        + "the default rotary embedding, so this model would compute different logits than in transformers");
            Object partial = rope.get("partial_rotary_factor");
            if (partial != null && !(partial instanceof Number n && n.doubleValue() == 1.0))
                throw new IllegalArgumentException(file + ": " + key + ".partial_rotary_factor = " + partial + " is not supported (weft rotates whole heads)");
        }
    }

    /** rope_parameters.rope_theta (transformers 5 writes theta only there), else the top-level rope_theta (4.x). */
    private static double ropeTheta(Map<?, ?> j, Path file) {
        if (j.get("rope_parameters") instanceof Map<?, ?> rope && rope.get("rope_theta") != null)
            return numOf(rope, "rope_theta", file, 10000.0);
        return numOf(j, "rope_theta", file, 10000.0);
    }

    private static int intOf(Map<?, ?> j, String key, Path file, Integer fallback) {
        Object v = j.get(key);
        if (v == null && fallback != null) return fallback;
        if (!(v instanceof Number n)) throw new IllegalArgumentException(file + ": '" + key + "' is missing or not an integer");
        return n.intValue();
    }

    private static double numOf(Map<?, ?> j, String key, Path file, double fallback) {
        Object v = j.get(key);
        if (v == null) return fallback;
        if (v instanceof Number n) return n.doubleValue();
        try {
            return Double.parseDouble(v.toString()); // some configs quote their numbers
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(file + ": '" + key + "' = " + v + " is not a number");
        }
    }
}
