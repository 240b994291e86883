package dev.weft.trainer;

import dev.weft.parallel.InJvmTransport;
import dev.weft.trainer.config.ConfigException;
import dev.weft.trainer.config.TrainConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/**
 * In-memory snapshots through a crash, on in-JVM ranks: every rank fails before step 6 with no
 * disk checkpoint written, a fresh trainer per rank restores from the snapshot stores, and the
 * joined loss curve equals the uninterrupted run's bit for bit (the snapshot holds the state's
 * bytes, and every input to a step is a function of the step).
 */
class SnapshotResumeTest {
    private static final Duration T = Duration.ofSeconds(120);

    @TempDir
    Path dir;

    private TrainConfig config(String out, String... extra) throws IOException {
        List<String> sets = new ArrayList<>(List.of("train.steps=10", "snapshot.every=1", "snapshot.domain=rank", "snapshot.store=" + dir.resolve("stores-" + out)));
        sets.addAll(List.of(extra));
        return ExactResumeTest.tinyConfig(dir, out, sets);
    }

    private record Run(List<Double> losses, String output) {}

    /** Each rank's losses and output; every rank throws before 0-based step {@code crashAt} (-1: never). */
    private static List<Run> train(int world, TrainConfig cfg, boolean resume, long crashAt) {
        return InJvmTransport.run(world, T, g -> {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            PrintStream out = new PrintStream(bytes, true);
            try (Trainer t = new Trainer(cfg, out, new DistributedContext(g, step -> {
                if (step == crashAt) throw new IllegalStateException("injected crash before step " + (step + 1));
            }))) {
                return new Run(new ArrayList<>(t.run(resume).trainLosses()), bytes.toString());
            } catch (IllegalStateException e) {
                if (!e.getMessage().startsWith("injected crash")) throw e;
                return new Run(List.of(), bytes.toString());
            }
        });
    }

    private static void assertBits(List<Double> expected, List<Double> actual, String what) {
        assertEquals(expected.size(), actual.size(), what + ": steps");
        for (int i = 0; i < expected.size(); i++)
            assertEquals(Double.doubleToRawLongBits(expected.get(i)), Double.doubleToRawLongBits(actual.get(i)),
                    what + ": step " + (i + 1) + ": " + actual.get(i) + " vs " + expected.get(i));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 3})
    void aCrashedRunResumesFromMemoryBitForBit(int zero) throws IOException {
        List<Double> reference = train(2, config("ref" + zero, "parallel.zero=" + zero, "snapshot.every=0"), false, -1).getFirst().losses();
        TrainConfig cfg = config("run" + zero, "parallel.zero=" + zero, "snapshot.ec=1+1");
        List<Run> crashed = train(2, cfg, false, 5);
        assertTrue(crashed.getFirst().losses().isEmpty());
        assertFalse(Files.exists(cfg.train().outDir().resolve("checkpoints")), "no disk checkpoint: the restore is from memory");

        List<Run> resumed = train(2, cfg, true, -1);
        for (Run r : resumed) {
            assertTrue(r.output().contains("snapshot: restored step 5 from memory"), r.output());
            assertBits(reference.subList(5, 10), r.losses(), "ZeRO-" + zero + " resumed from memory");
        }
    }

    @Test
    void aLostDomainIsRebuiltAndMoreLostFallsBackToTheDiskCheckpointInOneLine() throws IOException {
        List<Double> reference = train(3, config("ref", "snapshot.every=0"), false, -1).getFirst().losses();
        TrainConfig cfg = config("run", "snapshot.ec=2+1", "train.save_every=2");
        train(3, cfg, false, 5);
        Path stores = dir.resolve("stores-run");
        deleteTree(stores.resolve("rank1")); // one domain's memory gone: rebuilt from parity
        List<Run> resumed = train(3, cfg, true, -1);
        for (int r = 0; r < 3; r++) {
            String out = resumed.get(r).output();
            // rank 0's piece 1 and rank 1's piece 0 lived on rank1; rank 2 lost only its parity there
            assertTrue(out.contains("snapshot: restored step 5 from memory") && out.contains((r < 2 ? 1 : 0) + " rebuilt from parity"), out);
            assertBits(reference.subList(5, 10), resumed.get(r).losses(), "rank " + r + " after a rebuild");
        }

        train(3, cfg, false, 7); // a fresh run of the job: snapshots through step 7, disk checkpoints at 2, 4 and 6
        deleteTree(stores.resolve("rank0"));
        deleteTree(stores.resolve("rank2")); // two of three domains: more than m = 1 lost
        List<Run> fallback = train(3, cfg, true, -1);
        String out = fallback.getFirst().output();
        assertTrue(out.lines().anyMatch(l -> l.startsWith("snapshot: the snapshot of step 7 cannot be restored from memory")
                && l.contains("falling back to the persistent checkpoint of step 6")), out);
        assertTrue(out.contains("resumed from"), out);
        assertBits(reference.subList(6, 10), fallback.getFirst().losses(), "after the fallback to disk");
    }

    @Test
    void aFreshRunNeverRestoresAnotherRunsSnapshots() throws IOException {
        TrainConfig cfg = config("fresh");
        train(2, cfg, false, -1); // leaves step 10 in the stores
        List<Run> again = train(2, cfg, false, 3); // a new run of the same job crashes before step 4
        List<Run> resumed = train(2, cfg, true, -1);
        assertTrue(resumed.getFirst().output().contains("snapshot: restored step 3 from memory"), resumed.getFirst().output());
        assertEquals(7, resumed.getFirst().losses().size());
        assertTrue(again.getFirst().losses().isEmpty());
    }

    @Test
    void badSnapshotSettingsAreOneLineConfigErrors() {
        ConfigException e = assertThrows(ConfigException.class, () -> config("bad", "snapshot.ec=2-1"));
        assertTrue(e.getMessage().contains("snapshot.ec = '2-1' is invalid"), e.getMessage());
        e = assertThrows(ConfigException.class, () -> config("bad", "snapshot.domain=rack"));
        assertTrue(e.getMessage().contains("snapshot.domain"), e.getMessage());
        RuntimeException wide = assertThrows(RuntimeException.class, () -> train(2, config("wide", "snapshot.ec=2+1"), false, -1));
        Throwable c = wide;
        while (c.getCause() != null && !(c instanceof IllegalArgumentException)) c = c.getCause();
        assertTrue(c.getMessage().contains("places 3 pieces on distinct failure domains, but this job has 2 rank domain(s)"), c.getMessage());
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }
}
