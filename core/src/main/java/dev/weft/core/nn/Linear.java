package dev.weft.core.nn;

import dev.weft.core.Tensor;
import dev.weft.core.ops.Matmul;

/** y = x · Wᵀ with W stored [out, in] (no bias: Llama uses none). */
public final class Linear extends Module {
    private final Tensor weight;

    public Linear(int in, int out, Init.Scheme init) {
        weight = parameter("weight", init, out, in);
    }

    public Tensor forward(Tensor x) {
        return Matmul.linear(x, weight);
    }

    public Tensor weight() {
        return weight;
    }
}
