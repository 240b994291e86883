package dev.weft.parallel;

/** Internal: a frame from {@code worldRank} did not arrive (or could not be sent) before the deadline. */
final class PeerTimeout extends RuntimeException {
    final int worldRank;

    PeerTimeout(int worldRank) {
        super("rank " + worldRank + " did not answer before the deadline", null, false, false);
        this.worldRank = worldRank;
    }
}
