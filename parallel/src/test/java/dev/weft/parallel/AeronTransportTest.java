package dev.weft.parallel;

import dev.weft.parallel.rendezvous.JobSecret;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** The collectives over Aeron between real rank processes sharing one media driver. */
class AeronTransportTest {
    static AeronDriver driver;

    @BeforeAll
    static void startDriver() {
        driver = AeronDriver.launch();
    }

    @AfterAll
    static void stopDriver() {
        if (driver != null) driver.close();
    }

    @Test
    void everyCollectiveOnOneToFourRankProcessesMatchesTheReferenceBitForBit(@TempDir Path tmp) throws Exception {
        int[] sizes = AeronRankMain.SIZES;
        for (int n = 1; n <= 4; n++) {
            List<String> results = runRanks(tmp.resolve("n" + n), "checks", n, false);
            // all-reduce and all-gather results are identical on every rank, and identical to the
            // in-JVM transport's (same algorithms, fixed combination order)
            long expect = InJvmTransport.run(n, Duration.ofSeconds(20), g -> CollectiveChecks.checkAll(g, sizes)).getFirst();
            for (int r = 0; r < n; r++) assertEquals("RESULT " + expect, results.get(r), "rank " + r + " of " + n);
        }
    }

    @Test
    void udpBetweenTwoRanks(@TempDir Path tmp) throws Exception {
        List<String> results = runRanks(tmp, "checks", 2, true);
        assertEquals(results.get(0), results.get(1));
    }

    @Test
    void recvWhosePeerNeverSendsNamesThePeer(@TempDir Path tmp) throws Exception {
        List<String> results = runRanks(tmp, "timeout", 2, false);
        assertTrue(results.get(0).startsWith("RESULT [1] recv(tag=4)"), results.get(0));
        assertTrue(results.get(0).contains("in group 'pair'"), results.get(0));
        assertEquals("RESULT silent", results.get(1));
    }

    @Test
    void aRankThatDiesIsNamedByTheSharedMemoryPathsDeadlines(@TempDir Path tmp) throws Exception {
        List<String> results = runRanks(tmp, "dies", 2, false);
        assertEquals("RESULT halting after 3.0", results.get(1));
        assertEquals("RESULT [allReduce [1], send(tag=2) [1], recv(tag=3) [1]]", results.get(0));
    }

    @Test
    void staleDriverDirectoriesAreRemovedAndLiveOnesKept(@TempDir Path tmp) throws IOException {
        Path stale = Files.createDirectories(tmp.resolve(AeronDriver.PREFIX + "999999999-1"));
        Files.writeString(stale.resolve("cnc.dat"), "x");
        Path live = Files.createDirectories(tmp.resolve(AeronDriver.PREFIX + ProcessHandle.current().pid() + "-7"));
        assertEquals(List.of(stale), AeronDriver.removeStale(tmp));
        assertFalse(Files.exists(stale));
        assertTrue(Files.exists(live));
    }

    /** Starts n rank JVMs and returns each one's RESULT line; every wait is bounded. */
    static List<String> runRanks(Path dir, String scenario, int n, boolean udp) throws Exception {
        Files.createDirectories(dir);
        List<Process> procs = new ArrayList<>();
        List<Path> logs = new ArrayList<>();
        String secret = JobSecret.random().encoded();
        try {
            for (int r = 0; r < n; r++) {
                List<String> cmd = new ArrayList<>(List.of(
                        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                        "@" + repoRoot().resolve("config/jvm.options"),
                        "-Xmx256m", "-XX:TieredStopAtLevel=1",
                        "-cp", System.getProperty("java.class.path"),
                        AeronRankMain.class.getName(), scenario, Integer.toString(r), Integer.toString(n), dir.toString()));
                if (udp) cmd.add("udp");
                Path log = dir.resolve("rank" + r + ".log");
                logs.add(log);
                ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
                pb.environment().put(AeronTransport.DRIVER_DIR_ENV, driver.directory());
                pb.environment().put("WEFT_JOB_SECRET", secret);
                procs.add(pb.start());
            }
            List<String> results = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                Process p = procs.get(r);
                boolean done = p.waitFor(60, TimeUnit.SECONDS);
                String out = Files.readString(logs.get(r));
                assertTrue(done, "rank " + r + " of " + n + " did not finish:\n" + out);
                assertEquals(0, p.exitValue(), "rank " + r + " of " + n + " failed:\n" + out);
                results.add(out.lines().filter(l -> l.startsWith("RESULT")).findFirst().orElse("no RESULT line in:\n" + out));
            }
            return results;
        } finally {
            for (Process p : procs) p.destroyForcibly();
        }
    }

    static Path repoRoot() {
        Path p = Path.of(System.getProperty("user.dir")).toAbsolutePath();
        while (p != null && !Files.exists(p.resolve("config/jvm.options"))) p = p.getParent();
        if (p == null) throw new IllegalStateException("no config/jvm.options above " + System.getProperty("user.dir"));
        return p;
    }
}
