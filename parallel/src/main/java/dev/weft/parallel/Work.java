package dev.weft.parallel;

import java.time.Duration;

/** A handle on an asynchronous collective or point-to-point operation. */
public interface Work {
    /** Blocks until the operation completes; throws what it failed with (a timeout names the missing ranks). */
    void await();

    /** Like {@link #await()} but gives up after {@code timeout} with a {@link CollectiveTimeoutException}. */
    void await(Duration timeout);

    boolean isDone();

    /** A handle that is already complete. */
    static Work done() {
        return new Work() {
            @Override public void await() {}
            @Override public void await(Duration timeout) {}
            @Override public boolean isDone() { return true; }
        };
    }
}
