package dev.weft.parallel;

import dev.weft.core.DType;
import dev.weft.core.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Consumer;

/**
 * A {@link ProcessGroup} over a {@link Fabric}: the same class serves every transport. Collectives
 * run one at a time, in issue order, on the group's collective lane (a thread), so asynchronous
 * calls overlap with the caller's computation (a synchronous call with nothing queued runs on the
 * caller's thread; with work queued it waits its turn on the lane); sends and receives have lanes
 * of their own, so a pipeline stage may post a receive and then a send without deadlocking itself.
 */
final class FabricGroup implements ProcessGroup {
    final Fabric fabric;
    final int id;
    private final String name;
    private final int[] worldRanks;
    private final int rank;
    private final Duration timeout;
    private final boolean ownsFabric;
    private SharedMemoryPath shm;
    private boolean shmLooked;
    private int pending;
    private int pendingSends;
    private int pendingRecvs;
    private final Object shmLock = new Object();
    private long nextSeq;
    private long nextSend;
    private long nextRecv;
    private int children;
    private final ExecutorService collectiveLane;
    private ExecutorService sendLane;
    private ExecutorService recvLane;
    private volatile boolean closed;
    /** Scratch of the collective algorithms (see Op.scratch); grows to the largest call, then is reused. */
    private final MemorySegment[] scratch = new MemorySegment[2];
    private long scratchAllocations;

    FabricGroup(Fabric fabric, String name, int id, int[] worldRanks, int rank, Duration timeout, boolean ownsFabric) {
        if (timeout == null || timeout.isNegative() || timeout.isZero())
            throw new IllegalArgumentException("timeout must be positive, got " + timeout);
        this.fabric = fabric;
        this.name = name;
        this.id = id;
        this.worldRanks = worldRanks;
        this.rank = rank;
        this.timeout = timeout;
        this.ownsFabric = ownsFabric;
        this.collectiveLane = lane("collectives");
    }

    private ExecutorService lane(String what) {
        String thread = "weft-" + name + "-r" + rank + "-" + what;
        return Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, thread);
            t.setDaemon(true);
            return t;
        });
    }

    int worldRank(int groupRank) {
        return worldRanks[groupRank];
    }

    int[] worldRanks() {
        return worldRanks.clone();
    }

    @Override public int rank() { return rank; }
    @Override public int size() { return worldRanks.length; }
    @Override public String name() { return name; }
    @Override public Duration timeout() { return timeout; }

    // ---- collectives --------------------------------------------------------------------------

    @Override
    public Work allReduceAsync(Tensor t, ReduceOp op) {
        MemorySegment data = segment(t, "allReduce", "t");
        long numel = t.numel();
        requireOp(op);
        // Synchronous calls take the shared-memory path; asynchronous ones only with weft.shm.async
        // (see asyncShm): they run on the collective lane beside the rank's compute threads, which
        // hold the cores, so each hand-off may wait for the scheduler. Measured on 2 cores, a
        // 2-rank DDP step (four 4 MiB buckets during backward) took 1.05 s through shared memory
        // and 0.59 s through frames. Every rank issues the same call the same way, so all ranks
        // agree on the path (and so on the bits).
        boolean shared = INLINE.get() || asyncShm;
        return collective("allReduce", o -> {
            SharedMemoryPath path = sharedPath(shared, numel);
            if (path != null) path.allReduce(o, data, numel, op);
            else Collectives.allReduce(o, data, numel, op);
        });
    }

    @Override
    public Work reduceScatterAsync(Tensor input, Tensor output, ReduceOp op) {
        MemorySegment in = segment(input, "reduceScatter", "input");
        MemorySegment out = segment(output, "reduceScatter", "output");
        requireOp(op);
        long block = output.numel();
        if (input.numel() != block * size())
            throw new IllegalArgumentException(String.format("reduceScatter: input has %d elements; it must hold size()=%d blocks of output's %d",
                    input.numel(), size(), block));
        // Asynchronous reduce-scatters (ZeRO's gradient buckets) take shared memory too, unless
        // weft.shm.async is set; see asyncShm.
        boolean shared = INLINE.get() || asyncShm;
        return collective("reduceScatter", o -> {
            SharedMemoryPath path = sharedPath(shared, input.numel());
            if (path != null) path.reduceScatter(o, in, out, block, op);
            else Collectives.reduceScatter(o, in, out, block, op);
        });
    }

    @Override
    public Work allGatherAsync(Tensor input, Tensor output) {
        MemorySegment in = segment(input, "allGather", "input");
        MemorySegment out = segment(output, "allGather", "output");
        long block = input.numel();
        if (output.numel() != block * size())
            throw new IllegalArgumentException(String.format("allGather: output has %d elements; it must hold size()=%d blocks of input's %d",
                    output.numel(), size(), block));
        boolean shared = INLINE.get() || asyncShm;
        return collective("allGather", o -> {
            SharedMemoryPath path = sharedPath(shared, output.numel());
            if (path != null) path.allGather(o, in, out, block);
            else Collectives.allGather(o, in, out, block);
        });
    }

    @Override
    public Work broadcastAsync(Tensor t, int root) {
        MemorySegment data = segment(t, "broadcast", "t");
        requireRank("broadcast", "root", root);
        long numel = t.numel();
        return collective("broadcast", o -> Collectives.broadcast(o, data, numel, root));
    }

    @Override
    public Work reduceAsync(Tensor t, int root, ReduceOp op) {
        MemorySegment data = segment(t, "reduce", "t");
        requireRank("reduce", "root", root);
        requireOp(op);
        long numel = t.numel();
        return collective("reduce", o -> Collectives.reduce(o, data, numel, root, op));
    }

    @Override
    public Work allToAllAsync(Tensor input, Tensor output) {
        MemorySegment in = segment(input, "allToAll", "input");
        MemorySegment out = segment(output, "allToAll", "output");
        if (input.numel() != output.numel() || input.numel() % size() != 0)
            throw new IllegalArgumentException(String.format(
                    "allToAll: input (%d elements) and output (%d) must be the same size, a multiple of size()=%d",
                    input.numel(), output.numel(), size()));
        long block = input.numel() / size();
        return collective("allToAll", o -> Collectives.allToAll(o, in, out, block));
    }

    @Override
    public Work barrierAsync() {
        return collective("barrier", Collectives::barrier);
    }

    // ---- point to point -----------------------------------------------------------------------

    /**
     * Point to point goes through the group's shared memory where it has one (a pipeline's
     * activations and gradients), else as frames. A synchronous call with no asynchronous one
     * queued in its direction runs on the caller's thread: a hand-off to the lane and back costs
     * more than a 4 KiB message. Otherwise it waits its turn on the lane, so that sends with the
     * same tag leave in issue order.
     */
    @Override
    public Work sendAsync(Tensor t, int dst, int tag) {
        MemorySegment data = segment(t, "send", "t");
        requirePeer("send", "dst", dst);
        long bytes = t.numel() * 4;
        SharedMemoryPath path = pointToPoint();
        String what = "send(tag=" + tag + ")";
        synchronized (this) {
            if (closed) throw new IllegalStateException("group '" + name + "' is closed");
            long n = nextSend++;
            if (path == null || !INLINE.get() || pendingSends > 0) {
                if (sendLane == null) sendLane = lane("send");
                pendingSends++;
                return submit(sendLane, what + " to " + dst, n, () -> new Op(this, what, Msg.P2P, tag), op -> {
                    if (path != null) path.send(op, dst, tag, data, bytes);
                    else op.send(dst, 0, data, 0, bytes);
                }, () -> finished(true));
            }
        }
        return runNow(what, tag, () -> path.send(new Op(this, what, Msg.P2P, tag), dst, tag, data, bytes));
    }

    @Override
    public Work recvAsync(Tensor t, int src, int tag) {
        MemorySegment data = segment(t, "recv", "t");
        requirePeer("recv", "src", src);
        long bytes = t.numel() * 4;
        SharedMemoryPath path = pointToPoint();
        String what = "recv(tag=" + tag + ")";
        synchronized (this) {
            if (closed) throw new IllegalStateException("group '" + name + "' is closed");
            long n = nextRecv++;
            if (path == null || !INLINE.get() || pendingRecvs > 0) {
                if (recvLane == null) recvLane = lane("recv");
                pendingRecvs++;
                return submit(recvLane, what + " from " + src, n, () -> new Op(this, what, Msg.P2P, tag), op -> {
                    if (path != null) path.recv(op, src, tag, data, bytes);
                    else op.receiveCopy(src, 0, data, 0, bytes);
                }, () -> finished(false));
            }
        }
        return runNow(what, tag, () -> path.recv(new Op(this, what, Msg.P2P, tag), src, tag, data, bytes));
    }

    @Override public void send(Tensor t, int dst, int tag) { inline(() -> sendAsync(t, dst, tag)); }
    @Override public void recv(Tensor t, int src, int tag) { inline(() -> recvAsync(t, src, tag)); }

    /** Runs a point-to-point operation on the caller's thread (outside the group's lock: it may wait on the peer). */
    private Work runNow(String opName, long seq, Runnable body) {
        try {
            body.run();
            return Work.done();
        } catch (RuntimeException | Error e) {
            CompletableFuture<Void> f = new CompletableFuture<>();
            f.completeExceptionally(e);
            return new FutureWork(f, opName, name, seq, timeout);
        }
    }

    private synchronized void finished(boolean send) {
        if (send) pendingSends--;
        else pendingRecvs--;
    }

    /** The shared-memory path for sends and receives (weft.shm.p2p=false keeps them on frames). */
    private SharedMemoryPath pointToPoint() {
        return P2P_SHM ? sharedMemory() : null;
    }

    private static final boolean P2P_SHM = !"false".equals(System.getProperty("weft.shm.p2p"));

    // ---- subgroups ----------------------------------------------------------------------------

    @Override
    public synchronized ProcessGroup subgroup(String name, int... ranks) {
        if (name == null || name.isBlank()) throw new IllegalArgumentException("subgroup name must not be blank");
        if (ranks == null || ranks.length == 0) throw new IllegalArgumentException("subgroup '" + name + "' needs at least one rank");
        boolean[] seen = new boolean[size()];
        int mine = -1;
        int[] world = new int[ranks.length];
        for (int i = 0; i < ranks.length; i++) {
            int r = ranks[i];
            if (r < 0 || r >= size())
                throw new IllegalArgumentException("subgroup '" + name + "': rank " + r + " is outside group '" + this.name + "' of size " + size());
            if (seen[r]) throw new IllegalArgumentException("subgroup '" + name + "': rank " + r + " is listed twice in " + Arrays.toString(ranks));
            seen[r] = true;
            world[i] = worldRanks[r];
            if (r == rank) mine = i;
        }
        // Every rank of this group creates subgroups in the same order, so (parent id, index)
        // names the same group everywhere without any communication.
        int child = children++;
        if (mine < 0) return null;
        int childId = mix(id, child);
        return new FabricGroup(fabric, name, childId, world, mine, timeout, false);
    }

    private static int mix(int parent, int child) {
        long h = (((long) parent) << 32) ^ (child + 0x9E3779B97F4A7C15L);
        h ^= h >>> 33;
        h *= 0xff51afd7ed558ccdL;
        h ^= h >>> 33;
        int v = (int) h;
        return v == 0 ? 1 : v; // 0 is the world group
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        collectiveLane.shutdownNow();
        synchronized (this) {
            if (sendLane != null) sendLane.shutdownNow();
            if (recvLane != null) recvLane.shutdownNow();
        }
        if (shm != null) shm.close();
        if (ownsFabric) fabric.close();
    }

    // ---- plumbing -----------------------------------------------------------------------------

    /**
     * Scratch slot {@code slot} of at least {@code bytes}. Only the running collective uses it, and
     * collectives run one at a time (inline under this group's lock, or on its lane, which the lock
     * hands them to), so no two threads ever hold it at once.
     */
    MemorySegment scratch(int slot, long bytes) {
        MemorySegment s = scratch[slot];
        if (s == null || s.byteSize() < bytes) {
            scratchAllocations++;
            // native, as the reduction kernels need (see Inbox); rounded up so that slowly growing
            // calls do not allocate each time
            s = scratch[slot] = Arena.ofAuto().allocate(Math.max(64, Long.highestOneBit(Math.max(1, bytes - 1)) << 1), 64);
        }
        return s;
    }

    /** How many times a scratch slot had to grow: constant once every size in use has been seen. */
    long scratchAllocations() {
        return scratchAllocations;
    }

    /**
     * Whether asynchronous reduce-scatter and all-gather take the shared-memory path (knob
     * weft.shm.async, default false; every rank of a job gets the same JVM options, so all agree).
     * On their own they are faster there (README, collectives), but beside a training step's busy
     * compute threads the collective lane's hand-offs cost more than they save: `weft bench zero
     * --ranks 2 --stages 0,2` ran dp 2 ZeRO-2 at 1.86x DDP's step with it on and 0.97x with it off.
     * So ZeRO's asynchronous calls go through frames, as DDP's all-reduces do. Tests set it.
     */
    static volatile boolean asyncShm = "true".equals(System.getProperty("weft.shm.async")) || "await".equals(System.getProperty("weft.shm.async"));

    /**
     * weft.shm.async=await: asynchronous collectives (through shared memory, as with true) wait in
     * issue order and run on the thread that awaits them; see {@link DeferredCollective}.
     */
    static volatile boolean runOnAwait = "await".equals(System.getProperty("weft.shm.async"));

    /** Asynchronous collectives issued under runOnAwait and not yet run, oldest first. */
    private final java.util.ArrayDeque<DeferredCollective> deferred = new java.util.ArrayDeque<>();

    /** Runs the deferred collectives, oldest first, until upTo has run (all of them when null), on this thread. */
    synchronized void runDeferred(DeferredCollective upTo) {
        if (deferred.isEmpty()) return;
        boolean was = INLINE.get();
        INLINE.set(true); // the caller waits for them: the eager waits of a synchronous call
        try {
            while (!deferred.isEmpty() && (upTo == null || !upTo.isDone())) deferred.poll().run();
        } finally {
            INLINE.set(was);
        }
    }

    /**
     * The shared-memory path for a collective over numel floats in all, or null for frames. The
     * caller says whether this call may take it (see allReduceAsync, asyncShm); every rank
     * issues the same call the same way, so all ranks agree on the path and so on the bits.
     */
    private SharedMemoryPath sharedPath(boolean shared, long numel) {
        SharedMemoryPath path = shared ? sharedMemory() : null;
        return path != null && path.handles(numel) ? path : null;
    }

    /** The same-host shared-memory path of this group, looked up on first use (on the collective lane or inline). */
    private SharedMemoryPath sharedMemory() {
        synchronized (shmLock) { // the collective lane, the send and receive lanes and callers may all ask
            if (!shmLooked) {
                shmLooked = true;
                // weft.shm=false keeps every byte on the frames (to measure one path against the other)
                if (fabric instanceof SharedMemoryCapable c && !"false".equals(System.getProperty("weft.shm"))) shm = c.sharedMemory(this);
            }
            return shm;
        }
    }

    private Work collective(String opName, Consumer<Op> body) {
        return collective(INLINE.get(), opName, body);
    }

    /** Set while a synchronous call issues its operation, so it may run inline. */
    private static final ThreadLocal<Boolean> INLINE = ThreadLocal.withInitial(() -> false);

    /**
     * True on the thread of a synchronous call while it issues (and, when the lane is idle, runs)
     * its operation: the caller has nothing else to do, so a transport may wait for frames more
     * eagerly than on the collective lane, which shares the cores with the rank's compute threads.
     */
    static boolean callerWaits() {
        return INLINE.get();
    }

    private static void inline(java.util.function.Supplier<Work> issue) {
        Work w;
        INLINE.set(true);
        try {
            w = issue.get();
        } finally {
            INLINE.set(false);
        }
        w.await();
    }

    @Override public void allReduce(Tensor t, ReduceOp op) { inline(() -> allReduceAsync(t, op)); }
    @Override public void reduceScatter(Tensor input, Tensor output, ReduceOp op) { inline(() -> reduceScatterAsync(input, output, op)); }
    @Override public void allGather(Tensor input, Tensor output) { inline(() -> allGatherAsync(input, output)); }
    @Override public void broadcast(Tensor t, int root) { inline(() -> broadcastAsync(t, root)); }
    @Override public void reduce(Tensor t, int root, ReduceOp op) { inline(() -> reduceAsync(t, root, op)); }
    @Override public void allToAll(Tensor input, Tensor output) { inline(() -> allToAllAsync(input, output)); }
    @Override public void barrier() { inline(this::barrierAsync); }

    /**
     * Issues a collective. A synchronous call with nothing queued runs on the caller's thread
     * (no hand-off to the lane and back: that is most of a small operation's latency); otherwise
     * it joins the lane's queue, so operations always run in sequence order.
     */
    private synchronized Work collective(boolean inline, String opName, Consumer<Op> body) {
        if (closed) throw new IllegalStateException("group '" + name + "' is closed");
        long seq = nextSeq++;
        if (!inline && runOnAwait) {
            DeferredCollective w = new DeferredCollective(this, opName, seq, body);
            deferred.add(w);
            return w;
        }
        if (inline) runDeferred(null); // the asynchronous ones issued before this run first
        if (inline && pending == 0) {
            try {
                body.accept(new Op(this, opName, Msg.COLLECTIVE, seq));
            } catch (RuntimeException | Error e) {
                CompletableFuture<Void> f = new CompletableFuture<>();
                f.completeExceptionally(e);
                return new FutureWork(f, opName, name, seq, timeout);
            }
            return Work.done();
        }
        pending++;
        return submit(collectiveLane, opName, seq, () -> new Op(this, opName, Msg.COLLECTIVE, seq), body, this::finished);
    }

    private synchronized void finished() {
        pending--;
    }

    /** Runs body on the lane; done (the group's count of queued work) runs before the handle completes. */
    private Work submit(ExecutorService lane, String opName, long seq, java.util.function.Supplier<Op> op, Consumer<Op> body, Runnable done) {
        if (closed) throw new IllegalStateException("group '" + name + "' is closed");
        CompletableFuture<Void> f = new CompletableFuture<>();
        lane.execute(() -> {
            try {
                body.accept(op.get());
                done.run();
                f.complete(null);
            } catch (Throwable e) {
                done.run();
                f.completeExceptionally(e);
            }
        });
        return new FutureWork(f, opName, name, seq, timeout);
    }

    private static MemorySegment segment(Tensor t, String op, String arg) {
        if (t == null) throw new IllegalArgumentException(op + ": " + arg + " must not be null");
        if (t.dtype() != DType.F32) throw new IllegalArgumentException(op + ": " + arg + " must be float32, got " + t.dtype());
        if (!t.isContiguous()) throw new IllegalArgumentException(op + ": " + arg + " must be contiguous (call contiguous() first)");
        return t.data();
    }

    private static void requireOp(ReduceOp op) {
        if (op == null) throw new IllegalArgumentException("reduce op must not be null; one of " + List.of(ReduceOp.values()));
    }

    private void requireRank(String op, String arg, int r) {
        if (r < 0 || r >= size())
            throw new IllegalArgumentException(op + ": " + arg + "=" + r + " is not a rank of group '" + name + "' (0.." + (size() - 1) + ")");
    }

    private void requirePeer(String op, String arg, int r) {
        requireRank(op, arg, r);
        if (r == rank) throw new IllegalArgumentException(op + ": " + arg + "=" + r + " is this rank itself");
    }

    @Override
    public String toString() {
        return "ProcessGroup[" + name + ", rank " + rank + "/" + size() + "]";
    }
}
