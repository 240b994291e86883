package dev.weft.trainer;

import dev.weft.parallel.InJvmTransport;
import dev.weft.trainer.config.TrainConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Checkpoints without a shared filesystem: two in-JVM ranks, each its own "node" with its own
 * out_dir, write their checkpoints per node (each node what its ranks need), stop, and resume each
 * from its own directory; the curve equals the uninterrupted run's bit for bit. Nodes whose newest
 * checkpoints differ are refused before any collective could mismatch.
 */
class PerNodeCheckpointTest {
    private static final Duration T = Duration.ofSeconds(120);

    @TempDir
    Path dir;

    private TrainConfig config(String out, String... extra) throws IOException {
        List<String> sets = new ArrayList<>(List.of("train.steps=8", "train.save_every=2"));
        sets.addAll(List.of(extra));
        return ExactResumeTest.tinyConfig(dir, out, sets);
    }

    /** Rank r trains with out_dir {@code out}-node{r}, each rank its own node. */
    private List<List<Double>> perNode(String out, boolean resume, long stopAfter, String... extra) {
        List<TrainConfig> cfgs = new ArrayList<>();
        try {
            for (int r = 0; r < 2; r++) cfgs.add(config(out + "-node" + r, extra)); // written here: the ranks would race on the files
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return InJvmTransport.run(2, T, g -> {
            try (Trainer t = new Trainer(cfgs.get(g.rank()), InJvmRuns.quiet(), new DistributedContext(g, null, 1))) {
                return (List<Double>) new ArrayList<>(t.run(resume, stopAfter).trainLosses());
            }
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 3})
    void eachNodeResumesFromItsOwnDirectoryBitForBit(int zero) {
        List<Double> reference = perNode("ref" + zero, false, 0, "parallel.zero=" + zero).getFirst();
        perNode("run" + zero, false, 4, "parallel.zero=" + zero);
        for (int node = 0; node < 2; node++)
            assertTrue(Files.isDirectory(dir.resolve("run" + zero + "-node" + node + "/checkpoints/step-00000004")), "node " + node + " wrote its own checkpoint");
        List<List<Double>> resumed = perNode("run" + zero, true, 0, "parallel.zero=" + zero);
        for (List<Double> r : resumed) {
            assertEquals(4, r.size());
            for (int i = 0; i < 4; i++)
                assertEquals(Double.doubleToRawLongBits(reference.get(4 + i)), Double.doubleToRawLongBits(r.get(i)), "ZeRO-" + zero + " step " + (5 + i));
        }
    }

    @Test
    void nodesWithDifferentNewestCheckpointsAreRefusedClearly() throws IOException {
        perNode("mis", false, 4);
        Path node1 = dir.resolve("mis-node1/checkpoints");
        Checkpoint.deleteRecursively(node1.resolve("step-00000004"));
        Files.writeString(node1.resolve("latest"), "step-00000002\n");
        RuntimeException e = assertThrows(RuntimeException.class, () -> perNode("mis", true, 0));
        Throwable c = e;
        while (c.getCause() != null && !(c instanceof IllegalStateException)) c = c.getCause();
        assertTrue(c.getMessage().contains("ranks found different newest checkpoints") && c.getMessage().contains("rank 0 step 4, rank 1 step 2"), c.getMessage());
    }
}
