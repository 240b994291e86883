package dev.weft.core.nn;

import dev.weft.core.Tensor;
import dev.weft.core.ops.Matmul;

/**
 * y = x · Wᵀ with W stored [out, in] (no bias: Llama uses none). Under tensor parallelism W is a
 * block of the whole (rows for a column-parallel projection, columns for a row-parallel one) and
 * the layout's {@link Module.Boundary} adds the collectives around it.
 */
public class Linear extends Module {
    public Linear(int in, int out, Init.Scheme init) {
        parameter("weight", init, out, in);
    }

    public Tensor forward(Tensor x) {
        return around(x, in -> Matmul.linear(in, weight()));
    }

    public Tensor weight() {
        return parameter("weight");
    }

    /** Output features this rank computes (all of them unless the weight's rows are split). */
    public int outFeatures() {
        return weight().size(0);
    }
}
