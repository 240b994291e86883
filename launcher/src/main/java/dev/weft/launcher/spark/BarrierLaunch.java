package dev.weft.launcher.spark;

import dev.weft.core.UserError;
import dev.weft.launcher.launch.RankEnv;
import dev.weft.parallel.rendezvous.JobSecret;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkContext;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.rdd.RDD;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;

/**
 * {@code weft launch --spark-master}: runs a job's ranks as the tasks of one Spark barrier stage
 * (see {@link RankTask}), so a cluster Spark already manages starts them, with no shell on its
 * nodes. A failed rank fails the stage; the driver reports the first failure with its cause and
 * submits the stage again, up to {@code maxRestarts} times, each attempt resuming from the newest
 * checkpoint (its ranks see {@code WEFT_RESTART_COUNT} = the attempt, as under {@code weft launch}).
 *
 * <p>The retry is this driver's loop, not Spark's: a barrier result stage is not retried by Spark,
 * and one job per attempt lets each attempt be reported, numbered and given a fresh coordinator.
 */
public final class BarrierLaunch {
    /**
     * What to launch. {@code rankCommand} is the rank JVM's command line (see
     * {@link dev.weft.launcher.launch.RankCommand}); every executor host must have the JDK and weft
     * at the paths it names, and see {@code logDir} and the config's paths (a shared filesystem).
     */
    public record Spec(String master, int nproc, int maxRestarts, Path logDir, Duration rendezvousTimeout, List<String> rankCommand,
                       Map<String, String> extraEnv, Map<String, String> sparkConf, String appName) {
        public Spec {
            if (master == null || master.isBlank()) throw new IllegalArgumentException("--spark-master must name a master URL");
            if (nproc < 1) throw new IllegalArgumentException("--nproc must be >= 1, got " + nproc);
            if (maxRestarts < 0) throw new IllegalArgumentException("--max-restarts must be >= 0, got " + maxRestarts);
            rankCommand = List.copyOf(rankCommand);
            extraEnv = Map.copyOf(extraEnv);
            sparkConf = Map.copyOf(sparkConf);
        }
    }

    /** Spark cannot run the job at all (a master it cannot parse or reach, too few task slots): the user's to fix. */
    static final class SparkUnavailable extends RuntimeException implements UserError {
        SparkUnavailable(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** The master URLs Spark's own scheduler backends accept (Spark checks the details inside the brackets). */
    private static final Pattern MASTER = Pattern.compile("local|local\\[.*]|local-cluster\\[.*]|spark://.+|yarn|k8s://.+");
    private static final Pattern LOCAL_SLOTS = Pattern.compile("local(?:\\[(\\*|\\d+)(?:,\\d+)?])?");
    private static final Pattern LOCAL_CLUSTER = Pattern.compile("local-cluster\\[\\s*(\\d+)\\s*,\\s*(\\d+)\\s*,\\s*(\\d+)\\s*]");
    /** How long the driver waits for the listener bus to deliver a failed task's report after its job failed. */
    private static final long REPORT_WAIT_MILLIS = 10_000;
    /** How long a barrier stage waits for executors offering --nproc task slots before the job gives up. */
    static final Duration EXECUTOR_WAIT = Duration.ofSeconds(180);

    private final Spec spec;
    private final PrintWriter out;

    public BarrierLaunch(Spec spec, PrintWriter out) {
        this.spec = spec;
        this.out = out;
    }

    /** Runs the job to completion or until restarts are spent; returns 0 on success, 1 otherwise. */
    public int run() {
        if (!MASTER.matcher(spec.master()).matches()) throw new IllegalArgumentException(notAMaster());
        checkSlots();
        JobSecret secret = secret();
        SparkContext sc = start(conf());
        try {
            FirstFailure failures = new FirstFailure();
            sc.addSparkListener(failures);
            JavaSparkContext jsc = new JavaSparkContext(sc);
            ClassTag<RankOutcome> tag = ClassTag$.MODULE$.apply(RankOutcome.class);
            List<Integer> ranks = IntStream.range(0, spec.nproc()).boxed().toList();
            say("Spark " + sc.version() + " on " + spec.master() + " (application " + sc.applicationId() + "); " + spec.nproc()
                    + " rank(s) as one barrier stage, logs in " + spec.logDir());
            for (int attempt = 0; ; attempt++) {
                failures.watch(attempt);
                sc.setLocalProperty(FirstFailure.ATTEMPT_PROPERTY, Integer.toString(attempt));
                sc.setJobDescription("weft launch: attempt " + attempt + ", " + spec.nproc() + " rank(s)");
                RankTask task = new RankTask(spec.rankCommand(), spec.extraEnv(), secret, attempt, spec.nproc(), spec.logDir(),
                        spec.rendezvousTimeout(), !SparkSecurity.isLocal(spec.master()));
                // RDDBarrier.mapPartitionsWithEvaluator does not make its RDD a barrier stage (Spark 4.2.0): mapPartitions does
                RDD<RankOutcome> stage = jsc.parallelize(ranks, spec.nproc()).rdd().barrier().mapPartitions(task, false, tag);
                say("attempt " + attempt + ": submitted the barrier stage");
                FirstFailure.Cause cause;
                LogFollower rank0 = new LogFollower(spec.logDir().resolve("rank-0.log"), "[rank 0] ", out);
                try {
                    List<RankOutcome> done = JavaRDD.fromRDD(stage, tag).collect();
                    rank0.close();
                    boolean shown = rank0.sawAny();
                    done.stream().sorted(Comparator.comparingInt(RankOutcome::rank)).filter(r -> r.rank() != 0 || !shown).forEach(this::tail);
                    say("all " + spec.nproc() + " rank(s) finished" + (attempt > 0 ? " after " + attempt + " restart(s)" : ""));
                    return 0;
                } catch (Exception e) { // Spark throws its checked SparkException undeclared
                    if (!(e instanceof org.apache.spark.SparkException)) throw e;
                    if (sc.isStopped())
                        throw new SparkUnavailable("Spark stopped on " + spec.master() + ": " + firstLine(e.getMessage()), e);
                    cause = awaitCause(failures).orElseGet(() -> new FirstFailure.Cause(-1, firstLine(e.getMessage()), null, List.of()));
                } finally {
                    rank0.close();
                }
                if (slotsMissing(cause.description()))
                    throw new SparkUnavailable(spec.master() + " offered fewer than --nproc " + spec.nproc() + " task slots within "
                            + EXECUTOR_WAIT.toSeconds() + " s (a barrier stage starts all its ranks at once)", null);
                report(cause);
                if (attempt >= spec.maxRestarts()) {
                    say("giving up" + (spec.maxRestarts() > 0 ? " after " + attempt + " restart(s) (--max-restarts " + spec.maxRestarts() + ")"
                            : " (--max-restarts 0)") + ": " + who(cause) + " failed: " + cause.description()
                            + (cause.log() != null ? "; its log: " + cause.log() : ""));
                    return 1;
                }
                say("restarting the stage (" + (attempt + 1) + " of " + spec.maxRestarts() + "); ranks resume from the newest checkpoint");
            }
        } finally {
            sc.stop();
        }
    }

    private SparkConf conf() {
        SparkConf conf = new SparkConf().setMaster(spec.master()).setAppName(spec.appName());
        boolean local = SparkSecurity.isLocal(spec.master()) || spec.master().startsWith("local-cluster");
        // the launcher's console is the job's report; Spark's web UI and its port are opt-in
        conf.set("spark.ui.enabled", "false");
        if (local) {
            conf.set("spark.driver.host", "127.0.0.1");
            conf.set("spark.driver.bindAddress", "127.0.0.1");
        }
        // A barrier stage needs all its slots at once, and executors register long after the driver
        // starts (tens of seconds on a busy machine). Spark's own slot check, which counts exactly,
        // waits for them: every 5 s (each wait logged) for EXECUTOR_WAIT, not its default 10 minutes.
        conf.set("spark.scheduler.barrier.maxConcurrentTasksCheck.interval", "5s");
        conf.set("spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures", Long.toString(EXECUTOR_WAIT.toSeconds() / 5));
        conf.set("spark.dynamicAllocation.enabled", "false");
        SparkSecurity.settings(spec.master(), spec.sparkConf()).forEach(conf::set);
        return conf;
    }

    private SparkContext start(SparkConf conf) {
        try {
            return new SparkContext(conf);
        } catch (Exception e) { // SparkException is checked in Java's eyes but undeclared
            String m = String.valueOf(e.getMessage());
            if (m.contains("Could not parse Master URL")) throw new SparkUnavailable(notAMaster(), e);
            throw new SparkUnavailable("Spark did not start on --spark-master " + spec.master() + ": " + firstLine(m), e);
        }
    }

    /** A local master with fewer task slots than ranks would wait for slots that never come. */
    private void checkSlots() {
        Matcher l = LOCAL_SLOTS.matcher(spec.master()), c = LOCAL_CLUSTER.matcher(spec.master());
        int slots;
        if (l.matches()) slots = l.group(1) == null ? 1 : l.group(1).equals("*") ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(l.group(1));
        else if (c.matches()) slots = Integer.parseInt(c.group(1)) * Integer.parseInt(c.group(2));
        else return;
        if (slots < spec.nproc())
            throw new IllegalArgumentException("--spark-master " + spec.master() + " has " + slots + " task slot(s), fewer than --nproc "
                    + spec.nproc() + ": a barrier stage starts all its ranks at once");
    }

    private String notAMaster() {
        return "--spark-master '" + spec.master() + "' is not a master URL Spark knows; expected local[N], local-cluster[WORKERS,CORES,MB], "
                + "spark://HOST:PORT, yarn or k8s://https://HOST:PORT";
    }

    private JobSecret secret() {
        String given = System.getenv(RankEnv.JOB_SECRET);
        return given != null && !given.isBlank() ? JobSecret.decode(given) : JobSecret.random();
    }

    private static Optional<FirstFailure.Cause> awaitCause(FirstFailure failures) {
        long deadline = System.nanoTime() + REPORT_WAIT_MILLIS * 1_000_000;
        while (System.nanoTime() < deadline) {
            Optional<FirstFailure.Cause> c = failures.first();
            if (c.isPresent()) return c;
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        return failures.first();
    }

    private static boolean slotsMissing(String description) {
        return description.contains("SPARK-24819") || description.contains("more slots than the total number of slots");
    }

    private void report(FirstFailure.Cause c) {
        synchronized (out) {
            out.println("weft launch: " + who(c) + " failed first: " + c.description());
            if (c.log() != null) {
                out.println("weft launch: last " + c.tail().size() + " line(s) of " + c.log() + ":");
                for (String line : c.tail()) out.println("    " + line);
            }
            out.flush();
        }
    }

    private void tail(RankOutcome r) {
        synchronized (out) {
            out.println("[launch] rank " + r.rank() + "'s last " + r.tail().size() + " line(s), of " + r.log() + ":");
            for (String line : r.tail()) out.println("[rank " + r.rank() + "] " + line);
            out.flush();
        }
    }

    private static String who(FirstFailure.Cause c) {
        return c.rank() >= 0 ? "rank " + c.rank() : "the stage";
    }

    private static String firstLine(String s) {
        if (s == null) return "(no message)";
        int nl = s.indexOf('\n');
        return (nl < 0 ? s : s.substring(0, nl)).strip();
    }

    private void say(String line) {
        synchronized (out) {
            out.println("[launch] " + line);
            out.flush();
        }
    }
}
