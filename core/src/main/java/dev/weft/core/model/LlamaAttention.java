package dev.weft.core.model;

import dev.weft.core.Tensor;
import dev.weft.core.nn.Init;
import dev.weft.core.nn.Linear;
import dev.weft.core.nn.Module;
import dev.weft.core.ops.Attention;
import dev.weft.core.ops.Rope;

/** Grouped-query self-attention with rotary position embeddings ("self_attn"). */
final class LlamaAttention extends Module {
    private final LlamaConfig c;
    private final Linear q, k, v, o;

    LlamaAttention(LlamaConfig c) {
        this.c = c;
        Init.Scheme init = Init.normal(c.initStd());
        int hd = c.headDim();
        q = child("q_proj", new Linear(c.dModel(), c.heads() * hd, init));
        k = child("k_proj", new Linear(c.dModel(), c.kvHeads() * hd, init));
        v = child("v_proj", new Linear(c.dModel(), c.kvHeads() * hd, init));
        o = child("o_proj", new Linear(c.heads() * hd, c.dModel(), init));
    }

    /** x [B, T, d] → [B, T, d]; {@code position} is the absolute position of x's first token. */
    Tensor forward(Tensor x, int position) {
        return forward(x, position, null, 0);
    }

    /** As {@link #forward(Tensor, int)}, attending also to the positions before x held in {@code cache} (if not null). */
    Tensor forward(Tensor x, int position, KvCache cache, int layer) {
        // heads and sequence come from the projections: tensor parallelism gives each rank whole heads,
        // and sequence parallelism gathers the sequence inside the projection's boundary
        Tensor qo = q.forward(x), ko = k.forward(x), vo = v.forward(x);
        int b = qo.size(0), t = qo.size(1), hd = c.headDim(), heads = q.outFeatures() / hd, kvHeads = k.outFeatures() / hd;
        Tensor qh = Rope.apply(qo.view(b, t, heads, hd), position, c.ropeTheta());
        Tensor kh = Rope.apply(ko.view(b, t, kvHeads, hd), position, c.ropeTheta());
        Tensor vh = vo.view(b, t, kvHeads, hd);
        float scale = (float) (1.0 / Math.sqrt(hd));
        Tensor a = cache == null ? Attention.causal(qh, kh, vh, scale) : cache.attend(layer, qh, kh, vh, position, scale);
        return o.forward(a.view(b, t, heads * hd));
    }
}
