package dev.weft.parallel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/** Frames that have arrived but not yet been received, by sender and address, in arrival order. */
final class Inbox {
    private record From(int src, Msg msg) {}

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition arrived = lock.newCondition();
    private final Map<From, ArrayDeque<MemorySegment>> frames = new HashMap<>();

    void put(int src, Msg msg, MemorySegment frame) {
        if (!frame.isNative()) throw new IllegalArgumentException("frames must be native memory (see Inbox.copyOf)");
        lock.lock();
        try {
            frames.computeIfAbsent(new From(src, msg), k -> new ArrayDeque<>(2)).add(frame);
            arrived.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * A native copy of a frame, which every transport files: frames must be native because every
     * segment the reduction kernels see must be native. Once
     * the Vector API has loaded from a heap segment anywhere in the JVM, its loads from native
     * ones compile without the intrinsic and run at half speed (a 512 KiB combine: 26 GB/s clean,
     * 12 GB/s after heap calls; the shared-memory all-reduce of 64 MiB on 2 ranks fell from
     * 7-7.7 to 4-5 GB/s when frames were heap arrays).
     */
    static MemorySegment copyOf(MemorySegment frame) {
        MemorySegment copy = Arena.ofAuto().allocate(frame.byteSize(), 8);
        MemorySegment.copy(frame, 0, copy, 0, frame.byteSize());
        return copy;
    }

    /** The oldest frame for (src, msg), or null. */
    MemorySegment poll(int src, Msg msg) {
        lock.lock();
        try {
            return pollLocked(new From(src, msg));
        } finally {
            lock.unlock();
        }
    }

    /** Waits for a frame until {@code deadlineNanos}, or at most {@code maxWaitNanos}; null if none came. */
    MemorySegment take(int src, Msg msg, long deadlineNanos, long maxWaitNanos) {
        From key = new From(src, msg);
        lock.lock();
        try {
            long now = System.nanoTime();
            long until = maxWaitNanos >= deadlineNanos - now ? deadlineNanos : now + maxWaitNanos; // overflow-safe
            while (true) {
                MemorySegment f = pollLocked(key);
                if (f != null) return f;
                long left = until - System.nanoTime();
                if (left <= 0) return null;
                arrived.awaitNanos(left);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a frame from rank " + src, e);
        } finally {
            lock.unlock();
        }
    }

    /** Wakes every waiter (they re-check their frames); used when another thread made progress. */
    void wakeAll() {
        lock.lock();
        try {
            arrived.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private MemorySegment pollLocked(From key) {
        ArrayDeque<MemorySegment> q = frames.get(key);
        if (q == null) return null;
        MemorySegment f = q.poll();
        if (q.isEmpty()) frames.remove(key);
        return f;
    }
}
