package dev.weft.optimizers;

import dev.weft.core.Tensor;

import java.util.List;

/**
 * Where an optimizer's state lives when it is not in use: the seam for offloading it to host
 * memory or disk and streaming the update through it (ZeRO-Infinity, Fuyou: read parameter i+1's
 * state while i is updated and i−1's is written back).
 *
 * <p>An optimizer touches the state of one parameter only between {@link #acquire} and
 * {@link #release} for that parameter: each step, each parameter that has a gradient is acquired,
 * updated and released in the optimizer's fixed parameter order, and {@link Optimizer#loadState}
 * and {@link Optimizer#withState} do the same one parameter at a time. Outside those windows a
 * residency may take the memory away ({@link dev.weft.core.Storage#evict()} on each tensor's
 * {@link Tensor#storage() storage}) and must give it back before {@code acquire} returns
 * ({@link dev.weft.core.Storage#bind}), holding exactly the bytes the optimizer last left there.
 * The tensors stay the same objects throughout; only the memory behind them moves.
 *
 * <p>Each step announces every parameter it will acquire through {@link #upcoming} before acquiring
 * it: the first before the step's first acquire, and each next one right after the previous one is
 * acquired and before it is updated, so a prefetch overlaps that update. A parameter without a
 * gradient is neither announced nor acquired that step. Announcements do not cross parameter
 * groups: under {@link ParameterGroups} each group's optimizer steps on its own.
 *
 * <p>The state of a parameter is the list {@link Optimizer#stateByParameter()} gives for it, in the
 * same order; each tensor is named "FQN/STATE" as in the checkpoint and owns its whole storage. A
 * parameter with no state (SGD without momentum) is still acquired and released, with an empty list.
 * Calls come from the thread that steps the optimizer.
 */
public interface StateResidency {
    /** State that never moves: every call does nothing. The default of every optimizer. */
    StateResidency RESIDENT = new StateResidency() {};

    /** {@code parameter}'s state will be acquired next (after the one now held, if any): a cue to start fetching it. */
    default void upcoming(String parameter, List<Tensor> state) {}

    /** Makes {@code parameter}'s state resident; the optimizer reads and writes it until {@link #release}. */
    default void acquire(String parameter, List<Tensor> state) {}

    /** The optimizer is done with {@code parameter}'s state for now; its bytes are final until the next acquire. */
    default void release(String parameter, List<Tensor> state) {}
}
