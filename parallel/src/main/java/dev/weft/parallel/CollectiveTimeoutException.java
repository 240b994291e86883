package dev.weft.parallel;

import dev.weft.core.UserError;

import java.time.Duration;
import java.util.List;

/**
 * A collective or receive that did not complete within its deadline. The message names the
 * operation, the group, the operation's sequence number in that group and the ranks that never
 * arrived, so a hang becomes a diagnosis.
 */
public final class CollectiveTimeoutException extends RuntimeException implements UserError {
    private final String operation;
    private final String group;
    private final long sequence;
    private final List<Integer> missingRanks;

    public CollectiveTimeoutException(String operation, String group, long sequence, List<Integer> missingRanks, Duration deadline) {
        super(String.format("%s #%d in group '%s' timed out after %s: rank(s) %s never arrived", operation, sequence, group,
                deadline, missingRanks));
        this.operation = operation;
        this.group = group;
        this.sequence = sequence;
        this.missingRanks = List.copyOf(missingRanks);
    }

    public String operation() {
        return operation;
    }

    public String group() {
        return group;
    }

    public long sequence() {
        return sequence;
    }

    public List<Integer> missingRanks() {
        return missingRanks;
    }
}
