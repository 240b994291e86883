package dev.weft.parallel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Tagged send and receive between the ranks of a group on one host, through shared memory: one
 * channel per ordered pair of ranks, a ring of {@link #DEPTH} pieces that the sender fills and the
 * receiver drains, each piece headed by its message's tag, length and offset. A message crosses
 * in pieces, so a large one pipelines (the receiver copies piece k out while the sender copies
 * piece k+1 in) and a 4 KiB one is a copy in, one counter hand-off and a copy out.
 *
 * <p>Receives match by tag, as over frames: a receive that finds another tag's message at the head
 * of its channel moves it aside (into a native buffer kept until its own receive comes) and looks
 * further. A send waiting for room drains its peer's channel towards it the same way, so two ranks
 * that both send before they receive (a pipeline's exchange) cannot stall each other however large
 * the messages: sends are buffered, as the {@link Fabric} contract promises. Messages with the
 * same tag between the same pair arrive in send order.
 *
 * <p>Sends to one peer run one at a time (a lock per peer), and so do receives from one; the
 * group's lanes and a synchronous caller may both use a channel.
 */
final class ShmPointToPoint {
    /** Bytes per piece, header included (knob weft.shm.p2p.piece, KiB; every rank of a job must use the same). */
    static final long PIECE = Long.getLong("weft.shm.p2p.piece", 256) << 10;
    static final int DEPTH = 4;
    private static final long HEADER = 64, PAYLOAD = PIECE - HEADER, LINE = 128;
    /** Header fields: the tag, the message's length in bytes, this piece's offset in it. */
    private static final long TAG = 0, LENGTH = 8, OFFSET = 16;
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();
    private static final int CORES = Runtime.getRuntime().availableProcessors();

    private final int n, rank;
    private final MemorySegment region;
    private final ReentrantLock[] sending, receiving;
    /** Per peer: messages moved aside, oldest first (only the newest may still be filling). */
    private final List<List<Aside>> aside;

    /** A message taken off its channel before its receive came (a rare path: it allocates). */
    private static final class Aside {
        final long tag, length;
        final MemorySegment bytes;
        long filled;

        Aside(long tag, long length) {
            this.tag = tag;
            this.length = length;
            this.bytes = Arena.ofAuto().allocate(Math.max(1, length), 64);
        }

        boolean complete() {
            return filled == length;
        }
    }

    ShmPointToPoint(MemorySegment region, int n, int rank) {
        this.n = n;
        this.rank = rank;
        this.region = region;
        this.sending = new ReentrantLock[n];
        this.receiving = new ReentrantLock[n];
        this.aside = new ArrayList<>(n);
        for (int q = 0; q < n; q++) {
            sending[q] = new ReentrantLock();
            receiving[q] = new ReentrantLock();
            aside.add(new ArrayList<>());
        }
    }

    /** Bytes of the channels of a group of n: counters (a cache-line pair each) and rings. */
    static long regionBytes(int n) {
        return align(2 * LINE * n * n) + (long) n * n * DEPTH * PIECE;
    }

    private static long align(long x) {
        return (x + 4095) & ~4095L;
    }

    /** Pieces written into channel src -> dst, and pieces taken out of it. */
    private long sentAt(int src, int dst) {
        return LINE * (2L * (src * (long) n + dst));
    }

    private long takenAt(int src, int dst) {
        return sentAt(src, dst) + LINE;
    }

    private long pieceAt(int src, int dst, long k) {
        return align(2 * LINE * n * n) + ((src * (long) n + dst) * DEPTH + k % DEPTH) * PIECE;
    }

    private long get(long at) {
        return (long) LONG.getAcquire(region, at);
    }

    void send(Op op, int dst, long tag, MemorySegment data, long bytes) {
        ReentrantLock lock = sending[dst];
        lock.lock();
        try {
            long sent = get(sentAt(rank, dst)), pieces = Math.max(1, (bytes + PAYLOAD - 1) / PAYLOAD);
            for (long k = 0; k < pieces; k++, sent++) {
                if (sent - get(takenAt(rank, dst)) >= DEPTH) awaitRoom(op, dst, sent);
                long at = pieceAt(rank, dst, sent), off = k * PAYLOAD, len = Math.max(0, Math.min(PAYLOAD, bytes - off));
                region.set(ValueLayout.JAVA_LONG, at + TAG, tag);
                region.set(ValueLayout.JAVA_LONG, at + LENGTH, bytes);
                region.set(ValueLayout.JAVA_LONG, at + OFFSET, off);
                MemorySegment.copy(data, off, region, at + HEADER, len);
                LONG.setRelease(region, sentAt(rank, dst), sent + 1);
            }
        } finally {
            lock.unlock();
        }
    }

    /** Waits for room in my channel to dst, draining dst's channel to me meanwhile (see the class notes). */
    private void awaitRoom(Op op, int dst, long sent) {
        long start = System.nanoTime(), nap = 1_000;
        while (sent - get(takenAt(rank, dst)) >= DEPTH) {
            if (receiving[dst].tryLock()) {
                try {
                    boolean moved = false;
                    while (get(sentAt(dst, rank)) > get(takenAt(dst, rank))) {
                        setAside(dst);
                        moved = true;
                    }
                    if (moved) continue;
                } finally {
                    receiving[dst].unlock();
                }
            }
            nap = idle(op, dst, start, nap);
        }
    }

    void recv(Op op, int src, long tag, MemorySegment data, long bytes) {
        ReentrantLock lock = receiving[src];
        lock.lock();
        try {
            List<Aside> mine = aside.get(src);
            for (int i = 0; i < mine.size(); i++) {
                Aside a = mine.get(i);
                if (a.tag != tag) continue;
                while (!a.complete()) setAside(op, src); // it is the channel's head message: finish it
                mine.remove(i);
                checkLength(op, src, a.length, bytes);
                MemorySegment.copy(a.bytes, 0, data, 0, bytes);
                return;
            }
            // an unfinished message set aside is at the channel's head: finish it before reading on
            if (!mine.isEmpty() && !mine.getLast().complete()) while (!mine.getLast().complete()) setAside(op, src);
            while (true) {
                long taken = get(takenAt(src, rank));
                awaitPiece(op, src, taken);
                long at = pieceAt(src, rank, taken);
                if (region.get(ValueLayout.JAVA_LONG, at + TAG) != tag) {
                    setAside(op, src);
                    while (!mine.getLast().complete()) setAside(op, src);
                    continue;
                }
                long length = region.get(ValueLayout.JAVA_LONG, at + LENGTH);
                checkLength(op, src, length, bytes);
                long pieces = Math.max(1, (bytes + PAYLOAD - 1) / PAYLOAD);
                for (long k = 0; k < pieces; k++, taken++) {
                    if (k > 0) awaitPiece(op, src, taken);
                    long from = pieceAt(src, rank, taken), off = k * PAYLOAD, len = Math.max(0, Math.min(PAYLOAD, bytes - off));
                    MemorySegment.copy(region, from + HEADER, data, off, len);
                    LONG.setRelease(region, takenAt(src, rank), taken + 1);
                }
                return;
            }
        } finally {
            lock.unlock();
        }
    }

    private void checkLength(Op op, int src, long length, long bytes) {
        if (length != bytes)
            throw new IllegalStateException(String.format(
                    "%s in group '%s': rank %d sent %d bytes where %d were expected; do both ranks pass tensors of the same size?",
                    op.name, op.group.name(), src, length, bytes));
    }

    /** Takes the head piece of src's channel (there is one) into the message set aside for it, starting one if it begins a message. */
    private void setAside(int src) {
        long taken = get(takenAt(src, rank)), at = pieceAt(src, rank, taken);
        long length = region.get(ValueLayout.JAVA_LONG, at + LENGTH), off = region.get(ValueLayout.JAVA_LONG, at + OFFSET);
        List<Aside> mine = aside.get(src);
        if (off == 0 && (mine.isEmpty() || mine.getLast().complete())) {
            mine.add(new Aside(region.get(ValueLayout.JAVA_LONG, at + TAG), length));
        }
        Aside a = mine.getLast();
        long len = Math.max(0, Math.min(PAYLOAD, length - off));
        MemorySegment.copy(region, at + HEADER, a.bytes, off, len);
        a.filled = off + len;
        LONG.setRelease(region, takenAt(src, rank), taken + 1);
    }

    /** Waits for the next piece of src's channel, then sets it aside. */
    private void setAside(Op op, int src) {
        awaitPiece(op, src, get(takenAt(src, rank)));
        setAside(src);
    }

    private void awaitPiece(Op op, int src, long taken) {
        if (get(sentAt(src, rank)) > taken) return;
        long start = System.nanoTime(), nap = 1_000;
        while (get(sentAt(src, rank)) <= taken) nap = idle(op, src, start, nap);
    }

    /**
     * One step of a wait on peer: spin, then yield, then park with growing naps, by elapsed time,
     * as {@link ShmCollectives} waits (see there for the figures); returns the next nap.
     */
    private long idle(Op op, int peer, long start, long nap) {
        boolean lane = !FabricGroup.callerWaits();
        long spin = n > CORES ? 0 : lane ? ShmCollectives.LANE_SPIN_NANOS : ShmCollectives.SPIN_NANOS;
        long waited = System.nanoTime() - start;
        if (waited < spin) Thread.onSpinWait();
        else if (!lane && waited < spin + ShmCollectives.YIELD_NANOS) Thread.yield();
        else {
            if (System.nanoTime() - op.deadline > 0) throw op.timeout(peer);
            LockSupport.parkNanos(nap);
            return Math.min(2 * nap, 200_000);
        }
        return nap;
    }
}
