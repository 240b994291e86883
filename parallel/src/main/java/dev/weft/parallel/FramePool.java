package dev.weft.parallel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Native buffers for received frames, by power-of-two size class, handed out and given back so
 * that a transport in steady state receives without allocating: a frame is taken when it arrives
 * and returned once its receiver has copied or combined it. Only a miss (no free frame of the
 * class) allocates; {@link #misses()} counts them and {@link #peakHeld()} the most frames held at
 * once, so a test can show that the pool only ever allocates to reach that high-water mark, which
 * depends on how far peers run ahead, never on how much traffic has passed.
 *
 * <p>Any thread may take and give back (the polling rank thread, a TCP reader, an in-JVM sender;
 * the receiving lane), so each class is a small locked stack: uncontended, a lock costs far less
 * than the copy of a frame, and a lock-free stack over the frames' own links would need ABA care.
 * A class keeps at most {@link #KEEP} free frames; more (after a burst) are left to the GC.
 */
final class FramePool {
    static final int MIN_CLASS = 6; // 64 B
    static final int KEEP = 1024;
    private final Stack[] classes = new Stack[31];

    FramePool() {
        for (int c = 0; c < classes.length; c++) classes[c] = new Stack();
    }

    /** A frame whose payload holds at least {@code length} bytes, with {@link Frame#length} set. */
    Frame take(int length) {
        int c = sizeClass(length);
        Frame f = classes[c].pop();
        if (f == null) {
            // native, not a byte[]: the reduction kernels must only ever see native segments (see Inbox)
            f = new Frame(Arena.ofAuto().allocate(1L << c, 64), c);
        }
        f.length = length;
        return f;
    }

    void give(Frame f) {
        f.next = null;
        classes[f.sizeClass].push(f);
    }

    /** Frames allocated because none of their class was free, since this pool was made. */
    long misses() {
        long m = 0;
        for (Stack c : classes) m += c.allocated();
        return m;
    }

    /** Frames handed out since this pool was made. */
    long taken() {
        long t = 0;
        for (Stack c : classes) t += c.taken();
        return t;
    }

    /** Frames taken and not yet given back. */
    long held() {
        long h = 0;
        for (Stack c : classes) h += c.held();
        return h;
    }

    /**
     * The most frames of each class held at once, summed over the classes: what the pool must hold
     * to serve its traffic. Without leaks or frames dropped over {@link #KEEP}, misses equal it.
     */
    long peakHeld() {
        long p = 0;
        for (Stack c : classes) p += c.peak();
        return p;
    }

    static int sizeClass(int length) {
        if (length < 0 || length > 1 << 30) throw new IllegalArgumentException("frame of " + length + " bytes");
        return Math.max(MIN_CLASS, 32 - Integer.numberOfLeadingZeros(Math.max(1, length) - 1));
    }

    private static final class Stack {
        private Frame[] frames = new Frame[16];
        private int size;
        private long held, peak, allocated, taken;

        /** A free frame, or null when the caller must allocate one (counted as a miss). */
        synchronized Frame pop() {
            taken++;
            peak = Math.max(peak, ++held);
            if (size == 0) {
                allocated++;
                return null;
            }
            Frame f = frames[--size];
            frames[size] = null;
            return f;
        }

        synchronized void push(Frame f) {
            held--;
            if (size == KEEP) return;
            if (size == frames.length) frames = java.util.Arrays.copyOf(frames, Math.min(KEEP, size * 2));
            frames[size++] = f;
        }

        synchronized long held() { return held; }
        synchronized long peak() { return peak; }
        synchronized long allocated() { return allocated; }
        synchronized long taken() { return taken; }
    }
}
