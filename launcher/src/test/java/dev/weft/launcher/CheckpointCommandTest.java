package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code weft checkpoint ls|verify} over a real run's checkpoints (a flipped byte is found by its
 * chunk's CRC32C), and {@code weft snapshot restore --out}: the in-memory snapshot written as a
 * persistent checkpoint that a resumed run continues from bit for bit.
 */
class CheckpointCommandTest {
    @TempDir
    Path dir;

    @Test
    void lsListsAndVerifyFindsAFlippedByteByItsChunksCrc() throws Exception {
        Path cfg = LaunchTest.config(dir, 4, 2);
        CliTest.Run t = CliTest.run("train", cfg.toString(), "--set", "train.out_dir=run", "--set", "parallel.zero=0");
        assertEquals(0, t.code(), t.err());
        CliTest.Run ls = CliTest.run("checkpoint", "ls", dir.resolve("run").toString());
        assertEquals(0, ls.code(), ls.err());
        assertTrue(ls.out().contains("step-00000002  step 2") && ls.out().contains("step-00000004  step 4") && ls.out().contains("<- latest"), ls.out());

        CliTest.Run ok = CliTest.run("checkpoint", "verify", dir.resolve("run").toString());
        assertEquals(0, ok.code(), ok.out() + ok.err());
        assertTrue(ok.out().contains("optimizer/rank-00000.safetensors") && ok.out().contains(" ok "), ok.out());
        assertTrue(ok.out().contains("0 corrupt"), ok.out());

        Path f = dir.resolve("run/checkpoints/step-00000004/optimizer/rank-00000.safetensors");
        byte[] b = Files.readAllBytes(f);
        b[b.length - 5] ^= 1; // inside the last tensor's bytes
        Files.write(f, b, StandardOpenOption.TRUNCATE_EXISTING);
        CliTest.Run bad = CliTest.run("checkpoint", "verify", dir.resolve("run/checkpoints/step-00000004").toString());
        assertEquals(1, bad.code(), bad.out() + bad.err());
        assertEquals(1, bad.out().lines().filter(l -> l.contains("CORRUPT: CRC32C")).count(), bad.out());
        assertTrue(bad.out().contains("1 corrupt"), bad.out());

        CliTest.Run missing = CliTest.run("checkpoint", "verify", dir.resolve("nowhere").toString());
        assertEquals(2, missing.code());
        assertEquals(1, missing.err().strip().lines().count(), missing.err());
    }

    @Test
    void snapshotRestoreOutWritesACheckpointThatResumesBitForBit() throws Exception {
        Path cfg = LaunchTest.config(dir, 8, 0);
        List<Double> reference = LaunchTest.single(dir, cfg, "ref");
        Path stores = dir.resolve("stores");
        CliTest.Run part = CliTest.run("train", cfg.toString(), "--set", "train.out_dir=part", "--stop-after", "6", "--set", "snapshot.every=1",
                "--set", "snapshot.store=" + stores);
        assertEquals(0, part.code(), part.out() + part.err());

        CliTest.Run ls = CliTest.run("snapshot", "ls", "--store", stores.toString());
        assertEquals(0, ls.code(), ls.err());
        assertTrue(ls.out().contains("job part: newest step committed by every rank: 6"), ls.out());

        Path restored = dir.resolve("restored");
        CliTest.Run r = CliTest.run("snapshot", "restore", "--store", stores.toString(), "--out", restored.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("wrote " + restored.resolve("checkpoints/step-00000006")), r.out());
        CliTest.Run verify = CliTest.run("checkpoint", "verify", restored.toString());
        assertEquals(0, verify.code(), verify.out());

        CliTest.Run resumed = CliTest.run("train", cfg.toString(), "--set", "train.out_dir=" + restored, "--resume");
        assertEquals(0, resumed.code(), resumed.out() + resumed.err());
        List<Double> tail = LaunchTest.losses(restored);
        assertEquals(2, tail.size(), "steps 7 and 8 after the restored step 6");
        for (int i = 0; i < 2; i++)
            assertEquals(Double.doubleToRawLongBits(reference.get(6 + i)), Double.doubleToRawLongBits(tail.get(i)), "step " + (7 + i));
    }
}
