package dev.weft.parallel;

/**
 * The address of one frame between two ranks: which group, which operation (a collective's
 * sequence number, or a point-to-point tag), which step of its algorithm and which chunk of the
 * payload. Frames with equal addresses from the same sender are delivered in order.
 */
record Msg(int group, int kind, long seq, int step, int chunk) {
    static final int COLLECTIVE = 0;
    static final int P2P = 1;
}
