package dev.weft.launcher;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * weft launch --spark-master: the ranks as one Spark barrier stage, in local[2] (tasks are threads
 * of this JVM) and in local-cluster[2,1,1024] (a master, two workers and two executor JVMs), each
 * task starting a real rank JVM. The control is {@code weft launch --nproc-per-node 2} on the same
 * config: same ranks, same global batch, so the same losses to the last bit (the data-parallel sum
 * has a fixed order whatever transport carries it).
 */
class SparkLaunchTest {
    private static final int STEPS = 16, SAVE_EVERY = 4;

    @TempDir
    static Path dir;
    private static Path cfg;
    private static List<Double> reference;

    @BeforeAll
    static void referenceRun() throws IOException {
        cfg = LaunchTest.config(dir, STEPS, SAVE_EVERY);
        CliTest.Run r = CliTest.run("launch", "--nproc-per-node", "2", cfg.toString(), "--set", "train.out_dir=ref", "--set", "train.micro_batch=2");
        assertEquals(0, r.code(), r.out() + r.err());
        reference = LaunchTest.losses(dir.resolve("ref"));
        assertEquals(STEPS, reference.size());
    }

    @Test
    @Timeout(value = 150, unit = TimeUnit.SECONDS)
    void twoRanksAsABarrierStageTrainWithTheLossesOfWeftLaunch() throws IOException {
        CliTest.Run r = CliTest.run("launch", "--spark-master", "local[2]", "--nproc", "2", cfg.toString(), "--set", "train.out_dir=local",
                "--set", "train.micro_batch=2");
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("[rank 1] joined: rank 1 of 2 (local rank 1, node 0, attempt 0)"), r.out());
        assertTrue(r.out().contains("[launch] all 2 rank(s) finished"), r.out());
        for (int rank = 0; rank < 2; rank++) {
            Path log = dir.resolve("local/logs/rank-" + rank + ".log");
            assertTrue(Files.readString(log).contains("joined: rank " + rank + " of 2"), "rank " + rank + "'s log: " + log);
            assertTrue(Files.exists(dir.resolve("local/logs/rank-" + rank + ".pid")));
        }
        assertEquals(reference, LaunchTest.losses(dir.resolve("local")), "losses of the barrier stage vs weft launch --nproc-per-node 2");
    }

    @Test
    @Timeout(value = 420, unit = TimeUnit.SECONDS)
    void aRankKilledInALocalClusterFailsTheStageWhichResumesToTheSameLosses() throws Exception {
        Path sparkHome = dir.resolve("spark-home");
        Files.createDirectories(sparkHome.resolve("jars")); // Spark's worker puts SPARK_HOME/jars/* on executors' classpath
        String classpath = System.getProperty("java.class.path");
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "@" + jvmOptions(), "-Xmx1g",
                "-cp", classpath, Main.class.getName(), "launch", "--spark-master", "local-cluster[2,1,1024]", "--nproc", "2", "--max-restarts", "1",
                // the ranks pause 250 ms before each step (it changes no number): the kill lands mid-run on a machine of any speed
                "--rank-env", "WEFT_TEST_STEP_PAUSE_MS=250",
                "--spark-conf", "spark.executor.extraClassPath=" + classpath, cfg.toString(), "--set", "train.out_dir=cluster",
                "--set", "train.micro_batch=2"));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("cluster.out").toFile());
        pb.environment().putAll(Map.of("SPARK_HOME", sparkHome.toString(), "SPARK_SCALA_VERSION", "2.13", "SPARK_LOCAL_IP", "127.0.0.1",
                "JAVA_HOME", System.getProperty("java.home")));
        Process launch = pb.start();
        try {
            Path metrics = dir.resolve("cluster/metrics.jsonl"), latest = dir.resolve("cluster/checkpoints/latest");
            // executors take tens of seconds to register on a busy machine; kill once a checkpoint is behind the ranks
            while (!(Files.exists(latest) && Files.exists(metrics) && Files.readAllLines(metrics).size() > SAVE_EVERY)) {
                assertTrue(launch.isAlive(), () -> "the job ended before the kill:\n" + output());
                Thread.sleep(100);
            }
            long pid = Long.parseLong(Files.readString(dir.resolve("cluster/logs/rank-1.pid")).strip());
            assertTrue(ProcessHandle.of(pid).orElseThrow().destroyForcibly(), "could not SIGKILL rank 1");
            assertTrue(launch.waitFor(300, TimeUnit.SECONDS), () -> "the job did not end:\n" + output());
        } finally {
            launch.destroyForcibly();
        }
        String out = output();
        assertEquals(0, launch.exitValue(), out);
        assertTrue(out.contains("weft launch: rank 1 failed first: killed by signal 9 (SIGKILL)"), out);
        assertFalse(out.contains("rank 0 failed first"), "the cascade is not the cause: " + out);
        assertTrue(out.contains("[launch] restarting the stage (1 of 1)"), out);
        assertTrue(out.contains("[launch] all 2 rank(s) finished after 1 restart(s)"), out);
        String rank0 = Files.readString(dir.resolve("cluster/logs/rank-0.log"));
        assertTrue(rank0.contains("joined: rank 0 of 2 (local rank 0, node 0, attempt 1)") && rank0.contains("weft: resumed from"), rank0);
        List<Double> resumed = LaunchTest.losses(dir.resolve("cluster"));
        assertEquals(reference, resumed, "losses of the killed and resumed stage vs the uninterrupted weft launch");
    }

    @Test
    void aBadMasterAndBadArgumentsAreOneLineErrors() {
        CliTest.Run bad = CliTest.run("launch", "--spark-master", "nowhere://x", "--nproc", "2", cfg.toString());
        assertEquals(2, bad.code(), bad.out() + bad.err());
        assertTrue(bad.err().contains("weft launch: error: --spark-master 'nowhere://x' is not a master URL Spark knows"), bad.err());
        assertFalse(bad.err().contains("\tat "), "no stack trace: " + bad.err());
        CliTest.Run unparsed = CliTest.run("launch", "--spark-master", "local[two]", "--nproc", "2", cfg.toString()); // Spark's own parse
        assertEquals(2, unparsed.code(), unparsed.out() + unparsed.err());
        assertTrue(unparsed.err().contains("weft launch: error: --spark-master 'local[two]' is not a master URL Spark knows"), unparsed.err());
        assertEquals(1, unparsed.err().lines().filter(l -> l.startsWith("weft launch")).count(), unparsed.err());
        assertFalse(unparsed.err().contains("\tat "), "no stack trace: " + unparsed.err());

        CliTest.Run few = CliTest.run("launch", "--spark-master", "local[1]", "--nproc", "2", cfg.toString());
        assertEquals(2, few.code());
        assertTrue(few.err().contains("local[1] has 1 task slot(s), fewer than --nproc 2"), few.err());
        CliTest.Run noCount = CliTest.run("launch", "--spark-master", "local[2]", cfg.toString());
        assertEquals(2, noCount.code());
        assertTrue(noCount.err().contains("--spark-master needs --nproc N"), noCount.err());
        CliTest.Run mixed = CliTest.run("launch", "--spark-master", "local[2]", "--nproc", "2", "--nproc-per-node", "2", cfg.toString());
        assertEquals(2, mixed.code());
        assertTrue(mixed.err().contains("--nproc-per-node does not apply with --spark-master"), mixed.err());
        CliTest.Run noMaster = CliTest.run("launch", "--nproc", "2", cfg.toString());
        assertEquals(2, noMaster.code());
        assertTrue(noMaster.err().contains("--nproc needs --spark-master"), noMaster.err());
        CliTest.Run standalone = CliTest.run("launch", "--spark-master", "spark://127.0.0.1:1", "--nproc", "2", cfg.toString());
        assertEquals(2, standalone.code());
        assertTrue(standalone.err().contains("needs Spark's RPC secret"), standalone.err());
        CliTest.Run clear = CliTest.run("launch", "--spark-master", "local-cluster[2,1,1024]", "--nproc", "2", "--spark-conf",
                "spark.network.crypto.enabled=false", cfg.toString());
        assertEquals(2, clear.code());
        assertTrue(clear.err().contains("spark.network.crypto.enabled=false is refused"), clear.err());
    }

    private static String output() {
        try {
            return Files.readString(dir.resolve("cluster.out"));
        } catch (IOException e) {
            return "(no output: " + e + ")";
        }
    }

    private static Path jvmOptions() {
        for (Path p = Path.of(System.getProperty("user.dir")).toAbsolutePath(); p != null; p = p.getParent())
            if (Files.isRegularFile(p.resolve("config/jvm.options"))) return p.resolve("config/jvm.options");
        throw new IllegalStateException("no config/jvm.options above " + System.getProperty("user.dir"));
    }
}
