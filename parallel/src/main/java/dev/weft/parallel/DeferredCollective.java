package dev.weft.parallel;

import java.time.Duration;
import java.util.function.Consumer;

/**
 * An asynchronous collective that runs on the thread that awaits it (or that issues the group's
 * next synchronous collective), in issue order, as Open MPI's non-blocking collectives progress
 * inside MPI_Wait: the choice under {@code -Dweft.shm.async=await}. Where compute threads hold
 * every core, a collective lane can only take cores from them, and each of its hand-offs waits
 * for the scheduler; run here, the operation costs what a synchronous one costs and nothing
 * else. It never overlaps computation, so it suits hosts without a spare core.
 *
 * <p>Every rank must await (or pass a synchronous collective) eventually: an operation nobody
 * awaits never runs, and its peers time out naming this rank.
 */
final class DeferredCollective implements Work {
    private final FabricGroup group;
    private final String name;
    private final long seq;
    private final Consumer<Op> body;
    private volatile boolean done;
    private Throwable failure;

    DeferredCollective(FabricGroup group, String name, long seq, Consumer<Op> body) {
        this.group = group;
        this.name = name;
        this.seq = seq;
        this.body = body;
    }

    /** Runs the operation (its deadline starts now); called by the group, in issue order. */
    void run() {
        try {
            body.accept(new Op(group, name, Msg.COLLECTIVE, seq));
        } catch (Throwable e) {
            failure = e;
        }
        done = true;
    }

    @Override
    public void await() {
        group.runDeferred(this);
        if (failure instanceof RuntimeException e) throw e;
        if (failure instanceof Error e) throw e;
        if (failure != null) throw new IllegalStateException(name + " #" + seq + " in group '" + group.name() + "' failed", failure);
    }

    /** Runs it now, like {@link #await()}: the operation's own deadline bounds the wait. */
    @Override
    public void await(Duration timeout) {
        await();
    }

    @Override
    public boolean isDone() {
        return done;
    }
}
