package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A lost node, on two nodes of two ranks each ({@link TwoNodes}: network namespaces joined by a
 * veth pair, nothing shared on disk): every-step snapshots RS(1, 1) over node domains, node 1's
 * launcher and ranks killed and its snapshot store wiped, node 1 started again. The job restarts
 * into the next generation on both nodes; node 1's ranks rebuild their state from the parity on
 * node 0, and the loss curve is bit-identical to the run that lost nothing.
 */
class NodeLossTest {
    @TempDir
    Path dir;

    private static final int STEPS = 9;

    private static String[] args(TwoNodes nodes, int node, String... extra) {
        List<String> a = new ArrayList<>(List.of("--set", "train.micro_batch=1", "--set", "snapshot.every=1", "--set", "snapshot.domain=node",
                "--set", "snapshot.ec=1+1", "--set", "snapshot.store=" + nodes.dir(node).resolve("stores")));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    @Test
    @Timeout(value = 600, unit = TimeUnit.SECONDS)
    void aLostNodeIsRebuiltFromParityAndTheCurveStaysBitIdentical() throws Exception {
        List<Double> reference;
        try (TwoNodes nodes = TwoNodes.create(dir.resolve("ref"))) {
            Path c0 = LaunchTest.config(nodes.dir(0), STEPS, 0), c1 = LaunchTest.config(nodes.dir(1), STEPS, 0);
            TwoNodes.Node a = nodes.start(0, c0, args(nodes, 0)), b = nodes.start(1, c1, args(nodes, 1));
            assertEquals(0, a.await(Duration.ofSeconds(240)), a.output());
            assertEquals(0, b.await(Duration.ofSeconds(60)), b.output());
            reference = a.losses();
            assertEquals(STEPS, reference.size());
            assertTrue(a.output().contains("RS(1, 1) over 2 node domain(s)"), a.output());
        }
        try (TwoNodes nodes = TwoNodes.create(dir.resolve("kill"))) {
            Path c0 = LaunchTest.config(nodes.dir(0), STEPS, 0), c1 = LaunchTest.config(nodes.dir(1), STEPS, 0);
            TwoNodes.Node a = nodes.start(0, c0, args(nodes, 0, "--max-restarts", "1")), b = nodes.start(1, c1, args(nodes, 1, "--max-restarts", "1"));
            assertTrue(a.awaitSteps(5, Duration.ofSeconds(240)), a.output());
            b.kill(); // the node is lost: its launcher, its ranks, and its memory
            TwoNodes.wipe(nodes.dir(1).resolve("stores"));
            assertFalse(Files.exists(nodes.dir(1).resolve("stores")));
            TwoNodes.Node b2 = nodes.start(1, c1, args(nodes, 1, "--max-restarts", "1"));
            assertEquals(0, a.await(Duration.ofSeconds(300)), a.output() + "\n--- node 1:\n" + b2.output());
            assertEquals(0, b2.await(Duration.ofSeconds(60)), b2.output());
            String out0 = a.output(), out1 = b2.output();
            assertTrue(out0.contains("snapshot: restored step") && out0.contains("from memory"), out0);
            assertTrue(out1.contains("1 rebuilt from parity"), "node 1's ranks rebuild from node 0's parity: " + out1);
            assertFalse(Files.exists(a.outDir().resolve("checkpoints")), "no disk checkpoint: the state came from memory");
            List<Double> got = a.losses();
            assertEquals(reference.size(), got.size());
            for (int i = 0; i < reference.size(); i++)
                assertEquals(Double.doubleToRawLongBits(reference.get(i)), Double.doubleToRawLongBits(got.get(i)),
                        "step " + (i + 1) + ": " + got.get(i) + " vs " + reference.get(i) + " (bit for bit)");
        }
    }
}
