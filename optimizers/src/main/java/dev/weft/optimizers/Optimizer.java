package dev.weft.optimizers;

import dev.weft.core.Tensor;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Updates parameters from their gradients. The seam every optimizer fits: a step at a given
 * learning rate, and a full, named state for checkpoints.
 *
 * <p>State tensor names are "FQN/STATE" (for example "model.norm.weight/exp_avg"), so a
 * checkpoint is addressed by parameter name and never by rank or position. State that is not a
 * tensor (per-parameter step and refresh counters, random seeds, limiter norms) is exposed as
 * {@link #stateScalars()}: strings that encode each value exactly (floats as their bit patterns),
 * stored in the checkpoint's safetensors metadata.
 *
 * <p>State may live off the device between uses ({@link #residency(StateResidency)}). Then the
 * tensors of {@link #stateTensors()} are still the live ones, but their memory is only bound while
 * their parameter is held: read or write them inside {@link #withState}, one parameter at a time
 * (a checkpoint writer walks {@link #stateByParameter()} so; touching unbound memory fails, naming
 * the tensor). {@link #loadState} acquires each parameter's state itself.
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

    /** Scalar state by name ("FQN/STATE"), exact: loading it back reproduces the optimizer bit for bit. */
    default Map<String, String> stateScalars() {
        return Map.of();
    }

    /**
     * Figures about the last step for the metrics log, by name ("apollo_mini/limited"): what a user
     * needs to see why an optimizer trains as it does, such as how often APOLLO's norm-growth limiter
     * cut the update. Not state: never checkpointed, empty for most optimizers.
     */
    default Map<String, Double> stepStats() {
        return Map.of();
    }

    /**
     * Each parameter's state tensors, by parameter name in step order: the same live tensors as
     * {@link #stateTensors()}, grouped as a {@link StateResidency} moves them. A parameter without
     * state has an empty list.
     */
    Map<String, List<Tensor>> stateByParameter();

    /**
     * Sets where state lives between uses (initially {@link StateResidency#RESIDENT}). Every step,
     * {@link #loadState} and {@link #withState} from then on acquire and release each parameter's
     * state through it. Set it while the state is resident, before handing the memory elsewhere.
     */
    void residency(StateResidency residency);

    /**
     * Runs {@code use} on parameter {@code parameter}'s state (its list in {@link #stateByParameter()}),
     * acquired from the residency before and released after, so it may be read or written in place.
     */
    void withState(String parameter, Consumer<List<Tensor>> use);

    /**
     * Restores the state saved from {@link #stateTensors()}, {@link #stateScalars()} and {@link #steps()},
     * acquiring each parameter's state in turn. Every tensor is checked before any is written.
     */
    void loadState(Map<String, Tensor> tensors, Map<String, String> scalars, long steps);

    /** Restores an optimizer that has no scalar state. */
    default void loadState(Map<String, Tensor> tensors, long steps) {
        loadState(tensors, Map.of(), steps);
    }

    /** Bytes of optimizer state per parameter name (not counting weights and gradients). */
    Map<String, Long> stateBytesByParameter();

    /** Bytes of optimizer state in total (not counting weights and gradients). */
    default long stateBytes() {
        long b = 0;
        for (long v : stateBytesByParameter().values()) b += v;
        return b;
    }

    /**
     * How many elements of its parameter one element of state tensor {@code stateName} stands for:
     * 1 for moments shaped like the parameter, more for packed or per-block state (8-bit AdamW's
     * codes, four to a slot, and its per-block scales). A checkpoint places a flat shard's state
     * within the whole by it.
     */
    default int stateStride(String stateName) {
        return 1;
    }

    /** How this optimizer's parameters may be split across ranks under ZeRO sharding. */
    default Sharding sharding() {
        return Sharding.ELEMENTWISE;
    }

    @Override
    void close();

    /** Sums a per-parameter map of state bytes into a map keyed by optimizer group label. */
    static Map<String, Long> bytesByLabel(Map<String, Long> perParameter, java.util.function.Function<String, String> label) {
        Map<String, Long> out = new LinkedHashMap<>();
        perParameter.forEach((k, v) -> out.merge(label.apply(k), v, Long::sum));
        return out;
    }
}
