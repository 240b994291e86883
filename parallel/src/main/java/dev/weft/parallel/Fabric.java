package dev.weft.parallel;

import java.lang.foreign.MemorySegment;

/**
 * The small message-passing layer every transport provides and every collective algorithm is
 * written against (see {@link Collectives}): addressed frames of at most {@link #maxFrameBytes(int)}
 * between world ranks. Sends are buffered (a send never waits for the matching receive, only for
 * back-pressure), so algorithms may send before they receive without deadlock.
 *
 * <p>Received frames come from the transport's {@link FramePool}; the receiver gives each back
 * with {@link #release} once it has consumed it, so steady-state traffic allocates nothing.
 */
interface Fabric extends AutoCloseable {
    int rank();

    int size();

    /**
     * The largest payload of one frame between this rank and world rank {@code peer}, either way;
     * algorithms chunk anything bigger. Both ends of a pair compute the same value.
     */
    int maxFrameBytes(int peer);

    /**
     * Sends {@code length} bytes of {@code payload} from {@code offset} (at most maxFrameBytes) to
     * {@code dst}; gives up at {@code deadlineNanos} (System.nanoTime). {@code msg} is read, not kept.
     */
    void send(int dst, Msg msg, MemorySegment payload, long offset, int length, long deadlineNanos);

    /** The frame {@code msg} from {@code src}, waiting until {@code deadlineNanos}; throws {@link PeerTimeout}. */
    Frame receive(int src, Msg msg, long deadlineNanos);

    /** Gives a received frame back to the pool once it has been consumed. */
    void release(Frame frame);

    /** The pool received frames come from (misses and frames held: tests show nothing leaks). */
    FramePool framePool();

    @Override
    void close();
}
