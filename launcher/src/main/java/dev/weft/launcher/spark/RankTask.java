package dev.weft.launcher.spark;

import dev.weft.launcher.launch.ExitCause;
import dev.weft.launcher.launch.RankCommand;
import dev.weft.launcher.launch.RankEnv;
import dev.weft.launcher.launch.RankMain;
import dev.weft.launcher.launch.RankProcess;
import dev.weft.launcher.launch.Transports;
import dev.weft.parallel.AeronTransport;
import dev.weft.parallel.rendezvous.JobSecret;
import dev.weft.parallel.rendezvous.RendezvousCoordinator;
import org.apache.spark.BarrierTaskContext;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractFunction1;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One rank of a barrier stage: the task finds its peers through the barrier context, starts the
 * rank JVM with the same command line and {@link RankEnv} as {@code weft launch} gives it, copies
 * its output to {@code rank-N.log}, and fails the stage when the rank fails.
 *
 * <p>The tasks' one {@code allGather} carries each task's host, so that ranks on one executor host
 * get consecutive local ranks, and task 0's coordinator address, which task 0 runs for the stage.
 * Nothing else passes between tasks: the ranks authenticate to the coordinator with the job secret
 * (an HMAC challenge; the secret itself is never sent) as under {@code weft launch}.
 *
 * <p>The job secret travels to the executors inside this serialized task. {@link SparkSecurity}
 * makes sure that happens over authenticated, encrypted Spark RPC only.
 */
final class RankTask extends AbstractFunction1<Iterator<Integer>, Iterator<RankOutcome>> implements Serializable {
    private static final long serialVersionUID = 1L;
    /** Spark's own copy of its RPC secret in an executor's environment; a rank has no use for it. */
    private static final String SPARK_AUTH_SECRET_ENV = "_SPARK_AUTH_SECRET";
    /** How long a rank gets after SIGTERM when Spark kills its task, as NodeLauncher gives its ranks. */
    private static final long STOP_GRACE_MILLIS = 3000;
    private static final long POLL_MILLIS = 200;

    private final List<String> rankCommand;
    private final Map<String, String> extraEnv;
    private final String jobSecret;
    private final int attempt;
    private final int worldSize;
    private final String logDir;
    private final long rendezvousTimeoutSeconds;
    private final boolean echo;

    /**
     * @param echo whether the rank's lines also go to the executor's standard output (its Spark
     *             log); off when the executor is the driver itself, whose console gets the tails.
     */
    RankTask(List<String> rankCommand, Map<String, String> extraEnv, JobSecret secret, int attempt, int worldSize, Path logDir,
             Duration rendezvousTimeout, boolean echo) {
        this.rankCommand = List.copyOf(rankCommand);
        this.extraEnv = Map.copyOf(extraEnv);
        this.jobSecret = secret.encoded();
        this.attempt = attempt;
        this.worldSize = worldSize;
        this.logDir = logDir.toAbsolutePath().toString();
        this.rendezvousTimeoutSeconds = rendezvousTimeout.toSeconds();
        this.echo = echo;
    }

    /** The task's one partition holds its rank; its one result is the rank's outcome. */
    @Override
    public Iterator<RankOutcome> apply(Iterator<Integer> partition) {
        return CollectionConverters.asScala(List.of(run(BarrierTaskContext.get())).iterator());
    }

    private RankOutcome run(BarrierTaskContext ctx) {
        int rank = ctx.partitionId();
        String host = host(ctx.getTaskInfos()[rank].address());
        JobSecret secret = JobSecret.decode(jobSecret);
        RendezvousCoordinator coordinator = null;
        RankProcess process = null;
        try {
            if (rank == 0)
                coordinator = RendezvousCoordinator.start(new InetSocketAddress(host, 0), secret, worldSize,
                        Duration.ofSeconds(rendezvousTimeoutSeconds), line -> System.out.println("[launch] " + line));
            String[] gathered = ctx.allGather(host + " " + (coordinator == null ? "-" : host + ":" + coordinator.address().getPort()));
            Placement where = Placement.of(rank, gathered);
            Path logs = Path.of(logDir);
            Files.createDirectories(logs);
            Path log = logs.resolve("rank-" + rank + ".log");
            process = RankProcess.start(rank, RankCommand.forLocalRanks(rankCommand, where.localWorldSize()), environment(rank, where, host),
                    log, "=== weft launch --spark-master: attempt " + attempt + ", stage attempt " + ctx.stageAttemptNumber()
                            + ", task attempt " + ctx.attemptNumber() + " on " + host + " ===",
                    console(), new Object());
            Files.writeString(logs.resolve("rank-" + rank + ".pid"), process.pid() + "\n");
            int exit = waitFor(process, ctx);
            process.drain(2000);
            if (exit != 0) throw new RankFailedException(rank, ExitCause.describe(exit), log.toString(), process.tail());
            return new RankOutcome(rank, log.toString(), process.tail());
        } catch (IOException e) {
            throw new UncheckedIOException("rank " + rank + " on " + host + ": " + e.getMessage(), e);
        } finally {
            if (process != null) process.stop(STOP_GRACE_MILLIS);
            if (coordinator != null) coordinator.close();
        }
    }

    /**
     * Spark kills the other tasks of a failed barrier stage without interrupting their threads, so
     * the wait polls for the kill; the finally block then stops the rank.
     */
    private static int waitFor(RankProcess process, BarrierTaskContext ctx) {
        try {
            while (!process.process().waitFor(POLL_MILLIS, TimeUnit.MILLISECONDS)) ctx.killTaskIfInterrupted();
            return process.process().exitValue();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            ctx.killTaskIfInterrupted();
            throw new IllegalStateException("rank " + ctx.partitionId() + "'s task was interrupted", e);
        }
    }

    private Map<String, String> environment(int rank, Placement where, String host) {
        Map<String, String> env = new HashMap<>(extraEnv);
        new RankEnv(rank, where.localRank(), worldSize, where.localWorldSize(), where.nodeRank(), where.rdzvEndpoint(), jobSecret, attempt)
                .exportTo(env);
        // peers on one host talk over loopback, as weft launch on one node; across hosts at the executor's address
        String reachAt = where.localWorldSize() == worldSize ? "127.0.0.1" : host;
        env.putIfAbsent(Transports.LEGACY_TCP_HOST_ENV, reachAt);
        env.putIfAbsent(AeronTransport.HOST_ENV, reachAt);
        env.put(RankMain.PARENT_PID_ENV, Long.toString(ProcessHandle.current().pid()));
        env.put(SPARK_AUTH_SECRET_ENV, null);
        return env;
    }

    private PrintWriter console() {
        if (echo) return new PrintWriter(System.out, true);
        return new PrintWriter(OutputStream.nullOutputStream());
    }

    /** A barrier task's address is its executor's {@code host:port}. */
    static String host(String address) {
        int colon = address.lastIndexOf(':');
        String h = colon > 0 ? address.substring(0, colon) : address;
        return h.startsWith("[") && h.endsWith("]") ? h.substring(1, h.length() - 1) : h;
    }

    /** Where a rank sits among the stage's tasks, from what every task sent in the allGather. */
    record Placement(int localRank, int localWorldSize, int nodeRank, String rdzvEndpoint) {
        static Placement of(int rank, String[] gathered) {
            List<String> hosts = new ArrayList<>();
            Map<String, Integer> nodes = new LinkedHashMap<>();
            String endpoint = null;
            for (String g : gathered) {
                String[] parts = g.split(" ", 2);
                hosts.add(parts[0]);
                nodes.putIfAbsent(parts[0], nodes.size());
                if (!"-".equals(parts[1])) endpoint = parts[1];
            }
            String mine = hosts.get(rank);
            int localRank = 0, localWorld = 0;
            for (int r = 0; r < hosts.size(); r++) {
                if (!hosts.get(r).equals(mine)) continue;
                if (r < rank) localRank++;
                localWorld++;
            }
            if (endpoint == null) throw new IllegalStateException("no task announced the rendezvous coordinator: " + String.join(", ", gathered));
            return new Placement(localRank, localWorld, nodes.get(mine), endpoint);
        }
    }
}
