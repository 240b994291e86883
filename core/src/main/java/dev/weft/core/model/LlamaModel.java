package dev.weft.core.model;

import dev.weft.core.Autograd;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.nn.Embedding;
import dev.weft.core.nn.Init;
import dev.weft.core.nn.Module;
import dev.weft.core.nn.RmsNorm;

import java.util.ArrayList;
import java.util.List;

/**
 * The decoder stack ("model"): token embedding, layers, final norm. A pipeline stage holds some
 * layers, and the embedding (first stage) or the norm (last stage) only where it computes them.
 */
final class LlamaModel extends Module {
    Embedding embedTokens; // null on a pipeline stage that does not hold it
    private final List<LlamaDecoderLayer> layers = new ArrayList<>(); // null where another stage holds the layer
    private final LayerList stack;
    private RmsNorm norm;

    LlamaModel(LlamaConfig c) {
        embedTokens = child("embed_tokens", new Embedding(c.vocab(), c.dModel(), Init.normal(c.initStd())));
        stack = child("layers", new LayerList());
        for (int i = 0; i < c.layers(); i++) layers.add(stack.add(i, new LlamaDecoderLayer(c)));
        norm = child("norm", new RmsNorm(c.dModel(), c.normEps()));
    }

    /** Keeps the layers {@code keep} accepts, and the embedding and the final norm where asked; frees the rest. */
    void retain(java.util.function.IntPredicate keep, boolean embedding, boolean finalNorm) {
        for (int i = 0; i < layers.size(); i++) {
            if (layers.get(i) != null && !keep.test(i)) {
                stack.dropLayer(Integer.toString(i));
                layers.set(i, null);
            }
        }
        if (!embedding && embedTokens != null) {
            drop("embed_tokens");
            embedTokens = null;
        }
        if (!finalNorm && norm != null) {
            drop("norm");
            norm = null;
        }
    }

    Tensor embed(int[] ids, int b, int t) {
        return embedTokens.forward(ids, b, t);
    }

    /** Layers [from, to) over hidden states [b, t, d] at absolute position {@code position}. */
    Tensor layers(Tensor h, int from, int to, int position) {
        for (int i = from; i < to; i++) {
            LlamaDecoderLayer layer = layers.get(i);
            if (layer == null) throw new IllegalStateException("layer " + i + " is held by another pipeline stage");
            h = layer.call(h, x -> layer.forward(x, position, null, 0));
        }
        return h;
    }

    /** Decoder layer {@code i}; fails where another pipeline stage holds it. */
    LlamaDecoderLayer layer(int i) {
        if (i < 0 || i >= layers.size()) throw new IllegalArgumentException("no layer " + i + " of " + layers.size());
        LlamaDecoderLayer layer = layers.get(i);
        if (layer == null) throw new IllegalStateException("layer " + i + " is held by another pipeline stage");
        return layer;
    }

    Tensor finalNorm(Tensor h) {
        return norm.forward(h);
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
            h = cache == null && !Autograd.isEnabled() ? transientLayer(layer, h, position) : layer.call(h, x -> layer.forward(x, position, cache, index));
        }
        return norm.forward(h);
    }

    /**
     * A layer's forward where nothing is kept for backward (evaluation): its intermediates are
     * freed as soon as it returns instead of when the caller's scope closes, so an evaluation
     * holds one layer's working set rather than every layer's.
     */
    private static Tensor transientLayer(LlamaDecoderLayer layer, Tensor h, int position) {
        Tensor y;
        try (Scope s = Scope.open()) {
            y = Scope.keep(layer.call(h, x -> layer.forward(x, position, null, 0)).contiguous().detach());
        }
        return Scope.adopt(y);
    }

    /** The "layers" container, whose children are named 0, 1, 2, ... */
    private static final class LayerList extends Module {
        LlamaDecoderLayer add(int index, LlamaDecoderLayer layer) {
            return child(Integer.toString(index), layer);
        }

        void dropLayer(String index) {
            drop(index);
        }
    }
}
