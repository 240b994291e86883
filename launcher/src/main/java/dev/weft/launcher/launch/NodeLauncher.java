package dev.weft.launcher.launch;

import dev.weft.parallel.rendezvous.JobSecret;
import dev.weft.parallel.rendezvous.NodeLink;
import dev.weft.parallel.rendezvous.Rendezvous;
import dev.weft.parallel.rendezvous.RendezvousCoordinator;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.function.Consumer;

/**
 * Runs one node's share of a job: starts {@code nprocPerNode} rank JVMs, watches them, and when one
 * dies or fails stops the others, reports that first failure (its exit code or signal and the tail
 * of its log, not the cascade that follows) and restarts the job up to {@code maxRestarts} times,
 * the ranks resuming from the newest checkpoint. Node 0 also runs the rendezvous coordinator.
 *
 * <p>On several nodes restarts are the job's, not the node's: every launcher keeps a control
 * connection ({@link NodeLink}) to the coordinator, reports its first rank failure there, and
 * stops and restarts its ranks when the coordinator says so, so every node's ranks start the same
 * generation, and {@code --max-restarts} (node 0's) counts restarts job-wide. A node whose launcher
 * is gone loses all its ranks: the others restart into the next generation and wait at rendezvous
 * for its relaunched launcher, which joins the current generation.
 */
public final class NodeLauncher {
    /** How long a stopped rank gets to exit after SIGTERM before SIGKILL. */
    static final long STOP_GRACE_MILLIS = 3000;

    /** What to launch. {@code rankCommand} is the rank JVM's command line (see {@link RankCommand}). */
    public record Spec(int nprocPerNode, int nnodes, int nodeRank, String rdzvEndpoint, int maxRestarts, Path logDir,
                       Duration rendezvousTimeout, List<String> rankCommand, Map<String, String> extraEnv) {
        public Spec {
            positive("--nproc-per-node", nprocPerNode);
            positive("--nnodes", nnodes);
            if (nodeRank < 0 || nodeRank >= nnodes)
                throw new IllegalArgumentException("--node-rank must be in [0, " + nnodes + ") for --nnodes " + nnodes + ", got " + nodeRank);
            if (maxRestarts < 0) throw new IllegalArgumentException("--max-restarts must be >= 0, got " + maxRestarts);
            if (nnodes > 1 && rdzvEndpoint == null)
                throw new IllegalArgumentException("--rdzv-endpoint host:port is required with --nnodes " + nnodes
                        + " (the address of node 0, where the coordinator listens)");
            rankCommand = List.copyOf(rankCommand);
            extraEnv = Map.copyOf(extraEnv);
        }

        int worldSize() {
            return nprocPerNode * nnodes;
        }

        private static void positive(String flag, int v) {
            if (v < 1) throw new IllegalArgumentException(flag + " must be >= 1, got " + v);
        }
    }

    /** The first failure of an attempt. */
    public record Failure(int rank, int exitValue, String cause, List<String> tail, Path log) {}

    private final Spec spec;
    private final PrintWriter out;
    private final Object consoleLock = new Object();
    private final List<RankProcess> running = new ArrayList<>();
    private volatile Failure lastFailure;

    public NodeLauncher(Spec spec, PrintWriter out) {
        this.spec = spec;
        this.out = out;
    }

    /** The cause the job stopped with, after {@link #run()} returned non-zero. */
    public Failure lastFailure() {
        return lastFailure;
    }

    /** Runs the job to completion or until restarts are spent; returns 0 on success, 1 otherwise. */
    public int run() {
        JobSecret secret = secret();
        RendezvousCoordinator coordinator = null;
        String endpoint = spec.rdzvEndpoint();
        Thread cleanup = Thread.ofPlatform().unstarted(this::stopAll);
        Runtime.getRuntime().addShutdownHook(cleanup);
        try {
            if (spec.nodeRank() == 0) {
                InetSocketAddress bind = endpoint == null ? new InetSocketAddress("127.0.0.1", 0) : Rendezvous.parse(endpoint);
                coordinator = spec.nnodes() > 1
                        ? RendezvousCoordinator.start(bind, secret, spec.worldSize(), spec.nnodes(), spec.maxRestarts(), spec.rendezvousTimeout(), this::say)
                        : RendezvousCoordinator.start(bind, secret, spec.worldSize(), spec.rendezvousTimeout(), this::say);
                if (endpoint == null || bind.getPort() == 0)
                    endpoint = bind.getHostString() + ":" + coordinator.address().getPort();
                say("rendezvous coordinator listening on " + endpoint + " for " + spec.worldSize() + " rank(s)");
            }
            if (spec.nnodes() > 1) return runCoordinated(endpoint, secret);
            for (int attempt = 0; ; attempt++) {
                Failure f = runAttempt(attempt, endpoint, secret);
                if (f == null) {
                    say("all " + spec.nprocPerNode() + " rank(s) on node " + spec.nodeRank() + " finished"
                            + (attempt > 0 ? " after " + attempt + " restart(s)" : ""));
                    return 0;
                }
                lastFailure = f;
                report(f);
                if (attempt >= spec.maxRestarts()) {
                    say("giving up" + (spec.maxRestarts() > 0 ? " after " + attempt + " restart(s) (--max-restarts " + spec.maxRestarts() + ")"
                            : " (--max-restarts 0)") + ": rank " + f.rank() + " failed: " + f.cause() + "; its log: " + f.log());
                    return 1;
                }
                say("restarting the job (" + (attempt + 1) + " of " + spec.maxRestarts() + "); ranks resume from the newest checkpoint");
            }
        } finally {
            stopAll();
            if (coordinator != null) coordinator.close();
            try {
                Runtime.getRuntime().removeShutdownHook(cleanup);
            } catch (IllegalStateException ignored) {
                // shutting down already
            }
        }
    }

    private JobSecret secret() {
        String given = System.getenv(RankEnv.JOB_SECRET);
        if (given != null && !given.isBlank()) return JobSecret.decode(given);
        if (spec.nnodes() > 1)
            throw new IllegalArgumentException("with --nnodes " + spec.nnodes() + " every node's launcher needs the same job secret: set "
                    + RankEnv.JOB_SECRET + " (for example to `openssl rand -hex 32`) on all nodes");
        return JobSecret.random();
    }

    /** A rank process that exited, in the generation it was started for. */
    private record Exit(int generation, RankProcess rank, int value) {}

    /** One attempt of the job on this node; null when every rank exited 0. */
    private Failure runAttempt(int attempt, String endpoint, JobSecret secret) {
        BlockingQueue<Exit> exits = new LinkedBlockingQueue<>();
        startRanks(attempt, endpoint, secret, exits::add);
        int finished = 0;
        while (finished < spec.nprocPerNode()) {
            Exit e;
            try {
                e = exits.take();
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
                stopAll();
                return new Failure(-1, -1, "the launcher was interrupted", List.of(), spec.logDir());
            }
            if (e.value() == 0) {
                finished++;
                continue;
            }
            return stopAfter(e);
        }
        return null;
    }

    /** The first failure: stop everyone else before anything they print can bury it. */
    private Failure stopAfter(Exit e) {
        long t0 = System.nanoTime();
        stopAllExcept(e.rank());
        e.rank().drain(2000);
        say(String.format("stopped the other rank(s) in %.1f s", (System.nanoTime() - t0) / 1e9));
        return new Failure(e.rank().rank(), e.value(), ExitCause.describe(e.value()), e.rank().tail(), e.rank().log());
    }

    /**
     * The job on one of several nodes: the ranks run in the generation the coordinator names, a
     * failure here is reported to it, and what happens next (restart, give up, finish) is its call.
     */
    private int runCoordinated(String endpoint, JobSecret secret) {
        BlockingQueue<Object> events = new LinkedBlockingQueue<>();
        try (NodeLink link = NodeLink.connect(endpoint, secret, spec.nodeRank(), spec.nnodes(), spec.rendezvousTimeout(), events::add)) {
            int generation = link.generation();
            if (generation > 0)
                say("joining the job in generation " + generation + " (it has restarted " + link.restarts() + " time(s)); ranks resume from the newest checkpoint");
            while (true) {
                startRanks(generation, endpoint, secret, events::add);
                int finished = 0;
                boolean failed = false;
                NodeLink.Command next = null;
                while (next == null) {
                    Object ev = events.take();
                    if (ev instanceof Exit e) {
                        if (e.generation() != generation || failed) continue; // a rank stopped on purpose
                        if (e.value() == 0) {
                            if (++finished == spec.nprocPerNode()) {
                                say("all " + spec.nprocPerNode() + " rank(s) on node " + spec.nodeRank() + " finished generation " + generation
                                        + "; waiting for the other nodes");
                                link.reportDone(generation);
                            }
                            continue;
                        }
                        failed = true;
                        Failure f = stopAfter(e);
                        lastFailure = f;
                        report(f);
                        link.reportFailure(generation, f.rank(), f.cause());
                    } else if (ev instanceof NodeLink.Command c) {
                        if (c.kind() == NodeLink.Command.Kind.RESTART && c.generation() <= generation) continue;
                        next = c;
                    }
                }
                stopAll();
                switch (next.kind()) {
                    case RESTART -> {
                        generation = next.generation();
                        say("restarting the job into generation " + generation + " (restart " + next.restarts() + " of the job): " + next.reason()
                                + "; ranks resume from the newest checkpoint");
                    }
                    case FINISHED -> {
                        say("all nodes finished" + (generation > 0 ? " after " + generation + " restart(s)" : ""));
                        return 0;
                    }
                    case GIVE_UP -> {
                        say("giving up after " + next.restarts() + " restart(s) of the job: " + next.reason());
                        if (lastFailure == null) lastFailure = new Failure(-1, -1, next.reason(), List.of(), spec.logDir());
                        return 1;
                    }
                    case LOST -> {
                        String why = "lost the control connection to the rendezvous coordinator at " + endpoint + " (node 0's weft launch): "
                                + next.reason() + "; stopped this node's ranks";
                        say(why);
                        if (lastFailure == null) lastFailure = new Failure(-1, -1, why, List.of(), spec.logDir());
                        return 1;
                    }
                }
            }
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            stopAll();
            lastFailure = new Failure(-1, -1, "the launcher was interrupted", List.of(), spec.logDir());
            return 1;
        }
    }

    /** Starts this node's ranks for {@code attempt} (the generation); each one's exit goes to {@code exits}. */
    private void startRanks(int attempt, String endpoint, JobSecret secret, Consumer<Exit> exits) {
        try {
            Files.createDirectories(spec.logDir());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the log directory " + spec.logDir() + ": " + e.getMessage(), e);
        }
        synchronized (running) {
            running.clear();
            for (int local = 0; local < spec.nprocPerNode(); local++) {
                int rank = spec.nodeRank() * spec.nprocPerNode() + local;
                Map<String, String> env = new HashMap<>(spec.extraEnv());
                new RankEnv(rank, local, spec.worldSize(), spec.nprocPerNode(), spec.nodeRank(), endpoint, secret.encoded(), attempt)
                        .exportTo(env);
                Path log = spec.logDir().resolve("rank-" + rank + ".log");
                try {
                    RankProcess p = RankProcess.start(rank, spec.rankCommand(), env, log, "=== weft launch: attempt " + attempt + " ===", out,
                            consoleLock);
                    running.add(p);
                    Files.writeString(spec.logDir().resolve("rank-" + rank + ".pid"), p.pid() + "\n");
                    p.process().onExit().thenAccept(proc -> exits.accept(new Exit(attempt, p, proc.exitValue())));
                } catch (IOException e) {
                    stopAll();
                    throw new UncheckedIOException("cannot start rank " + rank + " (" + spec.rankCommand().getFirst() + "): " + e.getMessage(), e);
                }
            }
            say("attempt " + attempt + ": started rank(s) " + running.stream().map(p -> p.rank() + " (pid " + p.pid() + ")").toList()
                    + ", logs in " + spec.logDir());
        }
    }

    private void report(Failure f) {
        synchronized (consoleLock) {
            out.println("weft launch: rank " + f.rank() + " failed first: " + f.cause());
            out.println("weft launch: last " + f.tail().size() + " line(s) of " + f.log() + ":");
            for (String line : f.tail()) out.println("    " + line);
            out.flush();
        }
    }

    private void stopAllExcept(RankProcess keep) {
        List<RankProcess> others;
        synchronized (running) {
            others = new ArrayList<>(running);
        }
        others.remove(keep);
        // SIGTERM everyone at once, then wait: stopping them one by one would take N grace periods
        for (RankProcess p : others) p.process().destroy();
        List<Thread> waiters = new ArrayList<>();
        for (RankProcess p : others) waiters.add(Thread.ofVirtual().start(() -> p.stop(STOP_GRACE_MILLIS)));
        for (Thread t : waiters) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        for (RankProcess p : others) p.drain(1000);
    }

    private void stopAll() {
        stopAllExcept(null);
    }

    private void say(String line) {
        synchronized (consoleLock) {
            out.println("[launch] " + line);
            out.flush();
        }
    }
}
