package dev.weft.parallel;

import java.lang.foreign.MemorySegment;

/** A same-host path for a group whose ranks all share memory: they reduce straight out of it and pass messages through it. */
interface SharedMemoryPath extends AutoCloseable {
    /** Whether this path takes a collective over {@code numel} floats in all (payloads under weft.shm.min go over messages). */
    boolean handles(long numel);

    void allReduce(Op op, MemorySegment data, long numel, ReduceOp rop);

    /** Every rank's {@code out} (block floats) gets the reduction of block {@code rank} of every rank's {@code in}. */
    void reduceScatter(Op op, MemorySegment in, MemorySegment out, long block, ReduceOp rop);

    /** Every rank's {@code out} (n blocks) gets every rank's {@code in} (block floats), in rank order. */
    void allGather(Op op, MemorySegment in, MemorySegment out, long block);

    /** Sends {@code bytes} of {@code data} to group rank dst, matched by tag (see {@link ShmPointToPoint}). */
    void send(Op op, int dst, long tag, MemorySegment data, long bytes);

    /** Receives into {@code data} the {@code bytes} that group rank src sent with tag. */
    void recv(Op op, int src, long tag, MemorySegment data, long bytes);

    @Override
    void close();
}
