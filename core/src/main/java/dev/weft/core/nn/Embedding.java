package dev.weft.core.nn;

import dev.weft.core.Tensor;

/** A token-embedding table [vocab, dim]. */
public final class Embedding extends Module {
    private final Tensor weight;

    public Embedding(int vocab, int dim, Init.Scheme init) {
        weight = parameter("weight", init, vocab, dim);
    }

    /** Looks up ids laid out as {@code shape} and returns [shape..., dim]. */
    public Tensor forward(int[] ids, int... shape) {
        return dev.weft.core.ops.Embedding.lookup(weight, ids, shape);
    }

    public Tensor weight() {
        return weight;
    }
}
