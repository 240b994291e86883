package dev.weft.parallel;

import dev.weft.core.Tensor;

import java.util.Map;
import java.util.function.DoubleUnaryOperator;

/**
 * How a rank's gradients become the gradients its optimizer steps with, one strategy per
 * data-parallel stage: none (one rank), DDP (all-reduce, everyone steps everything), ZeRO-1
 * (all-reduce, each rank steps its shard), ZeRO-2 (reduce-scatter during backward, each rank keeps
 * only its shard). The step runner drives every strategy the same way:
 * <pre>
 *   beginStep()
 *   for each micro-batch: beginMicroStep(last); forward; backward
 *   finishGradients()            // every reduction has landed
 *   clip with groupSum, step the optimizer over optimizerParameters()
 *   afterOptimizerStep()         // ZeRO: every rank holds the updated weights again
 * </pre>
 */
public interface GradientSync extends AutoCloseable {
    /** Zeroes (or releases) the gradients of the last step. */
    void beginStep();

    /** Declares the next backward pass; {@code last} is the step's final micro-batch. */
    void beginMicroStep(boolean last);

    /** Waits for every reduction of this step; afterwards {@link #optimizerParameters()} hold their gradients. */
    void finishGradients();

    /**
     * The tensors this rank's optimizer steps, by parameter name: whole parameters, or 1-D (vector)
     * and [1, n] (matrix) views of the flat range of a parameter this rank owns. Each has its gradient.
     */
    Map<String, Tensor> optimizerParameters();

    /**
     * Where this rank's part of parameter {@code name} lies, {offset, length} in its flattened
     * elements, or null when the rank holds all of it.
     */
    default long[] shardOf(String name) {
        return null;
    }

    /**
     * True when this rank holds only a shard of parameter {@code name}'s weights (ZeRO-3): its
     * {@link #optimizerParameters()} view then holds them, placed by {@link #shardOf}.
     */
    default boolean shardsWeight(String name) {
        return false;
    }

    /**
     * The parameters whose gradients this rank counts toward the global norm: each element of the
     * model is counted by exactly one rank of the group {@link #groupSum()} sums over.
     */
    default Map<String, Tensor> normParameters() {
        return optimizerParameters();
    }

    /** Sums a per-rank value over the ranks that share the optimizer's work (identity for none and DDP). */
    DoubleUnaryOperator groupSum();

    /** Brings every rank's copy of the weights up to date after the optimizer stepped its part. */
    void afterOptimizerStep();

    /** The mean of a per-rank value over the data-parallel group, bit-identical on every rank. */
    double mean(double value);

    @Override
    void close();

    /** One process: gradients stay where autograd put them. */
    static GradientSync none(Map<String, Tensor> parameters) {
        return new GradientSync() {
            @Override public void beginStep() {
                for (Tensor p : parameters.values()) p.zeroGrad();
            }
            @Override public void beginMicroStep(boolean last) {}
            @Override public void finishGradients() {}
            @Override public Map<String, Tensor> optimizerParameters() { return parameters; }
            @Override public DoubleUnaryOperator groupSum() { return DoubleUnaryOperator.identity(); }
            @Override public void afterOptimizerStep() {}
            @Override public double mean(double value) { return value; }
            @Override public void close() {}
        };
    }
}
