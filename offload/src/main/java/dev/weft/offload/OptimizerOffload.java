package dev.weft.offload;

import dev.weft.core.Tensor;
import dev.weft.optimizers.Optimizer;
import dev.weft.optimizers.StateResidency;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Optimizer state on host or disk, with the update streamed through it (the ZeRO-Infinity / Fuyou
 * pattern): while parameter i is updated, parameter i+1's state is read back and parameter i-1's
 * is written out, within {@code offload.prefetch_mib} in flight. It works for every optimizer
 * because every optimizer steps parameter by parameter through {@link StateResidency}.
 *
 * <p>Under ZeRO-3 with parameter offload, a parameter is a view of its unit's weight shard, which
 * the optimizer writes too: the shard is acquired with the parameter's state, and stays bound while
 * the next parameter announced lies in the same shard, so a unit's shard is read and written once
 * per step rather than once per parameter.
 */
public final class OptimizerOffload implements StateResidency {
    private final Offloader offloader;
    private final Map<String, Tensor> parameters;
    private final Set<String> pinnedAhead = new HashSet<>();
    private final List<Offloader.Handle> writing = new java.util.ArrayList<>(); // the last parameter's write-backs
    private final long bytes;

    /** Moves {@code optimizer}'s state to {@code tier} and streams its steps through it; {@code parameters} are the tensors it steps. */
    public OptimizerOffload(Offloader offloader, Optimizer optimizer, Map<String, Tensor> parameters, Tier tier) {
        this.offloader = offloader;
        this.parameters = parameters;
        long b = 0;
        for (var e : optimizer.stateByParameter().entrySet()) {
            for (Tensor t : e.getValue()) {
                offloader.offload(t, tier, "optimizer state");
                b += t.storage().bytes();
            }
        }
        this.bytes = b;
        offloader.flush();
        optimizer.residency(this);
    }

    /** Bytes of state moved off the device. */
    public long bytes() {
        return bytes;
    }

    @Override
    public void upcoming(String parameter, List<Tensor> state) {
        for (Tensor t : state) offloader.prefetch(handle(t));
        Offloader.Handle shard = shardOf(parameter);
        if (shard == null) return;
        if (offloader.isAcquired(shard)) { // the parameter being updated shares it: keep it bound through the next
            offloader.acquire(shard);
            pinnedAhead.add(parameter);
        } else {
            offloader.prefetch(shard);
        }
    }

    @Override
    public void acquire(String parameter, List<Tensor> state) {
        for (Tensor t : state) offloader.acquire(handle(t));
        Offloader.Handle shard = shardOf(parameter);
        if (shard != null && !pinnedAhead.remove(parameter)) offloader.acquire(shard);
    }

    @Override
    public void release(String parameter, List<Tensor> state) {
        // one parameter's write-back in flight: the one before must have landed, which bounds the step's device bytes
        for (Offloader.Handle h : writing) offloader.awaitSent(h);
        writing.clear();
        for (Tensor t : state) {
            Offloader.Handle h = handle(t);
            offloader.release(h, true);
            writing.add(h);
        }
        Offloader.Handle shard = shardOf(parameter);
        if (shard != null) offloader.release(shard, true);
    }

    /**
     * The most device bytes a step streams through at once, for the planner: a parameter's state,
     * the next one's being read and (from disk) the one before's being written, over consecutive
     * parameters of {@code stateBytes} (in step order).
     */
    public static long window(List<Long> stateBytes, Tier tier) {
        long most = 0;
        for (int i = 0; i < stateBytes.size(); i++) {
            long w = stateBytes.get(i) + (i + 1 < stateBytes.size() ? stateBytes.get(i + 1) : 0);
            if (tier == Tier.DISK && i > 0) w += stateBytes.get(i - 1);
            most = Math.max(most, w);
        }
        return most;
    }

    private Offloader.Handle handle(Tensor t) {
        Offloader.Handle h = offloader.handleOf(t);
        if (h == null) throw new IllegalStateException("optimizer state '" + t.name() + "' was never offloaded");
        return h;
    }

    /** The offloaded weight shard that {@code parameter} lies in, or null where weights stay on the device. */
    private Offloader.Handle shardOf(String parameter) {
        Tensor p = parameters.get(parameter);
        return p == null ? null : offloader.handleOf(p);
    }
}
