package dev.weft.core.model;

import dev.weft.core.Tensor;
import dev.weft.core.nn.Module;
import dev.weft.core.nn.RmsNorm;
import dev.weft.core.ops.Elementwise;

/** One pre-norm transformer block: x + attn(norm(x)), then + mlp(norm(·)). */
final class LlamaDecoderLayer extends Module {
    private final RmsNorm inputNorm, postAttentionNorm;
    private final LlamaAttention attention;
    private final LlamaMlp mlp;

    LlamaDecoderLayer(LlamaConfig c) {
        attention = child("self_attn", new LlamaAttention(c));
        mlp = child("mlp", new LlamaMlp(c));
        inputNorm = child("input_layernorm", new RmsNorm(c.dModel(), c.normEps()));
        postAttentionNorm = child("post_attention_layernorm", new RmsNorm(c.dModel(), c.normEps()));
    }

    /** {@link #forward} inside the layer's hooks (a parallel layout may gather its weights there). */
    Tensor call(Tensor x, java.util.function.UnaryOperator<Tensor> forward) {
        return around(x, forward);
    }

    Tensor forward(Tensor x, int position) {
        return forward(x, position, null, 0);
    }

    Tensor forward(Tensor x, int position, KvCache cache, int index) {
        Tensor h = Elementwise.add(x, attention.forward(inputNorm.forward(x), position, cache, index));
        return Elementwise.add(h, mlp.forward(postAttentionNorm.forward(h)));
    }
}
