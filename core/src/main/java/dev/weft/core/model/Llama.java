package dev.weft.core.model;

import dev.weft.core.ActivationFootprint;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.nn.ActivationPolicy;
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
    private Linear lmHead; // null when tied to the embedding, or held by another pipeline stage

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
     * One pipeline stage's share of the training forward: layers [from, to), after the embedding
     * when {@code from} is 0 (the input is then {@code ids}), and followed by the final norm and the
     * head when {@code to} is the layer count (the output is then logits [batch * seq, vocab]).
     * Otherwise hidden states [batch, seq, d] (a sequence block under sequence parallelism) come in
     * as {@code hidden} and go out.
     */
    public Tensor forwardStage(int[] ids, Tensor hidden, int batch, int seq, int from, int to) {
        if (from < 0 || to > config.layers() || from > to)
            throw new IllegalArgumentException("forwardStage: layers [" + from + ", " + to + ") of " + config.layers());
        return around(null, none -> {
            Tensor h = from == 0 ? model.embed(ids, batch, seq) : hidden;
            h = model.layers(h, from, to, 0);
            return to == config.layers() ? logits(model.finalNorm(h), batch * seq) : h;
        });
    }

    /**
     * What decoder layer {@code layer} keeps between forward and backward under {@code policy}
     * (null: none, every op keeps what it saves) for a micro-batch of {@code batch} sequences of
     * {@code seq} tokens, measured by running the layer's forward once on a zero input (see
     * {@link ActivationFootprint}); the input counts among the saved bytes, not the live ones. The
     * layer's own policy is left as it was.
     */
    public ActivationFootprint activationFootprint(int layer, ActivationPolicy policy, int batch, int seq) {
        LlamaDecoderLayer l = model.layer(layer);
        ActivationPolicy own = l.activations();
        l.activations(policy);
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(batch, seq, config.dModel()).requiresGrad(true);
            return ActivationFootprint.measure(() -> l.call(x, in -> l.forward(in, 0)), l.namedParameters().values());
        } finally {
            l.activations(own);
        }
    }

    /**
     * Keeps what a pipeline rank computes: the layers {@code layer} accepts, the embedding when it
     * holds the first stage and the final norm and head when it holds the last; frees the rest.
     * Parameter names are unchanged, so checkpoints stay layout-independent.
     */
    public void retain(java.util.function.IntPredicate layer, boolean firstStage, boolean lastStage) {
        if (config.tiedEmbeddings() && firstStage != lastStage)
            throw new IllegalArgumentException("tied embeddings need the first and the last pipeline stage on one rank");
        model.retain(layer, firstStage, lastStage);
        if (!lastStage && lmHead != null) {
            drop("lm_head");
            lmHead = null;
        }
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
