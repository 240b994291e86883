package dev.weft.parallel;

import dev.weft.parallel.rendezvous.JobSecret;
import dev.weft.parallel.rendezvous.PeerKey;
import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.Publication;
import org.agrona.concurrent.UnsafeBuffer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.ConnectException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Strangers on the data plane: connections and Aeron sessions that do not open with a valid hello
 * under the generation's key are refused, and a collective between the real ranks still completes
 * with the right bits. Also the UDP MTU: frames smaller than a tensor, so every payload is split.
 */
class DataPlaneAuthTest {
    private static final Duration T = Duration.ofSeconds(20);
    private static final int[] SIZES = {0, 1, 1001, 16411, 50_003};
    static AeronDriver driver;

    @BeforeAll
    static void startDriver() {
        driver = AeronDriver.launch();
    }

    @AfterAll
    static void stopDriver() {
        if (driver != null) driver.close();
    }

    /** Connects each transport as its rank on its own thread and runs {@code body} there; results by rank. */
    private static <T> List<T> run(List<? extends Transport> ts, Function<ProcessGroup, T> body) throws Exception {
        List<String> endpoints = ts.stream().map(Transport::localEndpoint).toList();
        ExecutorService pool = Executors.newFixedThreadPool(ts.size());
        try {
            List<Future<T>> fs = new ArrayList<>();
            for (int r = 0; r < ts.size(); r++) {
                int rank = r;
                fs.add(pool.submit(() -> {
                    ProcessGroup g = ts.get(rank).connect(rank, endpoints, T);
                    T out = body.apply(g);
                    g.barrier();
                    return out;
                }));
            }
            List<T> out = new ArrayList<>();
            for (Future<T> f : fs) out.add(f.get(60, TimeUnit.SECONDS));
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    private static long reference(int n) {
        return InJvmTransport.run(n, T, g -> CollectiveChecks.checkAll(g, SIZES)).getFirst();
    }

    private static int port(String tcpEndpoint) {
        return Integer.parseInt(tcpEndpoint.substring(tcpEndpoint.lastIndexOf(':') + 1));
    }

    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void tcpRefusesAStrangerAndAReplayFromAnotherGenerationAndTheCollectivesStillMatch() throws Exception {
        JobSecret secret = JobSecret.random();
        PeerKey key = secret.peerKey(3);
        try (TcpTransport t0 = new TcpTransport("127.0.0.1", key); TcpTransport t1 = new TcpTransport("127.0.0.1", key);
             Socket raw = new Socket(); Socket replay = new Socket()) {
            int port = port(t0.localEndpoint());
            // a stranger with no key claims rank 1 and answers the challenge with noise
            raw.connect(new InetSocketAddress("127.0.0.1", port));
            DataOutputStream rawOut = new DataOutputStream(raw.getOutputStream());
            rawOut.writeInt(1);
            rawOut.write(new byte[32]);
            rawOut.flush();
            // one who holds the job secret but speaks for generation 2: its proof is for the wrong key
            replay.connect(new InetSocketAddress("127.0.0.1", port));
            DataOutputStream replayOut = new DataOutputStream(replay.getOutputStream());
            replayOut.writeInt(1);
            replayOut.write(new byte[32]);
            replayOut.flush();
            Thread strangers = Thread.ofVirtual().start(() -> {
                try {
                    DataInputStream rawIn = new DataInputStream(raw.getInputStream()), replayIn = new DataInputStream(replay.getInputStream());
                    rawIn.readFully(new byte[64]);
                    rawOut.write(new byte[32]);
                    rawOut.flush();
                    byte[] nonce = new byte[32];
                    replayIn.readFully(nonce);
                    replayIn.readFully(new byte[32]);
                    replayOut.write(secret.peerKey(2).proof("tcp-dial", 1, 0, nonce));
                    replayOut.flush();
                    assertEquals(-1, rawIn.read(), "the stranger's connection is closed");
                    assertEquals(-1, replayIn.read(), "the replayed hello's connection is closed");
                } catch (IOException e) {
                    // closed by the transport: what we expect
                }
            });
            List<Long> hashes = run(List.of(t0, t1), g -> CollectiveChecks.checkAll(g, SIZES));
            assertEquals(List.of(reference(2), reference(2)), hashes);
            strangers.join(10_000);
            assertEquals(2, t0.refusedCount());
            assertEquals(0, t1.refusedCount());
            // once every peer is in, the port is closed to latecomers
            try (Socket late = new Socket()) {
                assertThrows(ConnectException.class, () -> late.connect(new InetSocketAddress("127.0.0.1", port), 2000));
            }
        }
    }

    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void aeronDropsSessionsWithoutAValidHelloAndTheCollectivesStillMatch() throws Exception {
        JobSecret secret = JobSecret.random();
        PeerKey key = secret.peerKey(0);
        try (AeronTransport t0 = AeronTransport.udpOnly(driver.directory(), "127.0.0.1", key);
             AeronTransport t1 = AeronTransport.udpOnly(driver.directory(), "127.0.0.1", key);
             Aeron stranger = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.directory()));
             DatagramSocket noise = new DatagramSocket()) {
            String[] ep = t0.localEndpoint().split("\\|");
            int stream = Integer.parseInt(ep[3]), port = Integer.parseInt(ep[4]);
            String channel = new ChannelUriStringBuilder().media("udp").endpoint("127.0.0.1:" + port).build();
            // session 1: frames claiming to be rank 1's all-reduce contributions, with no hello
            // session 2: a hello under another generation's key, then the same frames
            try (Publication bare = stranger.addPublication(channel, stream); Publication replayed = stranger.addExclusivePublication(channel, stream)) {
                UnsafeBuffer b = new UnsafeBuffer(new byte[AeronTransport.HEADER + 32]);
                AeronTransport.FrameHeader.write(b, 0, 1, new Msg(0, AeronTransport.HELLO_KIND, 0), 32);
                b.putBytes(AeronTransport.HEADER, secret.peerKey(1).proof("aeron-hello", 1, 0,
                        java.nio.ByteBuffer.allocate(8).putInt(replayed.sessionId()).putInt(stream).array()));
                offer(replayed, b, b.capacity());
                UnsafeBuffer forged = new UnsafeBuffer(new byte[AeronTransport.HEADER + 4 * 1001]);
                forged.setMemory(AeronTransport.HEADER, 4 * 1001, (byte) 0x7f);
                for (Publication p : List.of(bare, replayed))
                    for (int seq = 0; seq < 8; seq++)
                        for (int step = 0; step < 3; step++) {
                            for (int bytes : new int[] {0, 4, 4 * 1001}) {
                                AeronTransport.FrameHeader.write(forged, 0, 1, new Msg(0, Msg.COLLECTIVE, seq).at(step, 0), bytes);
                                offer(p, forged, AeronTransport.HEADER + bytes);
                            }
                        }
                // and a datagram that is not Aeron at all
                noise.send(new DatagramPacket(new byte[100], 100, new InetSocketAddress("127.0.0.1", port)));

                List<Long> hashes = run(List.of(t0, t1), g -> {
                    long h = CollectiveChecks.checkAll(g, SIZES);
                    // the strangers' frames have reached rank 0's subscription by now, or soon: it must have seen and dropped both sessions
                    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
                    while (t0.refusedCount() < 2 && System.nanoTime() < until) g.barrier();
                    return h;
                });
                assertEquals(List.of(reference(2), reference(2)), hashes);
                assertEquals(2, t0.refusedCount());
                assertEquals(0, t1.refusedCount());
            }
        }
    }

    private static void offer(Publication p, UnsafeBuffer b, int length) throws InterruptedException {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (p.offer(b, 0, length) < 0) {
            assertTrue(System.nanoTime() < until, "the stranger's publication never connected");
            Thread.sleep(1);
        }
    }

    @Test
    @Timeout(value = 90, unit = TimeUnit.SECONDS)
    void udpFramesFitTheConfiguredMtuAndSplitEveryTensor() throws Exception {
        PeerKey key = JobSecret.random().peerKey(0);
        int[] sizes = {1, 1001, 16411};
        try {
            System.setProperty(AeronTransport.MTU_PROPERTY, "1408");
            try (AeronTransport t0 = AeronTransport.udpOnly(driver.directory(), "127.0.0.1", key)) {
                System.setProperty(AeronTransport.MTU_PROPERTY, "2048"); // a pair uses the smaller of its two
                try (AeronTransport t1 = AeronTransport.udpOnly(driver.directory(), "127.0.0.1", key)) {
                    System.clearProperty(AeronTransport.MTU_PROPERTY);
                    assertEquals(List.of(1408, 2048), List.of(t0.udpMtu(), t1.udpMtu()));
                    List<long[]> out = run(List.of(t0, t1),
                            g -> new long[] {CollectiveChecks.checkAll(g, sizes), ((FabricGroup) g).fabric.maxFrameBytes(1 - g.rank())});
                    // 1408 less Aeron's and weft's 32-byte headers: every size above 336 floats takes several frames
                    assertEquals(1344, out.get(0)[1]);
                    assertEquals(1344, out.get(1)[1]);
                    long expect = InJvmTransport.run(2, T, 1344, false, g -> CollectiveChecks.checkAll(g, sizes)).getFirst();
                    assertEquals(expect, out.get(0)[0]);
                    assertEquals(expect, out.get(1)[0]);
                }
            }
        } finally {
            System.clearProperty(AeronTransport.MTU_PROPERTY);
        }
    }

    @Test
    void theUdpMtuComesFromTheInterfaceOrTheSetting() throws Exception {
        int lo = NetworkInterface.getByName("lo") == null ? -1 : NetworkInterface.getByName("lo").getMTU();
        if (lo > 0) assertEquals(Math.min(65504, (lo - 28) & ~31), AeronTransport.udpMtu("127.0.0.1"));
        try {
            System.setProperty(AeronTransport.MTU_PROPERTY, "1000");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> AeronTransport.udpMtu("127.0.0.1"));
            assertTrue(e.getMessage().contains("-Dweft.aeron.mtu = 1000 must be a multiple of 32"), e.getMessage());
            System.setProperty(AeronTransport.MTU_PROPERTY, "9000");
            assertEquals(9000 & ~31, 8992);
            assertThrows(IllegalArgumentException.class, () -> AeronTransport.udpMtu("127.0.0.1"));
            System.setProperty(AeronTransport.MTU_PROPERTY, "8992");
            assertEquals(8992, AeronTransport.udpMtu("127.0.0.1"));
        } finally {
            System.clearProperty(AeronTransport.MTU_PROPERTY);
        }
    }
}
