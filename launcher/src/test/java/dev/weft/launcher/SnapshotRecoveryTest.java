package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * kill -9 of a rank under {@code weft launch} with every-step in-memory snapshots and no disk
 * checkpoint: the launcher restarts the job, the ranks restore the newest globally committed step
 * from the stores (RS(2, 1) over rank domains on this one node), and the loss curve is
 * bit-identical to the uninterrupted run's. The moments: anywhere in a step, in the middle of a
 * snapshot's copy, and in its encoding (held open there by a test-only pause).
 */
class SnapshotRecoveryTest {
    @TempDir
    Path dir;

    private static final int STEPS = 9;

    private List<String> launch(String out, List<String> extra) {
        List<String> args = new ArrayList<>(List.of("launch", "--nproc-per-node", "3", "--max-restarts", "1"));
        args.addAll(extra);
        args.addAll(List.of(dir.resolve("tiny.yaml").toString(), "--set", "train.out_dir=" + out, "--set", "train.micro_batch=2",
                "--set", "snapshot.every=1", "--set", "snapshot.domain=rank", "--set", "snapshot.ec=2+1", "--set", "snapshot.store=" + dir.resolve("stores-" + out)));
        return args;
    }

    /** Runs the job in the background, kills one rank when {@code ready} says so, and returns the job's output. */
    private CliTest.Run killOnce(String out, List<String> extra, int victim, java.util.function.BooleanSupplier ready) throws Exception {
        CompletableFuture<CliTest.Run> job = CompletableFuture.supplyAsync(() -> CliTest.run(launch(out, extra).toArray(String[]::new)));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!ready.getAsBoolean()) {
            assertFalse(job.isDone(), () -> "the job ended before the kill: " + job.join().out());
            assertTrue(System.nanoTime() < deadline, "the moment to kill never came");
            Thread.sleep(20);
        }
        long pid = Long.parseLong(Files.readString(dir.resolve(out + "/logs/rank-" + victim + ".pid")).strip());
        assertTrue(ProcessHandle.of(pid).orElseThrow().destroyForcibly(), "could not SIGKILL rank " + victim);
        return job.get(240, TimeUnit.SECONDS);
    }

    private boolean logSays(String out, int rank, String line) {
        try {
            Path log = dir.resolve(out + "/logs/rank-" + rank + ".log");
            return Files.exists(log) && Files.readString(log).contains(line);
        } catch (java.io.IOException e) {
            return false;
        }
    }

    private int stepsLogged(String out) {
        try {
            Path m = dir.resolve(out + "/metrics.jsonl");
            return Files.exists(m) ? Files.readAllLines(m).size() : 0;
        } catch (java.io.IOException e) {
            return 0;
        }
    }

    private void assertRecovered(CliTest.Run r, List<Double> reference, String out, String what) throws Exception {
        assertEquals(0, r.code(), what + ": " + r.out());
        assertTrue(r.out().contains("failed first: killed by signal 9 (SIGKILL)"), what + ": " + r.out());
        assertTrue(r.out().contains("snapshot: restored step") && r.out().contains("from memory"), what + ": " + r.out());
        assertFalse(Files.exists(dir.resolve(out + "/checkpoints")), what + ": no disk checkpoint was written, the state came from memory");
        List<Double> got = LaunchTest.losses(dir.resolve(out));
        assertEquals(reference.size(), got.size(), what + ": steps");
        for (int i = 0; i < reference.size(); i++)
            assertEquals(Double.doubleToRawLongBits(reference.get(i)), Double.doubleToRawLongBits(got.get(i)),
                    what + ": step " + (i + 1) + " loss " + got.get(i) + " vs " + reference.get(i) + " (bit for bit)");
    }

    @Test
    @Timeout(value = 900, unit = TimeUnit.SECONDS)
    void killNineAtARandomMomentMidCopyAndMidEncodeResumesFromMemoryBitForBit() throws Exception {
        LaunchTest.config(dir, STEPS, 0);
        CliTest.Run ref = CliTest.run(launch("ref", List.of()).toArray(String[]::new));
        assertEquals(0, ref.code(), ref.out());
        List<Double> reference = LaunchTest.losses(dir.resolve("ref"));
        assertEquals(STEPS, reference.size());
        assertTrue(ref.out().contains("snapshot: every 1 step(s) in memory, RS(2, 1) over 3 rank domain(s)"), ref.out());

        Random rnd = new Random();
        long seed = rnd.nextLong();
        rnd.setSeed(seed);
        int victim = rnd.nextInt(3), afterSteps = 3 + rnd.nextInt(5);
        long extraMillis = rnd.nextInt(400);
        String what = "kill -9 of rank " + victim + " " + extraMillis + " ms after step " + afterSteps + " (seed " + seed + ")";
        long[] seen = {0};
        CliTest.Run r = killOnce("random", List.of(), victim, () -> {
            if (seen[0] == 0 && stepsLogged("random") >= afterSteps) seen[0] = System.nanoTime();
            return seen[0] != 0 && System.nanoTime() - seen[0] > extraMillis * 1_000_000;
        });
        assertRecovered(r, reference, "random", what);

        for (String phase : List.of("copy", "encode")) {
            int rank = rnd.nextInt(3);
            String out = "mid-" + phase;
            CliTest.Run k = killOnce(out, List.of("--rank-env", "WEFT_TEST_SNAPSHOT_PAUSE=" + phase + ":5:2500"), rank,
                    () -> logSays(out, rank, "snapshot test: pausing in " + phase + " of step 5"));
            assertRecovered(k, reference, out, "kill -9 of rank " + rank + " mid-" + phase + " of step 5's snapshot");
            // step 5's snapshot never commits; step 4's may still have been on its way between the domains
            assertTrue(k.out().contains("snapshot: restored step 4 from memory") || k.out().contains("snapshot: restored step 3 from memory"),
                    "step 5 never committed: " + k.out());
        }
    }
}
