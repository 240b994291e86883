package dev.weft.parallel;

import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.logbuffer.BufferClaim;
import io.aeron.logbuffer.FragmentHandler;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.SleepingMillisIdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;

import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Ranks over Aeron: IPC between ranks that share a media driver (one per node), UDP otherwise.
 *
 * <p>Endpoint format: {@code aeron|HOST|AERON_DIR|STREAM|UDP_PORT}. Each rank subscribes to its own
 * IPC stream and to a UDP port; a peer with the same host and driver directory is reached over
 * IPC, any other over UDP at HOST:UDP_PORT.
 *
 * <p>Frames are single Aeron messages no larger than one MTU (64 KiB), claimed in the log buffer
 * and filled straight from the tensor, so nothing is fragmented or reassembled; larger payloads are
 * chunked by the algorithms. Back-pressure is retried until the operation's deadline. There is no
 * receiver thread: a rank that waits (for a frame, or on back-pressure) polls its subscriptions
 * and files frames for whoever they belong to, and waits with a backoff that ends in parking, so
 * an idle rank does not spin on a core the others compute on.
 *
 * <p>Nothing is allocated per frame. A send claims log-buffer space with its publication's own
 * {@link BufferClaim} and copies the tensor bytes in; a received fragment is read in place (its
 * header through {@link FrameHeader}) and its payload copied into a pooled {@link Frame}, which the
 * receiver gives back once consumed. Senders are the threads that run collectives (a caller inline,
 * each group's lanes), so several may send to one peer at once: a publication's claim is used under
 * its lock. Fragments are read only by the thread holding the poll lock.
 */
public final class AeronTransport implements Transport {
    /** Environment variable naming the node's media driver directory (set by the launcher). */
    public static final String DRIVER_DIR_ENV = "WEFT_AERON_DIR";
    /** Environment variable naming the address peers on other hosts reach this one at. */
    public static final String HOST_ENV = "WEFT_HOST";
    static final int MTU = 65504;
    static final int HEADER = 32;
    private static final AtomicInteger STREAMS = new AtomicInteger();

    private final AeronDriver ownDriver;
    private final String aeronDir;
    private final String host;
    private final boolean forceUdp;
    private final Aeron aeron;
    private final int stream;
    private final Subscription ipc;
    private final Subscription udp;
    private final int udpPort;
    private final Inbox inbox = new Inbox();
    private final FramePool pool = new FramePool();
    private final ReentrantLock pollLock = new ReentrantLock();
    private final FragmentHandler handler = this::onFragment;
    /** A view over the pooled frame a fragment is copied into; used under the poll lock only. */
    private final UnsafeBuffer landing = new UnsafeBuffer();
    private final List<Publication> publications = new ArrayList<>();
    private volatile boolean closed;

    private AeronTransport(AeronDriver ownDriver, String aeronDir, String host, boolean forceUdp) {
        this.ownDriver = ownDriver;
        this.aeronDir = aeronDir;
        this.host = host;
        this.forceUdp = forceUdp;
        try {
            this.aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(aeronDir)
                    .driverTimeoutMs(AeronDriver.LIVENESS.toMillis())
                    .idleStrategy(new SleepingMillisIdleStrategy(1)));
        } catch (RuntimeException e) {
            if (ownDriver != null) ownDriver.close();
            throw new IllegalStateException("cannot reach the Aeron media driver in " + aeronDir
                    + " (is it running? the launcher starts one per node and passes it in " + DRIVER_DIR_ENV + "): " + e.getMessage(), e);
        }
        // Unique among the ranks sharing this driver: the pid and a per-process counter.
        this.stream = 0x1000 + (int) ((ProcessHandle.current().pid() * 64 + STREAMS.incrementAndGet()) & 0x3FFFFFFF);
        this.ipc = aeron.addSubscription("aeron:ipc", stream);
        this.udp = aeron.addSubscription("aeron:udp?endpoint=0.0.0.0:0", stream);
        this.udpPort = boundPort(udp);
    }

    /**
     * The transport of a launched rank: it joins the node's driver named by {@code WEFT_AERON_DIR}
     * when set, and otherwise embeds a driver of its own. The host peers reach it at is
     * {@code WEFT_HOST}, else this machine's address.
     */
    public static AeronTransport fromEnvironment() {
        String dir = System.getenv(DRIVER_DIR_ENV);
        String host = System.getenv(HOST_ENV);
        if (host == null || host.isBlank()) host = localHost();
        return dir == null || dir.isBlank() ? embedded(host) : withDriver(dir, host);
    }

    /** A transport on the running driver in {@code aeronDir}. */
    public static AeronTransport withDriver(String aeronDir, String host) {
        return new AeronTransport(null, aeronDir, host, false);
    }

    /** A transport with a driver of its own (for a rank started alone); closing it stops the driver. */
    public static AeronTransport embedded(String host) {
        AeronDriver d = AeronDriver.launch();
        return new AeronTransport(d, d.directory(), host, false);
    }

    /** Like {@link #withDriver} but reaching every peer over UDP, even on this host (tests, measurements). */
    static AeronTransport udpOnly(String aeronDir, String host) {
        return new AeronTransport(null, aeronDir, host, true);
    }

    private static String localHost() {
        try {
            return InetAddress.getLocalHost().getHostAddress();
        } catch (UnknownHostException e) {
            return "127.0.0.1";
        }
    }

    private static int boundPort(Subscription s) {
        long until = System.nanoTime() + 10_000_000_000L;
        while (System.nanoTime() < until) {
            List<String> addrs = s.localSocketAddresses();
            if (!addrs.isEmpty()) {
                String a = addrs.getFirst();
                return Integer.parseInt(a.substring(a.lastIndexOf(':') + 1));
            }
            Thread.onSpinWait();
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        throw new IllegalStateException("the Aeron UDP subscription did not bind a port within 10 s");
    }

    @Override
    public String localEndpoint() {
        return String.join("|", "aeron", host, aeronDir, Integer.toString(stream), Integer.toString(udpPort));
    }

    private record Endpoint(String host, String dir, int stream, int udpPort) {
        static Endpoint parse(int rank, String s) {
            String[] f = s.split("\\|", -1);
            if (f.length != 5 || !f[0].equals("aeron"))
                throw new IllegalArgumentException("endpoint of rank " + rank + " is '" + s + "'; expected aeron|HOST|AERON_DIR|STREAM|UDP_PORT");
            try {
                return new Endpoint(f[1], f[2], Integer.parseInt(f[3]), Integer.parseInt(f[4]));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("endpoint of rank " + rank + " is '" + s + "': stream and port must be numbers");
            }
        }
    }

    @Override
    public ProcessGroup connect(int rank, List<String> endpoints, Duration timeout) {
        if (endpoints == null || endpoints.isEmpty()) throw new IllegalArgumentException("endpoints must list every rank");
        if (rank < 0 || rank >= endpoints.size())
            throw new IllegalArgumentException("rank " + rank + " is outside the " + endpoints.size() + " endpoints");
        if (!endpoints.get(rank).equals(localEndpoint()))
            throw new IllegalArgumentException("endpoint of rank " + rank + " is " + endpoints.get(rank) + ", not this transport's " + localEndpoint());
        int n = endpoints.size();
        Publication[] pubs = new Publication[n];
        boolean[] local = new boolean[n];
        int[] streams = new int[n];
        for (int i = 0; i < n; i++) {
            Endpoint e = Endpoint.parse(i, endpoints.get(i));
            streams[i] = e.stream;
            if (i == rank) {
                local[i] = !forceUdp;
                continue;
            }
            local[i] = !forceUdp && e.host.equals(host) && e.dir.equals(aeronDir);
            String channel = local[i]
                    ? new ChannelUriStringBuilder().media("ipc").mtu(MTU).termLength(AeronDriver.TERM_LENGTH).build()
                    : new ChannelUriStringBuilder().media("udp").endpoint(e.host + ":" + e.udpPort).mtu(MTU)
                        .termLength(AeronDriver.TERM_LENGTH).build();
            pubs[i] = aeron.addPublication(channel, e.stream);
            publications.add(pubs[i]);
        }
        // Wait until every peer's subscription is there, so the first frames are not refused.
        long deadline = System.nanoTime() + timeout.toNanos();
        IdleStrategy idle = new SleepingMillisIdleStrategy(1);
        while (true) {
            List<Integer> missing = new ArrayList<>();
            for (int i = 0; i < n; i++) if (pubs[i] != null && !pubs[i].isConnected()) missing.add(i);
            if (missing.isEmpty()) break;
            if (System.nanoTime() - deadline > 0)
                throw new CollectiveTimeoutException("connect", "world", 0, missing, timeout);
            idle.idle();
        }
        int[] world = new int[n];
        for (int i = 0; i < n; i++) world[i] = i;
        return new FabricGroup(new AeronFabric(rank, pubs, local, streams), "world", 0, world, rank, timeout, false);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        aeron.close();
        if (ownDriver != null) ownDriver.close();
    }

    // ---- receiving ----------------------------------------------------------------------------

    private void onFragment(DirectBuffer buf, int offset, int length, io.aeron.logbuffer.Header header) {
        int len = length - HEADER;
        Frame f = pool.take(len).addressed(FrameHeader.src(buf, offset), FrameHeader.group(buf, offset), FrameHeader.kind(buf, offset),
                FrameHeader.seq(buf, offset), FrameHeader.step(buf, offset), FrameHeader.chunk(buf, offset));
        if (len > 0) {
            landing.wrap(f.data.address(), len);
            buf.getBytes(offset + HEADER, landing, 0, len);
        }
        inbox.put(f);
    }

    /**
     * The frame header, read and written in place in the log buffer (a flyweight: no object per
     * frame). Little-endian: sender rank, group, kind, step, seq (8 bytes), chunk, payload length.
     */
    static final class FrameHeader {
        private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

        private FrameHeader() {}

        static void write(MutableDirectBuffer b, int o, int src, Msg msg, int length) {
            b.putInt(o, src, LE);
            b.putInt(o + 4, msg.group, LE);
            b.putInt(o + 8, msg.kind, LE);
            b.putInt(o + 12, msg.step, LE);
            b.putLong(o + 16, msg.seq, LE);
            b.putInt(o + 24, msg.chunk, LE);
            b.putInt(o + 28, length, LE);
        }

        static int src(DirectBuffer b, int o) { return b.getInt(o, LE); }
        static int group(DirectBuffer b, int o) { return b.getInt(o + 4, LE); }
        static int kind(DirectBuffer b, int o) { return b.getInt(o + 8, LE); }
        static int step(DirectBuffer b, int o) { return b.getInt(o + 12, LE); }
        static long seq(DirectBuffer b, int o) { return b.getLong(o + 16, LE); }
        static int chunk(DirectBuffer b, int o) { return b.getInt(o + 24, LE); }
    }

    /** Files whatever has arrived; returns the number of frames. Only one thread polls at a time. */
    private int progress() {
        if (!pollLock.tryLock()) return -1;
        try {
            return ipc.poll(handler, 64) + udp.poll(handler, 64);
        } finally {
            pollLock.unlock();
        }
    }

    // Spin briefly (a frame is usually microseconds away inside a collective), then yield, then
    // park with growing pauses up to 200 us, so a long wait costs almost no CPU. A park costs at
    // least ~50 us on Linux, so a synchronous caller, whose thread has nothing else to do, yields
    // for a few hundred microseconds first (a 4 KiB all-reduce: 22-40 us instead of 24-122).
    // On the collective lane a long yield phase would cost the rank's own compute threads
    // (under CFS a yielding thread keeps its share of the core): DDP steps slowed by half.
    // Each thread makes its two strategies once, so a wait allocates nothing.
    private static final ThreadLocal<IdleStrategy[]> WAITS = ThreadLocal.withInitial(() -> new IdleStrategy[]{
            new BackoffIdleStrategy(64, 400, 1_000, 200_000), new BackoffIdleStrategy(64, 16, 1_000, 200_000)});

    private static IdleStrategy waitStrategy() {
        IdleStrategy s = WAITS.get()[FabricGroup.callerWaits() ? 0 : 1];
        s.reset();
        return s;
    }

    /** One peer's publication with the claim its senders reuse, under its lock. */
    private static final class Publisher {
        final Publication publication;
        final BufferClaim bufferClaim = new BufferClaim();
        /** A view over the tensor bytes being sent (native tensors); used under the lock. */
        final UnsafeBuffer source = new UnsafeBuffer();

        Publisher(Publication publication) {
            this.publication = publication;
        }
    }

    private final class AeronFabric implements Fabric, SharedMemoryCapable {
        private final int rank;
        private final Publication[] pubs;
        private final Publisher[] publishers;
        private final boolean[] local;
        private final int[] streams;

        AeronFabric(int rank, Publication[] pubs, boolean[] local, int[] streams) {
            this.rank = rank;
            this.pubs = pubs;
            this.local = local;
            this.streams = streams;
            this.publishers = new Publisher[pubs.length];
            for (int i = 0; i < pubs.length; i++) if (pubs[i] != null) publishers[i] = new Publisher(pubs[i]);
        }

        /**
         * Ranks that share this node's driver share its directory too: a group made only of them
         * reduces large payloads through a file there (named by its first rank's stream and the
         * group id, so every member finds the same one; the driver removes it at shutdown).
         */
        @Override
        public SharedMemoryPath sharedMemory(FabricGroup group) {
            int[] members = group.worldRanks();
            for (int w : members) if (!local[w]) return null;
            if (members.length < 2) return null;
            java.nio.file.Path file = java.nio.file.Path.of(aeronDir, "weft-shm-" + streams[members[0]] + "-" + Integer.toHexString(group.id));
            return ShmCollectives.mapFile(file, members.length, group.rank());
        }

        @Override public int rank() { return rank; }
        @Override public int size() { return pubs.length; }
        @Override public int maxFrameBytes() { return MTU - 32 - HEADER; }

        @Override
        public void send(int dst, Msg msg, MemorySegment payload, long offset, int length, long deadlineNanos) {
            Publisher p = publishers[dst];
            IdleStrategy idle = null;
            while (true) {
                long r;
                synchronized (p) {
                    BufferClaim claim = p.bufferClaim;
                    r = p.publication.tryClaim(HEADER + length, claim);
                    if (r > 0) {
                        MutableDirectBuffer b = claim.buffer();
                        int o = claim.offset();
                        FrameHeader.write(b, o, rank, msg, length);
                        if (length > 0) {
                            if (payload.isNative()) {
                                p.source.wrap(payload.address() + offset, length);
                                b.putBytes(o + HEADER, p.source, 0, length);
                            } else {
                                MemorySegment into = MemorySegment.ofAddress(b.addressOffset() + o + HEADER).reinterpret(length);
                                MemorySegment.copy(payload, offset, into, 0, length);
                            }
                        }
                        claim.commit();
                        return;
                    }
                }
                if (r == Publication.CLOSED || r == Publication.MAX_POSITION_EXCEEDED)
                    throw new IllegalStateException("Aeron publication to rank " + dst + " failed: " + Publication.errorString(r));
                // NOT_CONNECTED (peer gone or not yet there), BACK_PRESSURED, ADMIN_ACTION: retry
                // until the deadline, filing incoming frames meanwhile so two ranks that send to
                // each other cannot stall one another.
                if (System.nanoTime() - deadlineNanos > 0) throw new PeerTimeout(dst);
                if (idle == null) idle = waitStrategy();
                idle.idle(Math.max(0, progress()));
            }
        }

        @Override
        public Frame receive(int src, Msg msg, long deadlineNanos) {
            IdleStrategy idle = null;
            while (true) {
                Frame f = inbox.poll(src, msg);
                if (f != null) return f;
                int work = progress();
                if (work > 0) continue;
                if (System.nanoTime() - deadlineNanos > 0) throw new PeerTimeout(src);
                if (work < 0) {
                    // another thread is polling: it wakes us when it files a frame
                    f = inbox.take(src, msg, deadlineNanos, 200_000);
                    if (f != null) return f;
                } else {
                    if (idle == null) idle = waitStrategy();
                    idle.idle(0);
                }
            }
        }

        @Override
        public void release(Frame frame) {
            pool.give(frame);
        }

        @Override
        public FramePool framePool() {
            return pool;
        }

        @Override
        public void close() {
            AeronTransport.this.close();
        }
    }
}
