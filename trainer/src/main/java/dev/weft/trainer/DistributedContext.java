package dev.weft.trainer;

import dev.weft.parallel.ProcessGroup;

import java.util.function.LongConsumer;

/**
 * How a {@link Trainer} runs as one data-parallel rank: the group its gradients are averaged
 * over. Rank 0 of the group is the leader: only it writes metrics, checkpoints, the loss curve
 * and the sample; every rank computes the same (global) losses and evaluation.
 *
 * @param group      the data-parallel group (the world group under {@code weft launch})
 * @param beforeStep   called with the step index before each optimizer step (the rank entry point
 *                     uses it for progress and for test-only failure injection); may be a no-op
 * @param ranksPerNode ranks on each node (consecutive ranks share a node): the failure domains of
 *                     snapshots
 */
public record DistributedContext(ProcessGroup group, LongConsumer beforeStep, int ranksPerNode) {
    public DistributedContext {
        if (group == null) throw new IllegalArgumentException("group must not be null");
        if (beforeStep == null) beforeStep = s -> {};
        if (ranksPerNode < 1 || group.size() % ranksPerNode != 0)
            throw new IllegalArgumentException(group.size() + " ranks do not split into nodes of " + ranksPerNode);
    }

    /** Every rank on one node. */
    public DistributedContext(ProcessGroup group, LongConsumer beforeStep) {
        this(group, beforeStep, group.size());
    }

    public int rank() {
        return group.rank();
    }

    public int size() {
        return group.size();
    }

    public boolean isLeader() {
        return group.rank() == 0;
    }
}
