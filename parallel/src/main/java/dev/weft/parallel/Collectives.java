package dev.weft.parallel;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The collective algorithms, written once against {@link Op} (and through it {@link Fabric}), so
 * the in-JVM transport the unit tests use runs exactly the code the Aeron transport runs.
 *
 * <p>Two families: a <em>direct</em> exchange (every rank sends its payload to every other, one
 * round, latency-optimal for small payloads and the few ranks of a node) and a <em>ring</em>
 * (reduce-scatter then all-gather over n-1 steps each, every rank sending 2(n-1)/n of the payload:
 * bandwidth-optimal). Both are deterministic: in the direct form every rank combines the ranks'
 * values in rank order 0..n-1; in the ring each block is combined in a fixed order (starting at
 * the rank after its owner) by one rank and then copied, so every rank holds the same bits and a
 * rerun reproduces them. Which one runs depends only on the payload size and the group size,
 * which every rank agrees on.
 *
 * <p>Block b of a payload of N floats over n ranks is [b*N/n, (b+1)*N/n): blocks may differ by
 * one element or be empty, so any length works.
 */
final class Collectives {
    /** Payloads up to this size (bytes) use the direct algorithms. */
    static final long SMALL_BYTES = 64 << 10;
    private static final int AG_STEP = 1 << 20;

    private Collectives() {}

    static long blockStart(long numel, int n, int b) {
        return b * numel / n;
    }

    private static int mod(int x, int n) {
        return ((x % n) + n) % n;
    }

    // ---- all-reduce ---------------------------------------------------------------------------

    static void allReduce(Op op, MemorySegment data, long numel, ReduceOp rop) {
        int n = op.size();
        if (n == 1) return;
        if (numel * 4 <= SMALL_BYTES) directAllReduce(op, data, numel, rop);
        else ringAllReduce(op, data, numel, rop);
    }

    static void directAllReduce(Op op, MemorySegment data, long numel, ReduceOp rop) {
        int n = op.size(), r = op.rank();
        long bytes = numel * 4;
        for (int p = 0; p < n; p++) if (p != r) op.send(p, 0, data, 0, bytes);
        MemorySegment acc = op.scratch(1, bytes); // slot 1: reduce() passes its own scratch (slot 0) in as data
        for (int q = 0; q < n; q++) {
            if (q == r) {
                if (q == 0) MemorySegment.copy(data, 0, acc, 0, bytes);
                else ReduceKernels.combine(rop, data, 0, acc, 0, acc, 0, numel);
            } else if (q == 0) {
                op.receiveCopy(q, 0, acc, 0, bytes);
            } else {
                op.receiveReduce(q, 0, acc, 0, bytes, rop);
            }
        }
        if (rop == ReduceOp.AVG) ReduceKernels.divide(acc, 0, numel, n);
        MemorySegment.copy(acc, 0, data, 0, bytes);
    }

    static void ringAllReduce(Op op, MemorySegment data, long numel, ReduceOp rop) {
        int n = op.size(), r = op.rank();
        int next = mod(r + 1, n), prev = mod(r - 1, n);
        // Reduce-scatter in place: at step s send block r-s-1 (reduced at step s-1), receive and
        // combine block r-s-2; after n-1 steps block r is complete here.
        for (int s = 0; s < n - 1; s++) {
            int sb = mod(r - s - 1, n), rb = mod(r - s - 2, n);
            sendBlock(op, next, s, data, numel, sb);
            long off = blockStart(numel, n, rb) * 4;
            op.receiveReduce(prev, s, data, off, blockStart(numel, n, rb + 1) * 4 - off, rop);
        }
        if (rop == ReduceOp.AVG) {
            long from = blockStart(numel, n, r);
            ReduceKernels.divide(data, from * 4, blockStart(numel, n, r + 1) - from, n);
        }
        ringAllGather(op, data, numel, AG_STEP);
    }

    /** Ring all-gather in place: on entry block r is this rank's; on exit every block is filled. */
    static void ringAllGather(Op op, MemorySegment data, long numel, int stepBase) {
        int n = op.size(), r = op.rank();
        int next = mod(r + 1, n), prev = mod(r - 1, n);
        for (int s = 0; s < n - 1; s++) {
            int sb = mod(r - s, n), rb = mod(r - s - 1, n);
            sendBlock(op, next, stepBase + s, data, numel, sb);
            long off = blockStart(numel, n, rb) * 4;
            op.receiveCopy(prev, stepBase + s, data, off, blockStart(numel, n, rb + 1) * 4 - off);
        }
    }

    private static void sendBlock(Op op, int dst, int step, MemorySegment data, long numel, int b) {
        int n = op.size();
        long off = blockStart(numel, n, b) * 4;
        op.send(dst, step, data, off, blockStart(numel, n, b + 1) * 4 - off);
    }

    // ---- reduce-scatter -----------------------------------------------------------------------

    /** {@code input} holds n blocks of {@code block} floats; block r's reduction lands in {@code output}. */
    static void reduceScatter(Op op, MemorySegment input, MemorySegment output, long block, ReduceOp rop) {
        int n = op.size(), r = op.rank();
        long bytes = block * 4;
        if (n == 1) {
            MemorySegment.copy(input, 0, output, 0, bytes);
            return;
        }
        if (input.asOverlappingSlice(output).isPresent()) {
            // in place (the output is this rank's block of the input, as ZeRO uses it): both
            // algorithms below write the output before they have read all of the input
            MemorySegment separate = op.scratch(0, bytes);
            reduceScatter(op, input, separate, block, rop);
            MemorySegment.copy(separate, 0, output, 0, bytes);
            return;
        }
        if (block * 4 * n <= SMALL_BYTES) {
            // Direct: block j goes to rank j, which combines the n contributions in rank order.
            for (int p = 0; p < n; p++) if (p != r) op.send(p, 0, input, p * bytes, bytes);
            for (int q = 0; q < n; q++) {
                if (q == r) {
                    if (q == 0) MemorySegment.copy(input, r * bytes, output, 0, bytes);
                    else ReduceKernels.combine(rop, input, r * bytes, output, 0, output, 0, block);
                } else if (q == 0) {
                    op.receiveCopy(q, 0, output, 0, bytes);
                } else {
                    op.receiveReduce(q, 0, output, 0, bytes, rop);
                }
            }
        } else {
            // Ring, out of place: the partial sums travel in a scratch block; the input is untouched.
            int next = mod(r + 1, n), prev = mod(r - 1, n);
            MemorySegment scratch = n > 2 ? op.scratch(1, bytes) : null; // slot 1: the in-place form above holds slot 0
            for (int s = 0; s < n - 1; s++) {
                int sb = mod(r - s - 1, n), rb = mod(r - s - 2, n);
                if (s == 0) op.send(next, s, input, sb * bytes, bytes);
                else op.send(next, s, scratch, 0, bytes);
                MemorySegment dst = s == n - 2 ? output : scratch;
                long inOff = rb * bytes;
                op.receive(prev, s, 0, bytes, (frame, o, count) -> ReduceKernels.combine(rop, frame, 0, input, inOff + o, dst, o, count));
            }
        }
        if (rop == ReduceOp.AVG) ReduceKernels.divide(output, 0, block, n);
    }

    // ---- all-gather ---------------------------------------------------------------------------

    static void allGather(Op op, MemorySegment input, MemorySegment output, long block) {
        int n = op.size(), r = op.rank();
        long bytes = block * 4;
        MemorySegment.copy(input, 0, output, r * bytes, bytes);
        if (n == 1) return;
        if (bytes * n <= SMALL_BYTES) {
            for (int p = 0; p < n; p++) if (p != r) op.send(p, 0, input, 0, bytes);
            for (int q = 0; q < n; q++) if (q != r) op.receiveCopy(q, 0, output, q * bytes, bytes);
        } else {
            ringAllGather(op, output, block * n, 0);
        }
    }

    // ---- broadcast and reduce -----------------------------------------------------------------

    static void broadcast(Op op, MemorySegment data, long numel, int root) {
        int n = op.size(), r = op.rank();
        if (n == 1) return;
        long bytes = numel * 4;
        if (bytes <= SMALL_BYTES || n == 2) {
            if (r == root) {
                for (int p = 0; p < n; p++) if (p != r) op.send(p, 0, data, 0, bytes);
            } else {
                op.receiveCopy(root, 0, data, 0, bytes);
            }
            return;
        }
        // Scatter the blocks from the root, then all-gather them around the ring: the root sends
        // the payload once instead of n-1 times.
        if (r == root) {
            for (int p = 0; p < n; p++) if (p != r) sendBlock(op, p, 0, data, numel, p);
        } else {
            long off = blockStart(numel, n, r) * 4;
            op.receiveCopy(root, 0, data, off, blockStart(numel, n, r + 1) * 4 - off);
        }
        ringAllGather(op, data, numel, 1);
    }

    /** Reduces onto {@code root} through a scratch copy, so the other ranks' tensors stay as they were. */
    static void reduce(Op op, MemorySegment data, long numel, int root, ReduceOp rop) {
        if (op.size() == 1) return;
        MemorySegment scratch = op.scratch(0, numel * 4);
        MemorySegment.copy(data, 0, scratch, 0, numel * 4);
        allReduce(op, scratch, numel, rop);
        if (op.rank() == root) MemorySegment.copy(scratch, 0, data, 0, numel * 4);
    }

    // ---- all-to-all and barrier ---------------------------------------------------------------

    static void allToAll(Op op, MemorySegment input, MemorySegment output, long block) {
        int n = op.size(), r = op.rank();
        long bytes = block * 4;
        for (int s = 1; s < n; s++) {
            int p = mod(r + s, n);
            op.send(p, 0, input, p * bytes, bytes);
        }
        MemorySegment.copy(input, r * bytes, output, r * bytes, bytes);
        for (int s = 1; s < n; s++) {
            int q = mod(r - s, n);
            op.receiveCopy(q, 0, output, q * bytes, bytes);
        }
    }

    /** Every rank tells every other that it arrived; a timeout names all that did not. */
    static void barrier(Op op) {
        int n = op.size(), r = op.rank();
        for (int p = 0; p < n; p++) if (p != r) op.send(p, 0, MemorySegment.NULL, 0, 0);
        List<Integer> missing = new ArrayList<>();
        for (int q = 0; q < n; q++) {
            if (q == r) continue;
            long deadline = missing.isEmpty() ? op.deadline : System.nanoTime();
            if (!op.tryReceiveEmpty(q, 0, deadline)) missing.add(q);
        }
        if (!missing.isEmpty())
            throw new CollectiveTimeoutException(op.name, op.group.name(), op.seq, missing, op.group.timeout());
    }
}
