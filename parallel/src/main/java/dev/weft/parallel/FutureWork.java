package dev.weft.parallel;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** A {@link Work} backed by a future that the group's lane completes. */
final class FutureWork implements Work {
    private final CompletableFuture<Void> future;
    private final String op;
    private final String group;
    private final long seq;
    private final Duration timeout;

    FutureWork(CompletableFuture<Void> future, String op, String group, long seq, Duration timeout) {
        this.future = future;
        this.op = op;
        this.group = group;
        this.seq = seq;
        this.timeout = timeout;
    }

    @Override
    public void await() {
        // The operation enforces its own deadline; this bound only guards against a lane that
        // never started it (queued behind an operation that is itself stuck).
        await(timeout.multipliedBy(4).plusSeconds(5));
    }

    @Override
    public void await(Duration limit) {
        try {
            future.get(limit.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw new CollectiveTimeoutException(op, group, seq, List.of(), limit);
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof RuntimeException re) throw re;
            if (c instanceof Error er) throw er;
            throw new IllegalStateException(op + " #" + seq + " in group '" + group + "' failed", c);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for " + op + " #" + seq + " in group '" + group + "'", e);
        }
    }

    @Override
    public boolean isDone() {
        return future.isDone();
    }
}
