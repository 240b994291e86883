package dev.weft.core.nn;

import dev.weft.core.Tensor;

/** Root-mean-square normalisation with a learned per-channel gain (starts at 1). */
public final class RmsNorm extends Module {
    private final float eps;

    public RmsNorm(int dim, float eps) {
        parameter("weight", Init.constant(1f), dim);
        this.eps = eps;
    }

    public Tensor forward(Tensor x) {
        return around(x, in -> dev.weft.core.ops.RmsNorm.apply(in, parameter("weight"), eps));
    }
}
