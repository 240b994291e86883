package dev.weft.core.nn;

import dev.weft.core.ActivationCheckpoint;
import dev.weft.core.Tensor;

import java.util.function.UnaryOperator;

/**
 * What a module keeps of its forward for backward: the seam where activation checkpointing (and
 * activation offload) wrap a module's forward body. {@link Module#around} applies it innermost,
 * inside the layout's boundary and hooks, so a ZeRO-3 module's parameters are gathered both when
 * the body runs in forward and when backward runs it again.
 */
@FunctionalInterface
public interface ActivationPolicy {
    /** Runs {@code body} (module {@code m}'s forward) on {@code x} and returns its output, keeping for backward what this policy keeps. */
    Tensor apply(Module m, Tensor x, UnaryOperator<Tensor> body);

    /** Activation checkpointing: keep less in forward, compute it again in backward (see {@link ActivationCheckpoint}). */
    enum Recompute implements ActivationPolicy {
        /** Keeps only the module's input and output; backward runs the whole forward again. */
        FULL {
            @Override
            public Tensor apply(Module m, Tensor x, UnaryOperator<Tensor> body) {
                return ActivationCheckpoint.full(x, body);
            }
        },
        /** Keeps the input, the output and the linear projections' outputs; backward recomputes the rest. */
        SELECTIVE {
            @Override
            public Tensor apply(Module m, Tensor x, UnaryOperator<Tensor> body) {
                return ActivationCheckpoint.selective(x, body);
            }
        }
    }
}
