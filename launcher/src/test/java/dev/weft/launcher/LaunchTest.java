package dev.weft.launcher;

import dev.weft.parallel.rendezvous.JobSecret;
import dev.weft.parallel.rendezvous.Rendezvous;
import dev.weft.parallel.rendezvous.RendezvousException;
import dev.weft.trainer.metrics.MetricsLog;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** weft launch with real rank processes: fidelity against weft train, and the failure cases. */
class LaunchTest {
    @TempDir
    Path dir;

    static String corpus() {
        StringBuilder sb = new StringBuilder();
        String[] words = {"to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler", "in", "mind"};
        long x = 1;
        while (sb.length() < 40_000) {
            x = x * 6364136223846793005L + 1442695040888963407L;
            sb.append(words[(int) ((x >>> 33) % words.length)]).append((x & 7) == 0 ? ".\n" : " ");
        }
        return sb.toString();
    }

    /** A tiny model; train.micro_batch is per rank under launch. */
    private Path config(int steps, int saveEvery) throws IOException {
        return config(dir, steps, saveEvery);
    }

    static Path config(Path dir, int steps, int saveEvery) throws IOException {
        Files.writeString(dir.resolve("corpus.txt"), corpus());
        Path cfg = dir.resolve("tiny.yaml");
        Files.writeString(cfg, """
                model: {layers: 2, d_model: 32, heads: 4, kv_heads: 2, ffn_dim: 64, vocab: 256, max_seq_len: 32}
                data: {text: corpus.txt, tokenizer: byte, cache_dir: cache}
                train: {steps: STEPS, micro_batch: 4, grad_accum: 2, seq_len: 32, eval_every: 10, eval_batches: 2, save_every: SAVE, out_dir: run}
                optimizer: {lr: 0.01, warmup_steps: 2}
                distributed: {bucket_kib: 8, timeout_seconds: 30, rendezvous_timeout_seconds: 30}
                sample: {tokens: 0}
                """.replace("STEPS", Integer.toString(steps)).replace("SAVE", Integer.toString(saveEvery)));
        return cfg;
    }

    /** Trains {@code cfg} on one process into {@code dir/out} with the overrides {@code sets}; returns its losses. */
    static List<Double> single(Path dir, Path cfg, String out, String... sets) throws IOException {
        List<String> args = new ArrayList<>(List.of("train", cfg.toString(), "--set", "train.out_dir=" + out));
        for (String s : sets) args.addAll(List.of("--set", s));
        CliTest.Run r = CliTest.run(args.toArray(String[]::new));
        assertEquals(0, r.code(), r.out() + r.err());
        return losses(dir.resolve(out));
    }

    static List<Double> losses(Path run) throws IOException {
        List<Double> l = new ArrayList<>();
        for (Map<String, Object> r : MetricsLog.read(run.resolve("metrics.jsonl"))) l.add(((Number) r.get("loss")).doubleValue());
        return l;
    }

    static void assertSameLosses(List<Double> single, List<Double> dp, String what) {
        assertEquals(single.size(), dp.size(), what);
        for (int i = 0; i < single.size(); i++) {
            double rel = Math.abs(single.get(i) - dp.get(i)) / Math.abs(single.get(i));
            assertTrue(rel <= 1e-5, what + ": step " + (i + 1) + " loss " + dp.get(i) + " vs single-process " + single.get(i) + " (relative " + rel + ")");
        }
    }

    @Test
    @Timeout(value = 200, unit = TimeUnit.SECONDS)
    void twoAndFourRanksReproduceTheSingleProcessLossCurve() throws IOException {
        Path cfg = config(20, 0);
        // the global batch: 4 rows x 2 micro-steps; one process reads all 4 rows per micro-step
        CliTest.Run single = CliTest.run("train", cfg.toString(), "--set", "train.out_dir=single");
        assertEquals(0, single.code(), single.err());
        List<Double> ref = losses(dir.resolve("single"));
        assertEquals(20, ref.size());

        CliTest.Run two = CliTest.run("launch", "--nproc-per-node", "2", cfg.toString(), "--set", "train.out_dir=dp2", "--set", "train.micro_batch=2");
        assertEquals(0, two.code(), two.out() + two.err());
        assertTrue(two.out().contains("[rank 1] joined: rank 1 of 2"), two.out());
        assertTrue(Files.exists(dir.resolve("dp2/logs/rank-0.log")) && Files.exists(dir.resolve("dp2/logs/rank-1.log")));
        assertSameLosses(ref, losses(dir.resolve("dp2")), "2 ranks");
        assertTrue(two.out().contains("Aeron media driver for this node"), two.out());

        CliTest.Run tcp = CliTest.run("launch", "--nproc-per-node", "2", cfg.toString(), "--set", "train.out_dir=tcp2", "--set", "train.micro_batch=2",
                "--set", "distributed.transport=tcp");
        assertEquals(0, tcp.code(), tcp.out() + tcp.err());
        assertSameLosses(ref, losses(dir.resolve("tcp2")), "2 ranks over TCP");

        CliTest.Run four = CliTest.run("launch", "--nproc-per-node", "4", cfg.toString(), "--set", "train.out_dir=dp4", "--set", "train.micro_batch=1");
        assertEquals(0, four.code(), four.out() + four.err());
        assertSameLosses(ref, losses(dir.resolve("dp4")), "4 ranks");
        // only rank 0 writes metrics, and the validation losses agree too
        List<Map<String, Object>> m1 = MetricsLog.read(dir.resolve("single/metrics.jsonl")), m4 = MetricsLog.read(dir.resolve("dp4/metrics.jsonl"));
        double v1 = ((Number) m1.getLast().get("val_loss")).doubleValue(), v4 = ((Number) m4.getLast().get("val_loss")).doubleValue();
        assertEquals(v1, v4, 1e-5 * v1);
    }

    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void killNineOfOneRankIsReportedAsTheFirstFailureWithoutHanging() throws Exception {
        Path cfg = config(100_000, 0);
        CompletableFuture<CliTest.Run> job = CompletableFuture.supplyAsync(() -> CliTest.run("launch", "--nproc-per-node", "2", cfg.toString()));
        Path metrics = dir.resolve("run/metrics.jsonl");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!(Files.exists(metrics) && Files.readAllLines(metrics).size() >= 3)) {
            assertFalse(job.isDone(), () -> "the job ended before training: " + job.join().out());
            assertTrue(System.nanoTime() < deadline, "training did not reach step 3 within 60 s");
            Thread.sleep(100);
        }
        long pid = Long.parseLong(Files.readString(dir.resolve("run/logs/rank-1.pid")).strip());
        long killed = System.nanoTime();
        assertTrue(ProcessHandle.of(pid).orElseThrow().destroyForcibly(), "could not SIGKILL rank 1");
        CliTest.Run r = job.get(45, TimeUnit.SECONDS);
        double seconds = (System.nanoTime() - killed) / 1e9;
        assertEquals(1, r.code(), r.out());
        assertTrue(r.out().contains("rank 1 failed first: killed by signal 9 (SIGKILL)"), r.out());
        assertFalse(r.out().contains("rank 0 failed first"), "the cascade must not be reported as the cause: " + r.out());
        assertTrue(r.out().contains("giving up (--max-restarts 0): rank 1 failed"), r.out());
        assertTrue(seconds < 20, "the job took " + seconds + " s to stop after the kill");
        assertFalse(ProcessHandle.of(Long.parseLong(Files.readString(dir.resolve("run/logs/rank-0.pid")).strip())).map(ProcessHandle::isAlive).orElse(false),
                "rank 0 still runs");
    }

    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void aJoinerWithTheWrongSecretIsRefusedAndTheJobGoesOn() throws Exception {
        Path cfg = config(6, 0);
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        String endpoint = "127.0.0.1:" + port;
        CompletableFuture<CliTest.Run> job = CompletableFuture.supplyAsync(
                () -> CliTest.run("launch", "--nproc-per-node", "2", "--rdzv-endpoint", endpoint, cfg.toString()));
        RendezvousException refused = assertThrows(RendezvousException.class,
                () -> Rendezvous.join(endpoint, JobSecret.random(), 0, 1, 2, "intruder:1", Duration.ofSeconds(30)));
        assertTrue(refused.getMessage().contains("does not hold the job secret"), refused.getMessage());
        CliTest.Run r = job.get(75, TimeUnit.SECONDS);
        assertEquals(0, r.code(), r.out());
        assertTrue(r.out().contains("[launch] rendezvous: refused a joiner from") && r.out().contains("HMAC challenge failed"), r.out());
        assertEquals(6, losses(dir.resolve("run")).size(), "the job trained to the end");
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void maxRestartsOneRestartsFromTheCheckpointOnceThenStopsWithTheCause() throws IOException {
        Path cfg = config(8, 2);
        CliTest.Run r = CliTest.run("launch", "--nproc-per-node", "2", "--max-restarts", "1", "--rank-env", "WEFT_TEST_FAIL_RANK=1",
                "--rank-env", "WEFT_TEST_FAIL_STEP=5", cfg.toString());
        String out = r.out();
        assertEquals(1, r.code(), out);
        assertEquals(2, count(out, "weft launch: rank 1 failed first: exit code 3"), out);
        assertTrue(out.contains("[rank 1] injected failure at step 6"), out);
        assertTrue(out.contains("restarting the job (1 of 1)"), out);
        assertTrue(out.contains("[rank 0] weft: resumed from") && out.contains("step-00000004 (step 4"), out);
        assertTrue(out.contains("giving up after 1 restart(s) (--max-restarts 1): rank 1 failed: exit code 3"), out);
        assertEquals(1, count(out, "restarting the job"), "restarted exactly once: " + out);
        assertTrue(out.contains("[rank 1] joined: rank 1 of 2 (local rank 1, node 0, attempt 1)"), out);
        // the resumed run kept steps 1-4 and continued from there (step 5 may or may not be logged before the stop)
        List<Double> l = losses(dir.resolve("run"));
        assertTrue(l.size() == 4 || l.size() == 5, "steps 1-4 (and maybe 5) of the resumed run: " + l);
    }

    @Test
    void badArgumentsAreNamed() throws IOException {
        Path cfg = config(2, 0);
        CliTest.Run r = CliTest.run("launch", "--nproc-per-node", "0", cfg.toString());
        assertEquals(2, r.code(), r.out() + r.err());
        assertTrue(r.err().contains("--nproc-per-node must be >= 1, got 0"), r.err());
        CliTest.Run r2 = CliTest.run("launch", "--nnodes", "2", cfg.toString());
        assertEquals(2, r2.code());
        assertTrue(r2.err().contains("--rdzv-endpoint host:port is required"), r2.err());
    }

    static int count(String s, String needle) {
        int n = 0;
        for (int i = s.indexOf(needle); i >= 0; i = s.indexOf(needle, i + 1)) n++;
        return n;
    }
}
