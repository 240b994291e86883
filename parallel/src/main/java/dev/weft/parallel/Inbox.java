package dev.weft.parallel;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Frames that have arrived but not yet been received, by sender and address, in arrival order:
 * a fixed table of chains threaded through the frames themselves, so filing and finding a frame
 * allocate nothing. Equal addresses chain in arrival order; a receive takes the first match.
 *
 * <p>Frames are native memory because every segment the reduction kernels see must be native.
 * Once the Vector API has loaded from a heap segment anywhere in the JVM, its loads from native
 * ones compile without the intrinsic and run at half speed (a 512 KiB combine: 26 GB/s clean,
 * 12 GB/s after heap calls; the shared-memory all-reduce of 64 MiB on 2 ranks fell from 7-7.7 to
 * 4-5 GB/s when frames were heap arrays).
 */
final class Inbox {
    private static final int BUCKETS = 1 << 12;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition arrived = lock.newCondition();
    private final Frame[] heads = new Frame[BUCKETS];
    private final Frame[] tails = new Frame[BUCKETS];

    void put(Frame f) {
        int b = Frame.hash(f.src, f.group, f.kind, f.seq, f.step, f.chunk) & (BUCKETS - 1);
        f.next = null;
        lock.lock();
        try {
            if (tails[b] == null) heads[b] = f;
            else tails[b].next = f;
            tails[b] = f;
            arrived.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** A pooled native copy of {@code length} bytes of {@code payload} from {@code offset}, addressed from {@code src}. */
    static Frame copyOf(FramePool pool, int src, Msg msg, MemorySegment payload, long offset, int length) {
        Frame f = pool.take(length).addressed(src, msg);
        if (length > 0) MemorySegment.copy(payload, offset, f.data, 0, length);
        return f;
    }

    /** The oldest frame for (src, msg), or null. */
    Frame poll(int src, Msg msg) {
        lock.lock();
        try {
            return pollLocked(src, msg);
        } finally {
            lock.unlock();
        }
    }

    /** Waits for a frame until {@code deadlineNanos}, or at most {@code maxWaitNanos}; null if none came. */
    Frame take(int src, Msg msg, long deadlineNanos, long maxWaitNanos) {
        lock.lock();
        try {
            long now = System.nanoTime();
            long until = maxWaitNanos >= deadlineNanos - now ? deadlineNanos : now + maxWaitNanos; // overflow-safe
            while (true) {
                Frame f = pollLocked(src, msg);
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

    private Frame pollLocked(int src, Msg msg) {
        int b = Frame.hash(src, msg.group, msg.kind, msg.seq, msg.step, msg.chunk) & (BUCKETS - 1);
        Frame prev = null;
        for (Frame f = heads[b]; f != null; prev = f, f = f.next) {
            if (!f.is(src, msg)) continue;
            if (prev == null) heads[b] = f.next;
            else prev.next = f.next;
            if (tails[b] == f) tails[b] = prev;
            f.next = null;
            return f;
        }
        return null;
    }
}
