package dev.weft.parallel;

import dev.weft.core.Tensor;

import java.time.Duration;

/**
 * A set of ranks that run collectives together, in the manner of torch.distributed's process
 * groups. Tensors are contiguous float32; collectives work in place where the shapes allow.
 *
 * <p>Every rank of the group must issue the same collectives in the same order; each gets a
 * sequence number in the group, and each has a deadline ({@link #timeout()}): on expiry a
 * {@link CollectiveTimeoutException} names the operation, the group, the sequence number and the
 * ranks that did not arrive. Results are deterministic: the same inputs give bit-identical outputs
 * on every rank, run after run.
 *
 * <p>Implementations provide the asynchronous forms; the synchronous ones wait on them.
 */
public interface ProcessGroup extends AutoCloseable {
    /** This process's rank within the group, 0 .. size()-1. */
    int rank();

    int size();

    /** The group's name, used in diagnostics ("world", "dp", "tp:0", ...). */
    String name();

    /** The deadline of each operation. */
    Duration timeout();

    /** Reduces {@code t} across ranks, in place on every rank. */
    Work allReduceAsync(Tensor t, ReduceOp op);

    /**
     * {@code input} holds size() equal blocks; rank r receives the reduction of block r in
     * {@code output}, which may be block r of {@code input} itself (in place).
     */
    Work reduceScatterAsync(Tensor input, Tensor output, ReduceOp op);

    /** {@code output} receives every rank's {@code input}, in rank order; {@code input} may be this rank's block of {@code output}. */
    Work allGatherAsync(Tensor input, Tensor output);

    /** Copies {@code t} from {@code root} to every rank. */
    Work broadcastAsync(Tensor t, int root);

    /** Reduces {@code t} onto {@code root} (other ranks' tensors are left as they were). */
    Work reduceAsync(Tensor t, int root, ReduceOp op);

    /** Block j of {@code input} on rank i lands as block i of {@code output} on rank j. */
    Work allToAllAsync(Tensor input, Tensor output);

    /** Completes once every rank has entered it. */
    Work barrierAsync();

    /** Sends {@code t} to rank {@code dst}, matched by {@code tag} with the receiver's recv. */
    Work sendAsync(Tensor t, int dst, int tag);

    /** Receives into {@code t} from rank {@code src} the message sent with {@code tag}. */
    Work recvAsync(Tensor t, int src, int tag);

    /**
     * A group of the given ranks (of this group), named {@code name}. Every rank of this group
     * calls it with the same arguments, in the same order; ranks not in the list get null.
     */
    ProcessGroup subgroup(String name, int... ranks);

    @Override
    void close();

    default void allReduce(Tensor t, ReduceOp op) {
        allReduceAsync(t, op).await();
    }

    default void reduceScatter(Tensor input, Tensor output, ReduceOp op) {
        reduceScatterAsync(input, output, op).await();
    }

    default void allGather(Tensor input, Tensor output) {
        allGatherAsync(input, output).await();
    }

    default void broadcast(Tensor t, int root) {
        broadcastAsync(t, root).await();
    }

    default void reduce(Tensor t, int root, ReduceOp op) {
        reduceAsync(t, root, op).await();
    }

    default void allToAll(Tensor input, Tensor output) {
        allToAllAsync(input, output).await();
    }

    default void barrier() {
        barrierAsync().await();
    }

    default void send(Tensor t, int dst, int tag) {
        sendAsync(t, dst, tag).await();
    }

    default void recv(Tensor t, int src, int tag) {
        recvAsync(t, src, tag).await();
    }

    /**
     * {@code value} summed over the group in about double precision (carried as two floats), the
     * same on every rank: a gradient norm's square must not lose the small shards' share.
     */
    default double sum(double value) {
        try (dev.weft.core.Scope s = dev.weft.core.Scope.open()) {
            float hi = (float) value, lo = (float) (value - hi);
            Tensor t = Tensor.of(new float[] {hi, lo}, 2);
            allReduce(t, ReduceOp.SUM);
            return (double) t.get(0) + t.get(1);
        }
    }
}
