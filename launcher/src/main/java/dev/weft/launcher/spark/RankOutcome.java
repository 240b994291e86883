package dev.weft.launcher.spark;

import java.io.Serializable;
import java.util.List;

/** What a barrier task sends the driver when its rank exited 0: where the rank's log is, and its last lines. */
record RankOutcome(int rank, String log, List<String> tail) implements Serializable {
    RankOutcome {
        tail = List.copyOf(tail);
    }
}
