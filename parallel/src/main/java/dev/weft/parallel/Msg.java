package dev.weft.parallel;

/**
 * The address of one frame between two ranks: which group, which operation (a collective's
 * sequence number, or a point-to-point tag), which step of its algorithm and which chunk of the
 * payload. Frames with equal addresses from the same sender are delivered in order.
 *
 * <p>Mutable, so that an operation sends and receives its frames without making one address per
 * frame: an {@link Op} owns one and re-points it ({@link #at}) before each frame. Transports read
 * it during a call and never keep it.
 */
final class Msg {
    static final int COLLECTIVE = 0;
    static final int P2P = 1;

    final int group;
    final int kind;
    final long seq;
    int step;
    int chunk;

    Msg(int group, int kind, long seq) {
        this.group = group;
        this.kind = kind;
        this.seq = seq;
    }

    Msg at(int step, int chunk) {
        this.step = step;
        this.chunk = chunk;
        return this;
    }

    @Override
    public String toString() {
        return "Msg[group=" + group + ", kind=" + kind + ", seq=" + seq + ", step=" + step + ", chunk=" + chunk + "]";
    }
}
