package dev.weft.parallel;

import java.lang.foreign.MemorySegment;

/**
 * The small message-passing layer every transport provides and every collective algorithm is
 * written against (see {@link Collectives}): addressed frames of at most {@link #maxFrameBytes()}
 * between world ranks. Sends are buffered (a send never waits for the matching receive, only for
 * back-pressure), so algorithms may send before they receive without deadlock.
 */
interface Fabric extends AutoCloseable {
    int rank();

    int size();

    /** The largest payload of one frame; algorithms chunk anything bigger. */
    int maxFrameBytes();

    /** Sends {@code payload} (at most maxFrameBytes) to {@code dst}; gives up at {@code deadlineNanos} (System.nanoTime). */
    void send(int dst, Msg msg, MemorySegment payload, long deadlineNanos);

    /** The payload of the frame {@code msg} from {@code src}, waiting until {@code deadlineNanos}; throws {@link PeerTimeout}. */
    MemorySegment receive(int src, Msg msg, long deadlineNanos);

    @Override
    void close();
}
