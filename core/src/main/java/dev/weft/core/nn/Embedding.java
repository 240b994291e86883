package dev.weft.core.nn;

import dev.weft.core.Tensor;

/**
 * A token-embedding table [vocab, dim]. When the layout splits the vocabulary, this rank holds a
 * block of rows and looks up only the ids that fall in it (zeros elsewhere); the layout's boundary
 * then sums the blocks over the group.
 */
public final class Embedding extends Module {
    private final int vocab;

    public Embedding(int vocab, int dim, Init.Scheme init) {
        parameter("weight", init, vocab, dim);
        this.vocab = vocab;
    }

    /** Looks up ids laid out as {@code shape} and returns [shape..., dim]. */
    public Tensor forward(int[] ids, int... shape) {
        Placement place = placement("weight");
        int firstRow = place.isReplicated() ? 0 : place.offsets()[0];
        return around(null, none -> dev.weft.core.ops.Embedding.lookupRows(weight(), firstRow, vocab, ids, shape));
    }

    public Tensor weight() {
        return parameter("weight");
    }
}
