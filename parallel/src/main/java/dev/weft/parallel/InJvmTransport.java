package dev.weft.parallel;

import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Function;

/**
 * Ranks as threads of one JVM: each rank makes its own transport, publishes
 * {@link #localEndpoint()} ("jvm:ID") and connects, exactly as over Aeron. It runs the same
 * collective algorithms as the real transport (only the frame delivery differs: a frame is copied
 * into the receiver's inbox), so unit tests exercise them without processes.
 *
 * <p>For tests, {@link #world} builds n connected ranks at once and {@link #run} runs a body on n
 * rank threads.
 */
public final class InJvmTransport implements Transport {
    /** Default frame size: small enough that modest test payloads already travel in several chunks. */
    public static final int DEFAULT_MAX_FRAME_BYTES = 64 << 10;

    private static final Map<Long, InJvmTransport> LIVE = new ConcurrentHashMap<>();
    private static final AtomicLong IDS = new AtomicLong();

    private final long id = IDS.incrementAndGet();
    private final int maxFrameBytes;
    private final Inbox inbox = new Inbox();
    /** Frames filed into this rank's inbox; its senders take them, its receivers give them back. */
    private final FramePool pool = new FramePool();
    private volatile boolean closed;

    public InJvmTransport() {
        this(DEFAULT_MAX_FRAME_BYTES);
    }

    /** A transport whose frames carry at most {@code maxFrameBytes} (a multiple of 4, at least 4). */
    public InJvmTransport(int maxFrameBytes) {
        if (maxFrameBytes < 4 || maxFrameBytes % 4 != 0)
            throw new IllegalArgumentException("maxFrameBytes must be a positive multiple of 4, got " + maxFrameBytes);
        this.maxFrameBytes = maxFrameBytes;
        LIVE.put(id, this);
    }

    @Override
    public String localEndpoint() {
        return "jvm:" + id;
    }

    @Override
    public ProcessGroup connect(int rank, List<String> endpoints, Duration timeout) {
        if (endpoints == null || endpoints.isEmpty()) throw new IllegalArgumentException("endpoints must list every rank");
        if (rank < 0 || rank >= endpoints.size())
            throw new IllegalArgumentException("rank " + rank + " is outside the " + endpoints.size() + " endpoints");
        if (!endpoints.get(rank).equals(localEndpoint()))
            throw new IllegalArgumentException("endpoint of rank " + rank + " is " + endpoints.get(rank) + ", not this transport's " + localEndpoint());
        InJvmTransport[] peers = new InJvmTransport[endpoints.size()];
        for (int i = 0; i < peers.length; i++) {
            String e = endpoints.get(i);
            InJvmTransport p = e.startsWith("jvm:") ? LIVE.get(parseId(e)) : null;
            if (p == null) throw new IllegalArgumentException("endpoint " + i + " '" + e + "' is not a live in-JVM transport");
            peers[i] = p;
        }
        int[] world = new int[peers.length];
        for (int i = 0; i < world.length; i++) world[i] = i;
        return new FabricGroup(new Fabric(rank, peers, true), "world", 0, world, rank, timeout, false);
    }

    private static long parseId(String endpoint) {
        try {
            return Long.parseLong(endpoint.substring(4));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    @Override
    public void close() {
        closed = true;
        LIVE.remove(id);
    }

    /** n connected world groups (index = rank) with the default frame size. Close each when done. */
    public static List<ProcessGroup> world(int n, Duration timeout) {
        return world(n, timeout, DEFAULT_MAX_FRAME_BYTES);
    }

    /** n connected world groups whose frames carry at most {@code maxFrameBytes}. */
    public static List<ProcessGroup> world(int n, Duration timeout, int maxFrameBytes) {
        return world(n, timeout, maxFrameBytes, true);
    }

    /**
     * n connected world groups; with {@code sharedMemory} false every collective goes as frames (as
     * between hosts), so tests cover the frame algorithms for every operation.
     */
    static List<ProcessGroup> world(int n, Duration timeout, int maxFrameBytes, boolean sharedMemory) {
        if (n < 1) throw new IllegalArgumentException("world size must be at least 1, got " + n);
        List<InJvmTransport> ts = new ArrayList<>();
        for (int i = 0; i < n; i++) ts.add(new InJvmTransport(maxFrameBytes));
        List<String> endpoints = ts.stream().map(InJvmTransport::localEndpoint).toList();
        List<ProcessGroup> groups = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            InJvmTransport t = ts.get(i);
            // The world group owns its transport here, so closing the group releases everything.
            groups.add(new FabricGroup(t.new Fabric(i, ts.toArray(InJvmTransport[]::new), sharedMemory), "world", 0, range(n), i, timeout, true));
        }
        return groups;
    }

    /**
     * Runs {@code body} on n rank threads, each with its world group, and returns the results by
     * rank. The first failure (in rank order) is rethrown; the whole run is bounded by
     * {@code timeout} times four plus ten seconds, so a broken algorithm fails instead of hanging.
     */
    public static <T> List<T> run(int n, Duration timeout, int maxFrameBytes, Function<ProcessGroup, T> body) {
        return run(world(n, timeout, maxFrameBytes), timeout, body);
    }

    /** Like {@link #run(int, Duration, int, Function)}, every collective as frames when {@code sharedMemory} is false. */
    static <T> List<T> run(int n, Duration timeout, int maxFrameBytes, boolean sharedMemory, Function<ProcessGroup, T> body) {
        return run(world(n, timeout, maxFrameBytes, sharedMemory), timeout, body);
    }

    private static <T> List<T> run(List<ProcessGroup> groups, Duration timeout, Function<ProcessGroup, T> body) {
        int n = groups.size();
        ExecutorService pool = Executors.newFixedThreadPool(n, r -> {
            Thread t = new Thread(r, "weft-injvm-rank");
            t.setDaemon(true);
            return t;
        });
        try {
            List<Future<T>> fs = new ArrayList<>();
            for (ProcessGroup g : groups) fs.add(pool.submit(() -> body.apply(g)));
            long until = System.nanoTime() + timeout.multipliedBy(4).plusSeconds(10).toNanos();
            List<T> out = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                try {
                    out.add(fs.get(i).get(Math.max(0, until - System.nanoTime()), TimeUnit.NANOSECONDS));
                } catch (ExecutionException e) {
                    if (e.getCause() instanceof RuntimeException re) throw re;
                    if (e.getCause() instanceof Error er) throw er;
                    throw new IllegalStateException("rank " + i + " failed", e.getCause());
                } catch (TimeoutException e) {
                    throw new IllegalStateException("rank " + i + " did not finish in time");
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException(e);
                }
            }
            return out;
        } finally {
            pool.shutdownNow();
            groups.forEach(ProcessGroup::close);
        }
    }

    public static <T> List<T> run(int n, Duration timeout, Function<ProcessGroup, T> body) {
        return run(n, timeout, DEFAULT_MAX_FRAME_BYTES, body);
    }

    private static int[] range(int n) {
        int[] r = new int[n];
        for (int i = 0; i < n; i++) r[i] = i;
        return r;
    }

    /** Delivery by copying each frame into the receiver's inbox. */
    private static final Map<String, MemorySegment> REGIONS = new ConcurrentHashMap<>();

    private final class Fabric implements dev.weft.parallel.Fabric, SharedMemoryCapable {
        /** Rank threads share the heap, so a group's shared region is simply one segment they all use. */
        @Override
        public SharedMemoryPath sharedMemory(FabricGroup group) {
            int[] members = group.worldRanks();
            if (members.length < 2 || !sharedMemory) return null;
            String key = peers[members[0]].id + "/" + group.id;
            MemorySegment region = REGIONS.computeIfAbsent(key,
                    k -> java.lang.foreign.Arena.ofAuto().allocate(ShmCollectives.regionBytes(members.length), 4096));
            return ShmCollectives.inMemory(region, members.length, group.rank(), () -> REGIONS.remove(key));
        }

        private final int rank;
        private final InJvmTransport[] peers;
        private final boolean sharedMemory;

        Fabric(int rank, InJvmTransport[] peers, boolean sharedMemory) {
            this.rank = rank;
            this.peers = peers;
            this.sharedMemory = sharedMemory;
        }

        @Override
        public FramePool framePool() {
            return pool;
        }

        @Override public int rank() { return rank; }
        @Override public int size() { return peers.length; }
        @Override public int maxFrameBytes(int peer) { return maxFrameBytes; }

        @Override
        public void send(int dst, Msg msg, MemorySegment payload, long offset, int length, long deadlineNanos) {
            InJvmTransport p = peers[dst];
            if (p.closed) throw new PeerTimeout(dst);
            p.inbox.put(Inbox.copyOf(p.pool, rank, msg, payload, offset, length));
        }

        @Override
        public Frame receive(int src, Msg msg, long deadlineNanos) {
            Frame f = inbox.take(src, msg, deadlineNanos, Long.MAX_VALUE);
            if (f == null) throw new PeerTimeout(src);
            return f;
        }

        @Override
        public void release(Frame frame) {
            pool.give(frame);
        }

        @Override
        public void close() {
            InJvmTransport.this.close();
        }
    }
}
