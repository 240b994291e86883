package dev.weft.parallel;

import java.lang.foreign.MemorySegment;

/** A same-host path for a group whose ranks all share memory: they reduce straight out of it. */
interface SharedMemoryPath extends AutoCloseable {
    /** Whether this path takes a collective over {@code numel} floats in all (payloads under weft.shm.min go over messages). */
    boolean handles(long numel);

    void allReduce(Op op, MemorySegment data, long numel, ReduceOp rop);

    /** Every rank's {@code out} (block floats) gets the reduction of block {@code rank} of every rank's {@code in}. */
    void reduceScatter(Op op, MemorySegment in, MemorySegment out, long block, ReduceOp rop);

    /** Every rank's {@code out} (n blocks) gets every rank's {@code in} (block floats), in rank order. */
    void allGather(Op op, MemorySegment in, MemorySegment out, long block);

    @Override
    void close();
}
