package dev.weft.optimizers;

import dev.weft.core.Tensor;

import java.util.Map;

/**
 * Updates parameters from their gradients. The seam every optimizer (AdamW now; the low-rank
 * family later) fits: a step at a given learning rate, and a full, named state for checkpoints.
 *
 * <p>State tensor names are "FQN/STATE" (for example "model.norm.weight/exp_avg"), so a
 * checkpoint is addressed by parameter name and never by rank or position.
 */
public interface Optimizer extends AutoCloseable {
    /** The optimizer's name as written in configs ("adamw"). */
    String name();

    /** Applies one update to every parameter that has a gradient. */
    void step(double lr);

    /** Number of steps taken so far. */
    long steps();

    /** Every state tensor by name; the tensors are live (not copies). */
    Map<String, Tensor> stateTensors();

    /** Restores the state saved from {@link #stateTensors()} and {@link #steps()}. */
    void loadState(Map<String, Tensor> tensors, long steps);

    /** Bytes of optimizer state (not counting weights and gradients). */
    long stateBytes();

    @Override
    void close();
}
