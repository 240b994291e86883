package dev.weft.checkpoint;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** Real writer processes killed with SIGKILL at a point they announce. */
class CrashSurvivalTest {
    @TempDir Path tmp;

    private static Path repoRoot() {
        for (Path p = Path.of(System.getProperty("user.dir")).toAbsolutePath(); p != null; p = p.getParent())
            if (Files.exists(p.resolve("config/jvm.options"))) return p;
        throw new IllegalStateException("no config/jvm.options above " + System.getProperty("user.dir"));
    }

    /** Starts CrashingWriter, waits (bounded) for {@code signal}, then kills it with SIGKILL. */
    private static void runAndKill(String mode, Path dir, String signal) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "@" + repoRoot().resolve("config/jvm.options"), "-Xmx256m", "-cp", System.getProperty("java.class.path"),
                CrashingWriter.class.getName(), mode, dir.toString()));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        BlockingQueue<String> lines = new LinkedBlockingQueue<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream()))) {
                for (String l; (l = r.readLine()) != null; ) lines.add(l);
            } catch (IOException ignored) {
                // the process died
            }
        });
        reader.setDaemon(true);
        reader.start();
        try {
            StringBuilder seen = new StringBuilder();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (true) {
                String l = lines.poll(200, TimeUnit.MILLISECONDS);
                if (l != null) {
                    seen.append(l).append('\n');
                    if (l.equals(signal)) break;
                }
                if (System.nanoTime() > deadline || (l == null && !p.isAlive() && lines.isEmpty()))
                    fail("writer did not print " + signal + "; output:\n" + seen);
            }
        } finally {
            p.destroyForcibly();
            assertTrue(p.waitFor(30, TimeUnit.SECONDS), "killed writer did not exit");
        }
        assertEquals(137, p.exitValue(), "the writer must die by SIGKILL");
    }

    @Test
    void writerKilledMidWriteLeavesThePreviousSnapshotIntact() throws Exception {
        runAndKill("midwrite", tmp, "WRITING");
        List<SnapshotStore> stores = Fixtures.open(Fixtures.domainDirs(tmp, 3));
        try {
            ErasureCodedSnapshots ec = new ErasureCodedSnapshots(stores, 2, 1);
            try (var r = ec.restore("job", "rank0")) {
                assertEquals(1, r.step(), "the partial step 2 must be ignored");
                assertArrayEquals(new int[0], r.rebuiltPieces());
                Fixtures.assertSame(Fixtures.snapshot(1, 50_000), r.snapshot());
            }
            var survey = ec.survey(true);
            assertTrue(survey.stream().anyMatch(s -> s.step() == 2 && !s.committed()), "the partial step shows as uncommitted: " + survey);
            // Training resumes: step 2 is written again and now commits.
            ec.save("job", "rank0", Fixtures.snapshot(2, 50_000));
            try (var r = ec.restore("job", "rank0")) { Fixtures.assertSame(Fixtures.snapshot(2, 50_000), r.snapshot()); }
        } finally {
            Fixtures.close(stores);
        }
    }

    @Test
    void writerKilledHoldingTheIndexLockNeitherHangsNorLosesData() throws Exception {
        Path dir = tmp.resolve("s");
        runAndKill("holdlock", dir, "LOCKED");
        assertTimeoutPreemptively(Duration.ofSeconds(40), () -> {
            try (SnapshotStore store = SnapshotStore.open(dir)) {
                assertEquals(1, store.recoveries(), "the opener must notice the dead holder and recover the index");
                ErasureCodedSnapshots ec = new ErasureCodedSnapshots(List.of(store), 1, 0);
                try (var r = ec.restore("job", "r")) { Fixtures.assertSame(Fixtures.snapshot(1, 4000), r.snapshot()); }
                ec.save("job", "r", Fixtures.snapshot(2, 4000));
                assertEquals(List.of(2L, 1L), store.committedSteps("job", "r"));
                try (var r = ec.restore("job", "r")) { Fixtures.assertSame(Fixtures.snapshot(2, 4000), r.snapshot()); }
            }
        });
    }
}
