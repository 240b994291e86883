package dev.weft.core.model;

import dev.weft.core.Tensor;
import dev.weft.core.nn.Embedding;
import dev.weft.core.nn.Init;
import dev.weft.core.nn.Module;
import dev.weft.core.nn.RmsNorm;

import java.util.ArrayList;
import java.util.List;

/** The decoder stack ("model"): token embedding, layers, final norm. */
final class LlamaModel extends Module {
    final Embedding embedTokens;
    private final List<LlamaDecoderLayer> layers = new ArrayList<>();
    private final RmsNorm norm;

    LlamaModel(LlamaConfig c) {
        embedTokens = child("embed_tokens", new Embedding(c.vocab(), c.dModel(), Init.normal(c.initStd())));
        Module stack = child("layers", new LayerList());
        for (int i = 0; i < c.layers(); i++) layers.add(((LayerList) stack).add(i, new LlamaDecoderLayer(c)));
        norm = child("norm", new RmsNorm(c.dModel(), c.normEps()));
    }

    /** ids laid out [b, t] → hidden states [b, t, d]. */
    Tensor forward(int[] ids, int b, int t, int position) {
        return forward(ids, b, t, position, null);
    }

    /** As above; with a cache, each layer also attends to (and adds to) the positions it holds. */
    Tensor forward(int[] ids, int b, int t, int position, KvCache cache) {
        Tensor h = embedTokens.forward(ids, b, t);
        for (int i = 0; i < layers.size(); i++) {
            LlamaDecoderLayer layer = layers.get(i);
            int index = i;
            h = layer.call(h, x -> layer.forward(x, position, cache, index));
        }
        return norm.forward(h);
    }

    /** The "layers" container, whose children are named 0, 1, 2, ... */
    private static final class LayerList extends Module {
        LlamaDecoderLayer add(int index, LlamaDecoderLayer layer) {
            return child(Integer.toString(index), layer);
        }
    }
}
