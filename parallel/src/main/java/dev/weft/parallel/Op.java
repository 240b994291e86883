package dev.weft.parallel;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * One running operation of a group: its name, sequence number and deadline, and the chunked
 * send/receive between group ranks that the algorithms in {@link Collectives} are written with.
 * A frame that does not arrive in time becomes a {@link CollectiveTimeoutException} naming the
 * rank that never sent it.
 */
final class Op {
    interface Sink {
        /** Consumes {@code count} floats of a received frame at byte offset {@code off} of the destination. */
        void accept(MemorySegment frame, long off, long count);
    }

    final FabricGroup group;
    final String name;
    final long seq;
    final int kind;
    final long deadline;
    /** The address of the frame being sent or received; re-pointed per frame (an Op runs on one thread). */
    private final Msg address;

    Op(FabricGroup group, String name, int kind, long seq) {
        this.group = group;
        this.name = name;
        this.kind = kind;
        this.seq = seq;
        this.deadline = System.nanoTime() + group.timeout().toNanos();
        this.address = new Msg(group.id, kind, seq);
    }

    int rank() {
        return group.rank();
    }

    int size() {
        return group.size();
    }

    /** Bytes in each frame (but the last) between this rank and world rank {@code peer}. */
    private long frameBytes(int worldPeer) {
        return group.fabric.maxFrameBytes(worldPeer) & ~3L;
    }

    /** Number of frames a payload of {@code bytes} takes in frames of {@code f} (an empty payload still sends one, so the receiver syncs). */
    private static long frames(long bytes, long f) {
        return Math.max(1, (bytes + f - 1) / f);
    }

    /** Sends {@code bytes} of {@code data} from byte offset {@code off} to group rank {@code dst}, chunked. */
    void send(int dst, int step, MemorySegment data, long off, long bytes) {
        int worldDst = group.worldRank(dst);
        long f = frameBytes(worldDst);
        long n = frames(bytes, f);
        for (long c = 0; c < n; c++) {
            long o = c * f;
            int len = (int) Math.max(0, Math.min(f, bytes - o));
            try {
                group.fabric.send(worldDst, msg(step, c), data, off + o, len, deadline);
            } catch (PeerTimeout t) {
                throw timeout(dst);
            }
        }
    }

    /** Receives {@code bytes} from group rank {@code src} chunk by chunk, handing each to {@code sink} at its offset. */
    void receive(int src, int step, long off, long bytes, Sink sink) {
        int worldSrc = group.worldRank(src);
        long f = frameBytes(worldSrc);
        long n = frames(bytes, f);
        for (long c = 0; c < n; c++) {
            long o = c * f;
            long len = Math.max(0, Math.min(f, bytes - o));
            Frame frame;
            try {
                frame = group.fabric.receive(worldSrc, msg(step, c), deadline);
            } catch (PeerTimeout t) {
                throw timeout(src);
            }
            try {
                if (frame.length != len)
                    throw new IllegalStateException(String.format(
                            "%s #%d in group '%s': rank %d sent %d bytes for chunk %d where %d were expected; do all ranks pass tensors of the same size?",
                            name, seq, group.name(), src, frame.length, c, len));
                sink.accept(frame.data, off + o, len / 4);
            } finally {
                group.fabric.release(frame);
            }
        }
    }

    /** Receives into {@code dst} at {@code off} by copying. */
    void receiveCopy(int src, int step, MemorySegment dst, long off, long bytes) {
        receive(src, step, off, bytes, (frame, o, count) -> MemorySegment.copy(frame, 0, dst, o, count * 4));
    }

    /** Receives and combines into {@code acc} at {@code off}: acc = received (op) acc. */
    void receiveReduce(int src, int step, MemorySegment acc, long off, long bytes, ReduceOp op) {
        receive(src, step, off, bytes, (frame, o, count) -> ReduceKernels.combine(op, frame, 0, acc, o, acc, o, count));
    }

    /** Receives an empty frame from {@code src} before {@code deadlineNanos}; false if it did not come. */
    boolean tryReceiveEmpty(int src, int step, long deadlineNanos) {
        try {
            group.fabric.release(group.fabric.receive(group.worldRank(src), msg(step, 0), deadlineNanos));
            return true;
        } catch (PeerTimeout t) {
            return false;
        }
    }

    private Msg msg(int step, long chunk) {
        return address.at(step, Math.toIntExact(chunk));
    }

    /**
     * The group's scratch buffer {@code slot} (0 or 1: an algorithm may need two at once), at least
     * {@code bytes} long and native. Collectives of a group run one at a time, so they share it.
     */
    MemorySegment scratch(int slot, long bytes) {
        return group.scratch(slot, bytes);
    }

    CollectiveTimeoutException timeout(int missingRank) {
        return new CollectiveTimeoutException(name, group.name(), seq, List.of(missingRank), group.timeout());
    }
}
