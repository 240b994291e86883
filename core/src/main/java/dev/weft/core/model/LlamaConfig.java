package dev.weft.core.model;

/**
 * The shape of a Llama-style decoder. Field meanings follow Hugging Face's LlamaConfig
 * (num_hidden_layers, hidden_size, num_attention_heads, num_key_value_heads, intermediate_size,
 * vocab_size, max_position_embeddings, rope_theta, rms_norm_eps, tie_word_embeddings).
 */
public record LlamaConfig(int layers, int dModel, int heads, int kvHeads, int ffnDim, int vocab,
                          int maxSeqLen, float ropeTheta, float normEps, boolean tiedEmbeddings,
                          double initStd) {

    public LlamaConfig {
        positive("layers", layers);
        positive("d_model", dModel);
        positive("heads", heads);
        positive("kv_heads", kvHeads);
        positive("ffn_dim", ffnDim);
        positive("vocab", vocab);
        positive("max_seq_len", maxSeqLen);
        if (dModel % heads != 0)
            throw new IllegalArgumentException("model.d_model = " + dModel + " is not divisible by model.heads = " + heads
                    + "; d_model must be a multiple of heads");
        if (heads % kvHeads != 0)
            throw new IllegalArgumentException("model.heads = " + heads + " is not divisible by model.kv_heads = " + kvHeads
                    + "; each key/value head serves a whole group of query heads");
        if ((dModel / heads) % 2 != 0)
            throw new IllegalArgumentException("head dimension d_model/heads = " + dModel / heads + " must be even for rotary embeddings");
        if (!(ropeTheta > 0)) throw new IllegalArgumentException("model.rope_theta must be > 0, got " + ropeTheta);
        if (!(normEps > 0)) throw new IllegalArgumentException("model.norm_eps must be > 0, got " + normEps);
        if (!(initStd > 0)) throw new IllegalArgumentException("model.init_std must be > 0, got " + initStd);
    }

    /** The same shape with {@code n} layers (a probe of the real layer, for the offload planner). */
    public LlamaConfig withLayers(int n) {
        return new LlamaConfig(n, dModel, heads, kvHeads, ffnDim, vocab, maxSeqLen, ropeTheta, normEps, tiedEmbeddings, initStd);
    }

    public int headDim() {
        return dModel / heads;
    }

    /** Parameters outside the token embedding (the lm head counts unless it is tied). */
    public long nonEmbeddingParameters() {
        long perLayer = (long) dModel * headDim() * (heads + 2L * kvHeads) + (long) heads * headDim() * dModel
                + 3L * dModel * ffnDim + 2L * dModel;
        long head = tiedEmbeddings ? 0 : (long) vocab * dModel;
        return layers * perLayer + dModel + head;
    }

    /** Model FLOPs of one training step (forward + backward) over {@code batch} sequences of {@code seq} tokens. */
    public double trainingFlops(int batch, int seq) {
        return 6.0 * nonEmbeddingParameters() * batch * seq + 12.0 * layers * (double) seq * seq * dModel * batch;
    }

    private static void positive(String key, int v) {
        if (v <= 0) throw new IllegalArgumentException("model." + key + " must be a positive integer, got " + v);
    }
}
