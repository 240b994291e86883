package dev.weft.launcher.spark;

import java.util.List;

/**
 * A barrier task's rank exited non-zero. Thrown in the task, it fails the barrier stage; Spark
 * carries it to the driver, which reports the first one with its cause and the rank's last lines.
 */
final class RankFailedException extends RuntimeException {
    private final int rank;
    private final String cause;
    private final String log;
    private final List<String> tail;

    RankFailedException(int rank, String cause, String log, List<String> tail) {
        // no stack trace: where the task noticed the exit says nothing; the rank's log says why
        super("rank " + rank + " failed: " + cause + "; its log: " + log, null, false, false);
        this.rank = rank;
        this.cause = cause;
        this.log = log;
        this.tail = List.copyOf(tail);
    }

    int rank() {
        return rank;
    }

    /** The exit code or signal, as {@code weft launch} words it. */
    String exitCause() {
        return cause;
    }

    String log() {
        return log;
    }

    List<String> tail() {
        return tail;
    }
}
