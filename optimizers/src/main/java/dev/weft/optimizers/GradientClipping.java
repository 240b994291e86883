package dev.weft.optimizers;

import dev.weft.core.Tensor;
import dev.weft.core.kernels.VectorMath;

import java.util.Collection;
import java.util.function.DoubleUnaryOperator;

/** Global-norm gradient clipping: scales every gradient by min(1, max / ‖g‖₂) over all parameters. */
public final class GradientClipping {
    private GradientClipping() {}

    /** The global L2 norm of the gradients, accumulated in double in parameter order. */
    public static double globalNorm(Collection<Tensor> params) {
        double ss = 0;
        for (Tensor p : params) {
            Tensor g = p.grad();
            if (g != null) ss += VectorMath.sumOfSquares(g.data(), Math.toIntExact(g.numel()));
        }
        return Math.sqrt(ss);
    }

    /** Clips to {@code maxNorm} (no-op when it is 0 or the norm is already within it) and returns the norm before clipping. */
    public static double clip(Collection<Tensor> params, double maxNorm) {
        return clip(params, maxNorm, DoubleUnaryOperator.identity());
    }

    /**
     * Clips gradients spread over ranks: each rank holds part of them (a ZeRO shard), and
     * {@code groupSum} adds a value over those ranks, so the norm is the whole model's on every rank.
     */
    public static double clip(Collection<Tensor> params, double maxNorm, DoubleUnaryOperator groupSum) {
        return clip(params, params, maxNorm, groupSum);
    }

    /**
     * As above, where the norm sums the gradients of {@code counted} (a subset of {@code params}):
     * a parameter held whole by several ranks of the group is counted by one of them.
     */
    public static double clip(Collection<Tensor> counted, Collection<Tensor> params, double maxNorm, DoubleUnaryOperator groupSum) {
        double ss = 0;
        for (Tensor p : counted) {
            Tensor g = p.grad();
            if (g != null) ss += VectorMath.sumOfSquares(g.data(), Math.toIntExact(g.numel()));
        }
        double norm = Math.sqrt(groupSum.applyAsDouble(ss));
        if (maxNorm > 0 && norm > maxNorm) {
            float scale = (float) (maxNorm / (norm + 1e-6));
            for (Tensor p : params) {
                Tensor g = p.grad();
                if (g != null) VectorMath.scaleInPlace(g.data(), scale, Math.toIntExact(g.numel()));
            }
        }
        return norm;
    }
}
