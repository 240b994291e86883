package dev.weft.parallel;

import java.lang.foreign.MemorySegment;

/** A same-host path for a group whose ranks all share memory: they reduce straight out of it. */
interface SharedMemoryPath extends AutoCloseable {
    /** Whether this path takes an all-reduce of {@code numel} floats (large ones; small go over messages). */
    boolean handles(long numel);

    void allReduce(Op op, MemorySegment data, long numel, ReduceOp rop);

    @Override
    void close();
}
