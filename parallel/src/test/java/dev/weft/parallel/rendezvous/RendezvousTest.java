package dev.weft.parallel.rendezvous;

import org.junit.jupiter.api.Test;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

class RendezvousTest {
    private static final Duration T = Duration.ofSeconds(10);

    private static String at(RendezvousCoordinator c) {
        return "127.0.0.1:" + c.address().getPort();
    }

    @Test
    void everyRankReceivesAllEndpointsInRankOrder() throws Exception {
        JobSecret secret = JobSecret.random();
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        try (var c = RendezvousCoordinator.start(new InetSocketAddress("127.0.0.1", 0), secret, 4, T, log::add);
             ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<List<String>>> fs = new ArrayList<>();
            for (int r : new int[] {3, 1, 0, 2}) fs.add(pool.submit(() -> Rendezvous.join(at(c), secret, 0, r, 4, "ep-" + r, T)));
            for (var f : fs) assertEquals(List.of("ep-0", "ep-1", "ep-2", "ep-3"), f.get(20, TimeUnit.SECONDS));
            assertEquals(0, c.refusedCount());
            assertTrue(log.stream().anyMatch(l -> l.contains("all 4 ranks joined")), log.toString());
        }
    }

    @Test
    void joinerWithoutTheSecretIsRefusedAndTheJobGoesOn() throws Exception {
        JobSecret secret = JobSecret.random();
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        try (var c = RendezvousCoordinator.start(new InetSocketAddress("127.0.0.1", 0), secret, 2, T, log::add);
             ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            Future<List<String>> r0 = pool.submit(() -> Rendezvous.join(at(c), secret, 0, 0, 2, "a", T));
            RendezvousException e = assertThrows(RendezvousException.class,
                    () -> Rendezvous.join(at(c), JobSecret.random(), 0, 1, 2, "intruder", T));
            assertTrue(e.getMessage().contains("does not hold the job secret"), e.getMessage());
            // the stranger cannot check the coordinator's MAC'd refusal either, and says so
            assertTrue(e.getMessage().contains("refusal is not authenticated") && e.getMessage().contains("HMAC challenge failed"), e.getMessage());
            assertEquals(1, c.refusedCount());
            assertTrue(log.stream().anyMatch(l -> l.contains("refused a joiner") && l.contains("claiming rank 1")
                    && l.contains("HMAC challenge failed") && l.contains("the job goes on")), log.toString());
            // the real rank 1 still gets in, and nobody sees the intruder's endpoint
            List<String> r1 = Rendezvous.join(at(c), secret, 0, 1, 2, "b", T);
            assertEquals(List.of("a", "b"), r1);
            assertEquals(List.of("a", "b"), r0.get(20, TimeUnit.SECONDS));
        }
    }

    @Test
    void timeoutNamesTheRanksThatNeverJoined() {
        JobSecret secret = JobSecret.random();
        try (var c = RendezvousCoordinator.start(new InetSocketAddress("127.0.0.1", 0), secret, 3, Duration.ofMillis(500), l -> {})) {
            RendezvousException e = assertThrows(RendezvousException.class, () -> Rendezvous.join(at(c), secret, 0, 1, 3, "x", T));
            assertTrue(e.getMessage().contains("rank(s) [0, 2] of 3 never joined"), e.getMessage());
        }
    }

    @Test
    void duplicateRankIsRefusedAndGenerationsAreSeparate() throws Exception {
        JobSecret secret = JobSecret.random();
        try (var c = RendezvousCoordinator.start(new InetSocketAddress("127.0.0.1", 0), secret, 2, T, l -> {});
             ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            Future<List<String>> first = pool.submit(() -> Rendezvous.join(at(c), secret, 0, 0, 2, "a", T));
            // once rank 0 of generation 0 is registered, a second rank 0 is refused
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (c.joinedCount(0) < 1) {
                assertTrue(System.nanoTime() < deadline, "rank 0 never registered");
                Thread.sleep(10);
            }
            RendezvousException dup = assertThrows(RendezvousException.class, () -> Rendezvous.join(at(c), secret, 0, 0, 2, "a2", T));
            assertTrue(dup.getMessage().contains("rank 0 already joined generation 0"), dup.getMessage());
            // generation 1 (a restart) rendezvouses independently
            Future<List<String>> g1 = pool.submit(() -> Rendezvous.join(at(c), secret, 1, 1, 2, "d", T));
            assertEquals(List.of("c", "d"), Rendezvous.join(at(c), secret, 1, 0, 2, "c", T));
            assertEquals(List.of("c", "d"), g1.get(20, TimeUnit.SECONDS));
            assertEquals(List.of("a", "b"), Rendezvous.join(at(c), secret, 0, 1, 2, "b", T));
            assertEquals(List.of("a", "b"), first.get(20, TimeUnit.SECONDS));
        }
    }

    /**
     * A stranger listening where the coordinator should be: it speaks the protocol but holds
     * another secret, and answers one join with {@code status} (for OK, the joiner's real peer
     * list, so only the MAC can give it away).
     */
    private static Thread fakeCoordinator(ServerSocket server, int status) {
        JobSecret wrong = JobSecret.random();
        return Thread.ofVirtual().start(() -> {
            try (Socket s = server.accept()) {
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                DataInputStream in = new DataInputStream(s.getInputStream());
                out.writeUTF(Wire.MAGIC);
                out.writeInt(Wire.VERSION);
                out.write(JobSecret.nonce());
                out.flush();
                int generation = in.readInt(), rank = in.readInt(), world = in.readInt();
                String endpoint = Wire.readEndpoint(in);
                byte[] joinerNonce = Wire.readBytes(in, JobSecret.NONCE_BYTES);
                Wire.readBytes(in, 32);
                out.writeInt(status);
                if (status == Wire.OK) {
                    List<String> all = new ArrayList<>();
                    for (int r = 0; r < world; r++) all.add(r == rank ? endpoint : "evil-" + r);
                    out.writeInt(world);
                    for (String e : all) {
                        byte[] b = e.getBytes(StandardCharsets.UTF_8);
                        out.writeInt(b.length);
                        out.write(b);
                    }
                    out.write(wrong.mac(Wire.replyLabel(Wire.OK), joinerNonce, Wire.peers(generation, all)));
                } else {
                    String msg = "refused by the rendezvous coordinator: go away";
                    out.writeUTF(msg);
                    out.write(wrong.mac(Wire.replyLabel(status), joinerNonce, msg.getBytes(StandardCharsets.UTF_8)));
                }
                out.flush();
                in.read(); // hold the connection until the joiner hangs up
            } catch (IOException ignored) {
                // the joiner hung up
            }
        });
    }

    @Test
    void aFakeCoordinatorIsRefusedByTheJoinerWhetherItAdmitsOrRefuses() throws Exception {
        JobSecret secret = JobSecret.random();
        for (int status : new int[] {Wire.OK, Wire.REFUSED, Wire.FAILED}) {
            try (ServerSocket server = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
                Thread fake = fakeCoordinator(server, status);
                RendezvousException e = assertThrows(RendezvousException.class,
                        () -> Rendezvous.join("127.0.0.1:" + server.getLocalPort(), secret, 0, 1, 2, "mine", T));
                assertTrue(e.getMessage().contains("does not hold the job secret"), status + ": " + e.getMessage());
                if (status != Wire.OK)
                    assertTrue(e.getMessage().contains("is not authenticated") && e.getMessage().contains("go away"), e.getMessage());
                fake.join(5000);
            }
        }
        // and the real job goes on: a genuine refusal (a taken rank) reads as one
        try (var c = RendezvousCoordinator.start(new InetSocketAddress("127.0.0.1", 0), secret, 2, T, l -> {});
             ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            Future<List<String>> r0 = pool.submit(() -> Rendezvous.join(at(c), secret, 0, 0, 2, "a", T));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (c.joinedCount(0) < 1) {
                assertTrue(System.nanoTime() < deadline, "rank 0 never registered");
                Thread.sleep(10);
            }
            RendezvousException dup = assertThrows(RendezvousException.class, () -> Rendezvous.join(at(c), secret, 0, 0, 2, "a2", T));
            assertFalse(dup.getMessage().contains("does not hold the job secret"), dup.getMessage());
            assertEquals(List.of("a", "b"), Rendezvous.join(at(c), secret, 0, 1, 2, "b", T));
            assertEquals(List.of("a", "b"), r0.get(20, TimeUnit.SECONDS));
        }
    }

    @Test
    void nodeLinksRestartEveryNodeIntoOneGenerationAndCountRestartsJobWide() throws Exception {
        JobSecret secret = JobSecret.random();
        List<String> log = Collections.synchronizedList(new ArrayList<>());
        try (var c = RendezvousCoordinator.start(new InetSocketAddress("127.0.0.1", 0), secret, 4, 2, 2, T, log::add)) {
            java.util.concurrent.BlockingQueue<NodeLink.Command> to0 = new java.util.concurrent.LinkedBlockingQueue<>(),
                    to1 = new java.util.concurrent.LinkedBlockingQueue<>();
            NodeLink n0 = NodeLink.connect(at(c), secret, 0, 2, T, to0::add);
            NodeLink n1 = NodeLink.connect(at(c), secret, 1, 2, T, to1::add);
            assertEquals(0, n0.generation());
            // strangers and impostors get no control connection
            RendezvousException stranger = assertThrows(RendezvousException.class, () -> NodeLink.connect(at(c), JobSecret.random(), 1, 2, T, x -> {}));
            assertTrue(stranger.getMessage().contains("does not hold the job secret"), stranger.getMessage());
            RendezvousException twice = assertThrows(RendezvousException.class, () -> NodeLink.connect(at(c), secret, 1, 2, T, x -> {}));
            assertTrue(twice.getMessage().contains("node 1's launcher is already connected"), twice.getMessage());

            n1.reportFailure(0, 3, "killed by signal 9");
            for (var q : List.of(to0, to1)) {
                NodeLink.Command cmd = q.poll(10, TimeUnit.SECONDS);
                assertEquals(new NodeLink.Command(NodeLink.Command.Kind.RESTART, 1, 1, "rank 3 on node 1 failed: killed by signal 9"), cmd);
            }
            n0.reportFailure(0, 1, "the cascade"); // a failure of the generation already left behind: ignored
            assertNull(to1.poll(300, TimeUnit.MILLISECONDS));
            // node 1's launcher dies: node 0 restarts into generation 2; the relaunched node 1 joins it there
            n1.close();
            NodeLink.Command lost = to0.poll(10, TimeUnit.SECONDS);
            assertNotNull(lost);
            assertEquals(NodeLink.Command.Kind.RESTART, lost.kind());
            assertEquals(2, lost.generation());
            assertTrue(lost.reason().contains("node 1's launcher is gone"), lost.reason());
            NodeLink again = NodeLink.connect(at(c), secret, 1, 2, T, to1::add);
            assertEquals(2, again.generation());
            assertEquals(2, again.restarts());
            // restarts spent: everyone gives up with the cause
            again.reportFailure(2, 2, "exit code 1");
            for (var q : List.of(to0, to1)) {
                NodeLink.Command cmd = q.poll(10, TimeUnit.SECONDS);
                assertNotNull(cmd);
                assertEquals(NodeLink.Command.Kind.GIVE_UP, cmd.kind(), cmd.toString());
                assertEquals("rank 2 on node 1 failed: exit code 1", cmd.reason());
            }
            assertTrue(log.stream().anyMatch(l -> l.contains("restarts spent (2 of 2)")), log.toString());
            n0.close();
            again.close();
        }
    }

    @Test
    void nodeLinksFinishWhenEveryNodeIsDone() throws Exception {
        JobSecret secret = JobSecret.random();
        try (var c = RendezvousCoordinator.start(new InetSocketAddress("127.0.0.1", 0), secret, 2, 2, 0, T, l -> {})) {
            java.util.concurrent.BlockingQueue<NodeLink.Command> to0 = new java.util.concurrent.LinkedBlockingQueue<>(),
                    to1 = new java.util.concurrent.LinkedBlockingQueue<>();
            try (NodeLink n0 = NodeLink.connect(at(c), secret, 0, 2, T, to0::add); NodeLink n1 = NodeLink.connect(at(c), secret, 1, 2, T, to1::add)) {
                n0.reportDone(0);
                assertNull(to0.poll(300, TimeUnit.MILLISECONDS), "not finished while node 1 still trains");
                n1.reportDone(0);
                assertEquals(NodeLink.Command.Kind.FINISHED, to0.poll(10, TimeUnit.SECONDS).kind());
                assertEquals(NodeLink.Command.Kind.FINISHED, to1.poll(10, TimeUnit.SECONDS).kind());
            }
        }
    }

    @Test
    void unreachableCoordinatorFailsWithinTheTimeout() {
        long t0 = System.nanoTime();
        RendezvousException e = assertThrows(RendezvousException.class,
                () -> Rendezvous.join("127.0.0.1:1", JobSecret.random(), 0, 0, 1, "x", Duration.ofMillis(600)));
        assertTrue(e.getMessage().contains("could not reach the rendezvous coordinator at 127.0.0.1:1"), e.getMessage());
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5));
    }

    @Test
    void badEndpointSyntaxNamesTheFlag() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Rendezvous.parse("localhost"));
        assertTrue(e.getMessage().contains("--rdzv-endpoint must be host:port"), e.getMessage());
    }
}
