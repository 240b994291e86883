package dev.weft.parallel;

import dev.weft.parallel.rendezvous.PeerKey;
import io.aeron.Aeron;
import io.aeron.ChannelUriStringBuilder;
import io.aeron.Publication;
import io.aeron.Image;
import io.aeron.Subscription;
import io.aeron.logbuffer.BufferClaim;
import io.aeron.logbuffer.FragmentHandler;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;
import org.agrona.collections.Int2IntHashMap;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;
import org.agrona.concurrent.SleepingMillisIdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;

import java.lang.foreign.MemorySegment;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
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
 * <p>Endpoint format: {@code aeron|HOST|AERON_DIR|STREAM|UDP_PORT|UDP_MTU}. Each rank subscribes to
 * its own IPC stream and to a UDP port on HOST; a peer with the same host and driver directory is
 * reached over IPC, any other over UDP at HOST:UDP_PORT.
 *
 * <p>Frames are single Aeron messages no larger than one MTU, claimed in the log buffer and filled
 * straight from the tensor, so Aeron never fragments or reassembles them; larger payloads are
 * chunked by the algorithms. Over IPC the MTU is Aeron's largest (64 KiB less 32 bytes: there is no
 * network). Over UDP a datagram must fit the path, or the kernel fragments it and losing any
 * fragment loses the whole datagram: the UDP MTU is {@code weft.aeron.mtu} (or
 * {@code WEFT_AERON_MTU}) when set, else the MTU of the interface that holds HOST less the IP and UDP
 * headers, else Aeron's default of 1408; a pair of ranks uses the smaller of their two, so both
 * ends chunk a payload alike.
 *
 * <p>Every publication opens with a hello: the proof, under the generation's {@link PeerKey}, that
 * its sender rank opens this session to this rank. Fragments of a session (an Aeron image) that
 * did not open with a valid hello are dropped, with one line on standard error per session, so a
 * stranger who can reach the UDP port (or the driver) cannot inject frames, and the job goes on. Back-pressure is retried until the operation's deadline. There is no
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
    /** System property (or, when unset, environment variable) fixing the UDP MTU, a multiple of 32. */
    public static final String MTU_PROPERTY = "weft.aeron.mtu", MTU_ENV = "WEFT_AERON_MTU";
    /** Aeron's largest MTU (its UDP payload limit), used for IPC, where nothing crosses a network. */
    static final int IPC_MTU = 65504;
    /** Aeron's default MTU: fits an Ethernet path with room for tunnel headers. */
    static final int DEFAULT_UDP_MTU = 1408;
    /** Aeron's data frame header, inside every MTU. */
    private static final int AERON_HEADER = 32;
    static final int HEADER = 32;
    /** The {@link FrameHeader} kind of a hello (never a {@link Msg} kind). */
    static final int HELLO_KIND = 0x4845_4c4f;
    private static final int UNKNOWN = -1, REJECTED = -2;
    private static final AtomicInteger STREAMS = new AtomicInteger();

    private final AeronDriver ownDriver;
    private final String aeronDir;
    private final String host;
    private final PeerKey key;
    private final int udpMtu;
    /** This rank, once {@link #connect} knows it (hellos are checked against it). */
    private volatile int rank = -1;
    private final AtomicInteger refusedSessions = new AtomicInteger();
    private final boolean forceUdp;
    private final Aeron aeron;
    private final int stream;
    private final Subscription ipc;
    private final Subscription udp;
    private final int udpPort;
    private final Inbox inbox = new Inbox();
    private final FramePool pool = new FramePool();
    private final ReentrantLock pollLock = new ReentrantLock();
    /** Per subscription: session id to the rank its hello proved, or {@link #REJECTED}; used under the poll lock. */
    private final Int2IntHashMap ipcSessions = new Int2IntHashMap(UNKNOWN), udpSessions = new Int2IntHashMap(UNKNOWN);
    private final FragmentHandler ipcHandler, udpHandler;
    /** A view over the pooled frame a fragment is copied into; used under the poll lock only. */
    private final UnsafeBuffer landing = new UnsafeBuffer();
    private final List<Publication> publications = new ArrayList<>();
    private volatile boolean closed;

    private AeronTransport(AeronDriver ownDriver, String aeronDir, String host, PeerKey key, boolean forceUdp) {
        this.ownDriver = ownDriver;
        this.aeronDir = aeronDir;
        this.host = host;
        this.key = java.util.Objects.requireNonNull(key, "key");
        this.forceUdp = forceUdp;
        int mtu;
        try {
            mtu = udpMtu(host);
        } catch (RuntimeException e) {
            if (ownDriver != null) ownDriver.close();
            throw e;
        }
        this.udpMtu = mtu;
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
        this.udp = aeron.addSubscription("aeron:udp?endpoint=" + udpAddress(host, 0), stream);
        this.udpPort = boundPort(udp);
        this.ipcHandler = (b, o, l, h) -> onFragment(ipcSessions, ipc, b, o, l, h);
        this.udpHandler = (b, o, l, h) -> onFragment(udpSessions, udp, b, o, l, h);
    }

    private static String udpAddress(String host, int port) {
        return (host.indexOf(':') >= 0 && !host.startsWith("[") ? "[" + host + "]" : host) + ":" + port;
    }

    /**
     * The UDP MTU for frames sent from {@code host}: {@value #MTU_PROPERTY} / {@value #MTU_ENV}
     * when set, else what the interface holding {@code host} carries without fragmenting (its MTU
     * less the IP and UDP headers, down to a multiple of 32), else {@value #DEFAULT_UDP_MTU}.
     */
    static int udpMtu(String host) {
        String given = System.getProperty(MTU_PROPERTY);
        String from = "-D" + MTU_PROPERTY;
        if (given == null || given.isBlank()) {
            given = System.getenv(MTU_ENV);
            from = MTU_ENV;
        }
        int min = AERON_HEADER + HEADER + 32;
        if (given != null && !given.isBlank()) {
            int mtu;
            try {
                mtu = Integer.parseInt(given.strip());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(from + " = '" + given + "' is not an integer");
            }
            if (mtu < min || mtu > IPC_MTU || mtu % 32 != 0)
                throw new IllegalArgumentException(from + " = " + mtu + " must be a multiple of 32 in [" + min + ", " + IPC_MTU + "]");
            return mtu;
        }
        try {
            InetAddress a = InetAddress.getByName(host);
            NetworkInterface nic = NetworkInterface.getByInetAddress(a);
            int link = nic == null ? -1 : nic.getMTU();
            if (link > 0) {
                int ipUdp = (a instanceof Inet6Address ? 40 : 20) + 8;
                return Math.clamp((link - ipUdp) & ~31, min, IPC_MTU);
            }
        } catch (UnknownHostException | SocketException e) {
            // fall through to the default
        }
        return DEFAULT_UDP_MTU;
    }

    /** The UDP MTU this rank sends with (a pair of ranks uses the smaller of theirs). */
    int udpMtu() {
        return udpMtu;
    }

    /** Aeron sessions whose frames were dropped for want of a valid hello. */
    public int refusedCount() {
        return refusedSessions.get();
    }

    /**
     * The transport of a launched rank at {@code host} (the address peers reach it at and it binds),
     * admitting peers that prove {@code key}: it joins the node's driver named by
     * {@code WEFT_AERON_DIR} when set, and otherwise embeds a driver of its own.
     */
    public static AeronTransport fromEnvironment(String host, PeerKey key) {
        String dir = System.getenv(DRIVER_DIR_ENV);
        return dir == null || dir.isBlank() ? embedded(host, key) : withDriver(dir, host, key);
    }

    /** A transport on the running driver in {@code aeronDir}. */
    public static AeronTransport withDriver(String aeronDir, String host, PeerKey key) {
        return new AeronTransport(null, aeronDir, host, key, false);
    }

    /** A transport with a driver of its own (for a rank started alone); closing it stops the driver. */
    public static AeronTransport embedded(String host, PeerKey key) {
        AeronDriver d = AeronDriver.launch();
        return new AeronTransport(d, d.directory(), host, key, false);
    }

    /** Like {@link #withDriver} but reaching every peer over UDP, even on this host (tests, measurements). */
    public static AeronTransport udpOnly(String aeronDir, String host, PeerKey key) {
        return new AeronTransport(null, aeronDir, host, key, true);
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
        return String.join("|", "aeron", host, aeronDir, Integer.toString(stream), Integer.toString(udpPort), Integer.toString(udpMtu));
    }

    private record Endpoint(String host, String dir, int stream, int udpPort, int udpMtu) {
        static Endpoint parse(int rank, String s) {
            String[] f = s.split("\\|", -1);
            if (f.length != 6 || !f[0].equals("aeron"))
                throw new IllegalArgumentException("endpoint of rank " + rank + " is '" + s + "'; expected aeron|HOST|AERON_DIR|STREAM|UDP_PORT|UDP_MTU");
            try {
                return new Endpoint(f[1], f[2], Integer.parseInt(f[3]), Integer.parseInt(f[4]), Integer.parseInt(f[5]));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("endpoint of rank " + rank + " is '" + s + "': stream, port and MTU must be numbers");
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
        this.rank = rank;
        Publication[] pubs = new Publication[n];
        boolean[] local = new boolean[n];
        int[] streams = new int[n];
        int[] mtus = new int[n];
        for (int i = 0; i < n; i++) {
            Endpoint e = Endpoint.parse(i, endpoints.get(i));
            streams[i] = e.stream;
            if (i == rank) {
                local[i] = !forceUdp;
                mtus[i] = IPC_MTU;
                continue;
            }
            local[i] = !forceUdp && e.host.equals(host) && e.dir.equals(aeronDir);
            mtus[i] = local[i] ? IPC_MTU : Math.min(udpMtu, e.udpMtu);
            String channel = local[i]
                    ? new ChannelUriStringBuilder().media("ipc").mtu(mtus[i]).termLength(AeronDriver.TERM_LENGTH).build()
                    : new ChannelUriStringBuilder().media("udp").endpoint(udpAddress(e.host, e.udpPort)).mtu(mtus[i])
                        .termLength(AeronDriver.TERM_LENGTH).build();
            // exclusive: its own session, so a receiver's session is one sender's (a shared publication
            // would carry every local rank's frames to that peer under one session, and one hello)
            pubs[i] = aeron.addExclusivePublication(channel, e.stream);
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
        for (int i = 0; i < n; i++) if (pubs[i] != null) sayHello(pubs[i], i, streams[i], deadline, timeout);
        int[] world = new int[n];
        for (int i = 0; i < n; i++) world[i] = i;
        return new FabricGroup(new AeronFabric(rank, pubs, local, streams, mtus), "world", 0, world, rank, timeout, false);
    }

    /** What a hello is bound to: the session it opens and the stream it opens it on. */
    private static byte[] helloBinding(int session, int stream) {
        return java.nio.ByteBuffer.allocate(8).putInt(session).putInt(stream).array();
    }

    /** The first frame of a publication: this rank's proof that it opens this session to {@code dst}. */
    private void sayHello(Publication pub, int dst, int dstStream, long deadline, Duration timeout) {
        byte[] proof = key.proof("aeron-hello", rank, dst, helloBinding(pub.sessionId(), dstStream));
        UnsafeBuffer b = new UnsafeBuffer(new byte[HEADER + proof.length]);
        FrameHeader.write(b, 0, rank, new Msg(0, HELLO_KIND, 0), proof.length);
        b.putBytes(HEADER, proof);
        IdleStrategy idle = new SleepingMillisIdleStrategy(1);
        while (true) {
            long r = pub.offer(b, 0, b.capacity());
            if (r > 0) return;
            if (r == Publication.CLOSED || r == Publication.MAX_POSITION_EXCEEDED)
                throw new IllegalStateException("Aeron publication to rank " + dst + " failed: " + Publication.errorString(r));
            if (System.nanoTime() - deadline > 0) throw new CollectiveTimeoutException("connect", "world", 0, List.of(dst), timeout);
            idle.idle();
        }
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        aeron.close();
        if (ownDriver != null) ownDriver.close();
    }

    // ---- receiving ----------------------------------------------------------------------------

    private void onFragment(Int2IntHashMap sessions, Subscription from, DirectBuffer buf, int offset, int length,
                            io.aeron.logbuffer.Header header) {
        int session = header.sessionId();
        int src = length >= HEADER ? FrameHeader.src(buf, offset) : REJECTED;
        int admitted = sessions.get(session);
        if (admitted == UNKNOWN) {
            admitted = admit(from, session, src, buf, offset, length);
            sessions.put(session, admitted);
            return; // a hello, or the first fragment of a refused session: nothing to file
        }
        if (admitted != src) return; // refused, or claiming another rank than its hello proved
        int len = length - HEADER;
        Frame f = pool.take(len).addressed(FrameHeader.src(buf, offset), FrameHeader.group(buf, offset), FrameHeader.kind(buf, offset),
                FrameHeader.seq(buf, offset), FrameHeader.step(buf, offset), FrameHeader.chunk(buf, offset));
        if (len > 0) {
            landing.wrap(f.data.address(), len);
            buf.getBytes(offset + HEADER, landing, 0, len);
        }
        inbox.put(f);
    }

    /** The rank a session's first fragment proves it comes from, or {@link #REJECTED} (said once, here). */
    private int admit(Subscription from, int session, int src, DirectBuffer buf, int offset, int length) {
        int proofBytes = PeerKey.proofBytes();
        if (length == HEADER + proofBytes && FrameHeader.kind(buf, offset) == HELLO_KIND && rank >= 0) {
            byte[] proof = new byte[proofBytes];
            buf.getBytes(offset + HEADER, proof);
            if (key.verifies(proof, "aeron-hello", src, rank, helloBinding(session, stream))) return src;
        }
        refusedSessions.incrementAndGet();
        Image image = from.imageBySessionId(session);
        System.err.println("weft rank " + rank + ": ignoring Aeron session " + session + " from "
                + (image == null ? "an unknown source" : image.sourceIdentity()) + " on " + (from == ipc ? "IPC" : "UDP")
                + (src >= 0 ? " (claiming rank " + src + ")" : "") + ": it did not open with a valid hello under this generation's job key"
                + "; the job goes on");
        return REJECTED;
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
            return ipc.poll(ipcHandler, 64) + udp.poll(udpHandler, 64);
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
        /** Per peer: the payload bytes of one frame, from the pair's MTU. */
        private final int[] frameBytes;

        AeronFabric(int rank, Publication[] pubs, boolean[] local, int[] streams, int[] mtus) {
            this.rank = rank;
            this.pubs = pubs;
            this.local = local;
            this.streams = streams;
            this.frameBytes = new int[mtus.length];
            for (int i = 0; i < mtus.length; i++) frameBytes[i] = mtus[i] - AERON_HEADER - HEADER;
            this.publishers = new Publisher[pubs.length];
            for (int i = 0; i < pubs.length; i++) if (pubs[i] != null) publishers[i] = new Publisher(pubs[i]);
        }

        /**
         * Ranks that share this node's driver share its directory too: a group made only of them
         * reduces large payloads through a file there (named by its first rank's stream and the
         * group id, so every member finds the same one; the driver removes it at shutdown).
         *
         * <p>The file needs no hello: it is created with this user's permissions in the node's driver
         * directory, and whoever can write it can as well write the driver's IPC log buffers or the
         * ranks' memory: a process of the job's own user on this host, which the data-plane
         * authentication does not try to keep out.
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
        @Override public int maxFrameBytes(int peer) { return frameBytes[peer]; }

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
