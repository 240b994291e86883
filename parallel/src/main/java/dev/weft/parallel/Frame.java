package dev.weft.parallel;

import java.lang.foreign.MemorySegment;

/**
 * One received frame: its address (sender and {@link Msg} fields), its payload in native memory
 * of a {@link FramePool} size class, and a link for whichever list holds it (a pool's free list or
 * an {@link Inbox} chain; never both). A frame belongs to one thread at a time: the transport fills
 * it, the inbox files it, one receiver consumes it and gives it back.
 */
final class Frame {
    /** The payload: {@link #length} bytes from offset 0 of this segment, whose size is the frame's size class. */
    final MemorySegment data;
    final int sizeClass;
    int length;
    int src;
    int group;
    int kind;
    long seq;
    int step;
    int chunk;
    Frame next;

    Frame(MemorySegment data, int sizeClass) {
        this.data = data;
        this.sizeClass = sizeClass;
    }

    /** Sets the address from {@code msg}, as sent by world rank {@code src}. */
    Frame addressed(int src, Msg msg) {
        return addressed(src, msg.group, msg.kind, msg.seq, msg.step, msg.chunk);
    }

    Frame addressed(int src, int group, int kind, long seq, int step, int chunk) {
        this.src = src;
        this.group = group;
        this.kind = kind;
        this.seq = seq;
        this.step = step;
        this.chunk = chunk;
        return this;
    }

    boolean is(int src, Msg msg) {
        return this.src == src && chunk == msg.chunk && step == msg.step && seq == msg.seq && group == msg.group && kind == msg.kind;
    }

    /** The inbox bucket of an address (any mix of all fields; equal addresses share one). */
    static int hash(int src, int group, int kind, long seq, int step, int chunk) {
        long h = src * 0x9E3779B97F4A7C15L;
        h = (h ^ group) * 0xC2B2AE3D27D4EB4FL;
        h = (h ^ kind) * 0x9E3779B97F4A7C15L;
        h = (h ^ seq) * 0xC2B2AE3D27D4EB4FL;
        h = (h ^ step) * 0x9E3779B97F4A7C15L;
        h = (h ^ chunk) * 0xC2B2AE3D27D4EB4FL;
        return (int) (h ^ (h >>> 32));
    }
}
