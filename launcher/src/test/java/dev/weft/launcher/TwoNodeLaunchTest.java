package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** weft launch on two nodes (two network namespaces, or two loopback addresses), each with two ranks and its own disk. */
class TwoNodeLaunchTest {
    @TempDir
    Path dir;

    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void twoNodesOfTwoRanksReproduceFourRanksOnOneNodeAndRefuseStrangers() throws Exception {
        Path one = dir.resolve("one");
        java.nio.file.Files.createDirectories(one);
        Path cfg = LaunchTest.config(one, 6, 0);
        CliTest.Run four = CliTest.run("launch", "--nproc-per-node", "4", cfg.toString(), "--set", "train.micro_batch=1");
        assertEquals(0, four.code(), four.out() + four.err());
        List<Double> ref = LaunchTest.losses(one.resolve("run"));
        assertEquals(6, ref.size());

        try (TwoNodes nodes = TwoNodes.create(dir.resolve("two"))) {
            Path cfg0 = LaunchTest.config(nodes.dir(0), 6, 0), cfg1 = LaunchTest.config(nodes.dir(1), 6, 0);
            TwoNodes.Node n0 = nodes.start(0, cfg0, "--set", "train.micro_batch=1");
            TwoNodes.Node n1 = nodes.start(1, cfg1, "--set", "train.micro_batch=1");
            assertTrue(n0.awaitOutput("rendezvous coordinator listening", Duration.ofSeconds(60)), n0.output());
            // a stranger on node 1, without the secret, at the coordinator while the job gathers: refused, and the job goes on
            TwoNodes.Run stranger = nodes.runJava(1, Stranger.class, Duration.ofSeconds(60), nodes.rdzvEndpoint(), "3", "4");
            assertTrue(stranger.output().contains("REFUSED") && stranger.output().contains("does not hold the job secret"), stranger.output());
            assertEquals(0, n0.await(Duration.ofSeconds(180)), n0.output() + "\n--- node 1:\n" + n1.output());
            assertEquals(0, n1.await(Duration.ofSeconds(30)), n1.output());
            String out0 = n0.output(), out1 = n1.output();
            assertTrue(out0.contains("rendezvous: refused a joiner") && out0.contains("HMAC challenge failed"), out0);
            assertTrue(out1.contains("[rank 3] joined: rank 3 of 4 (local rank 1, node 1, attempt 0)"), out1);
            assertTrue(out0.contains("ranks on node 0 advertise and bind " + nodes.address(0)), out0);
            assertTrue(out1.contains("ranks on node 1 advertise and bind " + nodes.address(1)), out1);
            assertTrue(out0.contains("all nodes finished") && out1.contains("all nodes finished"), out0 + out1);
            LaunchTest.assertSameLosses(ref, n0.losses(), "2 nodes x 2 ranks against 1 node x 4 ranks");
        }
    }

    @Test
    void aHostThatIsNotThisMachinesIsNamed() throws Exception {
        Path cfg = LaunchTest.config(dir, 2, 0);
        CliTest.Run r = CliTest.run("launch", "--nnodes", "2", "--rdzv-endpoint", "127.0.0.1:29999", "--host", "192.0.2.77", cfg.toString());
        assertEquals(2, r.code(), r.out() + r.err());
        assertTrue(r.err().contains("--host 192.0.2.77 is not an address of this machine"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
    }

    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void killNineOfARankOnNodeOneRestartsBothNodesIntoTheSameGeneration() throws Exception {
        try (TwoNodes nodes = TwoNodes.create(dir)) {
            Path cfg0 = LaunchTest.config(nodes.dir(0), 12, 2), cfg1 = LaunchTest.config(nodes.dir(1), 12, 2);
            TwoNodes.Node n0 = nodes.start(0, cfg0, "--max-restarts", "1", "--set", "train.micro_batch=1");
            TwoNodes.Node n1 = nodes.start(1, cfg1, "--max-restarts", "1", "--set", "train.micro_batch=1");
            assertTrue(n0.awaitSteps(4, Duration.ofSeconds(120)), n0.output());
            n1.killRank(3);
            assertTrue(n1.awaitOutput("weft launch: rank 3 failed first: killed by signal 9 (SIGKILL)", Duration.ofSeconds(60)), n1.output());
            assertTrue(n0.awaitOutput("restarting the job into generation 1 (restart 1 of the job): rank 3 on node 1 failed: killed by signal 9",
                    Duration.ofSeconds(60)), n0.output());
            assertTrue(n1.awaitOutput("restarting the job into generation 1", Duration.ofSeconds(30)), n1.output());
            for (int rank = 0; rank < 4; rank++) {
                TwoNodes.Node n = rank < 2 ? n0 : n1;
                assertTrue(n.awaitOutput("[rank " + rank + "] joined: rank " + rank + " of 4 (local rank " + rank % 2 + ", node " + rank / 2
                        + ", attempt 1)", Duration.ofSeconds(90)), n.output());
            }
            // No shared filesystem: each node wrote its own ranks' checkpoints, so both halves resume the same step and finish.
            assertTrue(n0.output().contains("each node writes its own ranks' state to its own"), n0.output());
            assertEquals(0, n0.await(Duration.ofSeconds(150)), n0.output() + "\n--- node 1:\n" + n1.output());
            assertEquals(0, n1.await(Duration.ofSeconds(30)), n1.output());
            java.util.regex.Matcher m0 = java.util.regex.Pattern.compile("\\[rank 0\\] weft: resumed from \\S+ \\(step (\\d+)").matcher(n0.output());
            java.util.regex.Matcher m1 = java.util.regex.Pattern.compile("\\[rank 2\\] weft: resumed from \\S+ \\(step (\\d+)").matcher(n1.output());
            assertTrue(m0.find() && m1.find(), n0.output() + "\n--- node 1:\n" + n1.output());
            assertEquals(m0.group(1), m1.group(1), "both nodes resume the same step, each from its own disk");
            assertTrue(Files.exists(n1.outDir().resolve("checkpoints/latest")), "node 1 keeps checkpoints of its own");
            assertEquals(12, n0.losses().size(), "the restarted job trained to the end");
            assertEquals(1, LaunchTest.count(n0.output(), "restarting the job into generation"), "one restart, job-wide: " + n0.output());
        }
    }

    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void aLostNodeIsWaitedForAndARelaunchedOneJoinsTheCurrentGeneration() throws Exception {
        try (TwoNodes nodes = TwoNodes.create(dir)) {
            // no checkpoints: every generation starts from step 0 on both nodes, so the restarted job can finish
            Path cfg0 = LaunchTest.config(nodes.dir(0), 30, 0), cfg1 = LaunchTest.config(nodes.dir(1), 30, 0);
            TwoNodes.Node n0 = nodes.start(0, cfg0, "--max-restarts", "2", "--set", "train.micro_batch=1");
            TwoNodes.Node n1 = nodes.start(1, cfg1, "--max-restarts", "2", "--set", "train.micro_batch=1");
            assertTrue(n1.awaitOutput("[rank 3] joined: rank 3 of 4", Duration.ofSeconds(90)), n1.output());
            n1.kill(); // the launcher and both its ranks: the node is gone
            assertTrue(n0.awaitOutput("lost node 1's launcher", Duration.ofSeconds(30)), n0.output());
            assertTrue(n0.awaitOutput("restarting the job into generation 1 (restart 1 of the job): node 1's launcher is gone", Duration.ofSeconds(60)),
                    n0.output());
            TwoNodes.Node again = nodes.start(1, cfg1, "--set", "train.micro_batch=1");
            assertTrue(again.awaitOutput("joining the job in generation 1", Duration.ofSeconds(60)), again.output());
            assertEquals(0, n0.await(Duration.ofSeconds(150)), n0.output() + "\n--- node 1:\n" + again.output());
            assertEquals(0, again.await(Duration.ofSeconds(30)), again.output());
            assertTrue(again.output().contains("[rank 3] joined: rank 3 of 4 (local rank 1, node 1, attempt 1)"), again.output());
            assertTrue(n0.output().contains("[rank 0] joined: rank 0 of 4 (local rank 0, node 0, attempt 1)"), n0.output());
            assertEquals(30, n0.losses().size(), "the restarted job trained to the end");
        }
    }
}
