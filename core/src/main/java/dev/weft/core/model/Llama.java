package dev.weft.core.model;

import dev.weft.core.Tensor;
import dev.weft.core.nn.Init;
import dev.weft.core.nn.Linear;
import dev.weft.core.nn.Module;
import dev.weft.core.ops.Matmul;

/**
 * A Llama-style causal language model (Hugging Face's LlamaForCausalLM layout): parameter names
 * are exactly the Hugging Face ones, so weights move between weft and transformers by name.
 */
public final class Llama extends Module {
    private final LlamaConfig config;
    private final LlamaModel model;
    private final Linear lmHead; // null when tied to the embedding

    public Llama(LlamaConfig config, long seed) {
        this.config = config;
        this.model = child("model", new LlamaModel(config));
        this.lmHead = config.tiedEmbeddings() ? null
                : child("lm_head", new Linear(config.dModel(), config.vocab(), Init.normal(config.initStd())));
        initialize(seed);
    }

    public LlamaConfig config() {
        return config;
    }

    /**
     * Logits for token ids laid out [batch, seq] (row-major), as [batch * seq, vocab]. {@code position}
     * is the absolute position of the first column (0 for training).
     */
    public Tensor forward(int[] ids, int batch, int seq, int position) {
        if (ids.length != batch * seq)
            throw new IllegalArgumentException("forward: " + ids.length + " ids for batch " + batch + " x seq " + seq);
        if (position + seq > config.maxSeqLen())
            throw new IllegalArgumentException("sequence of " + (position + seq) + " tokens exceeds model.max_seq_len = " + config.maxSeqLen());
        return around(null, none -> {
            return logits(model.forward(ids, batch, seq, position), batch * seq);
        });
    }

    public Tensor forward(int[] ids, int batch, int seq) {
        return forward(ids, batch, seq, 0);
    }

    /**
     * Logits for the next {@code seq} tokens of each of {@code batch} sequences whose earlier tokens
     * are in {@code cache} (positions from {@code cache.length()} on), as [batch * seq, vocab]; the
     * new tokens' keys and values are added to the cache. Under no-grad only.
     */
    public Tensor forward(int[] ids, int batch, int seq, KvCache cache) {
        if (ids.length != batch * seq)
            throw new IllegalArgumentException("forward: " + ids.length + " ids for batch " + batch + " x seq " + seq);
        if (batch != cache.batch())
            throw new IllegalArgumentException("forward: batch " + batch + " does not match the KV cache's batch " + cache.batch());
        int position = cache.length();
        if (position + seq > config.maxSeqLen())
            throw new IllegalArgumentException("sequence of " + (position + seq) + " tokens exceeds model.max_seq_len = " + config.maxSeqLen());
        return around(null, none -> {
            Tensor h = model.forward(ids, batch, seq, position, cache);
            cache.advance(seq);
            return logits(h, batch * seq);
        });
    }

    /**
     * Hidden states [b, t, d] to logits [b * t, vocab], or this rank's block of the vocabulary when
     * the head is split (the head's boundary first gathers a sequence-parallel input).
     */
    private Tensor logits(Tensor h, int rows) {
        Tensor y = lmHead != null ? lmHead.forward(h) : Matmul.linear(h, model.embedTokens.weight());
        return y.view(rows, y.size(-1));
    }

    @Override
    public String toString() {
        return "Llama" + config + " with " + parameterCount() + " parameters";
    }
}
