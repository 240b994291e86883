package dev.weft.parallel;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.locks.LockSupport;

/**
 * All-reduce, reduce-scatter and all-gather for ranks on one host, straight through shared memory
 * (as NCCL does within a node): the payload goes piece by piece through a small region every rank
 * maps. Each piece passes three
 * stages on every rank: <em>publish</em> (copy into my slot the parts of my piece the others
 * reduce), <em>reduce</em> (combine my own 1/n of the piece across all ranks in rank order 0..n-1,
 * so the bits equal the direct algorithm's, into a shared result; my own contribution is read
 * from my tensor) and <em>collect</em> (copy the whole result back into my tensor).
 *
 * <p>The stages are pipelined: one pass publishes piece k, reduces piece k-1 and collects piece k-2,
 * so each wait is for work a peer did a stage earlier, and a rank that was briefly descheduled
 * (two cores shared by the ranks, their JIT and GC threads and the media driver) rarely stalls the
 * others. An earlier version ran the stages in lockstep with a barrier after publish and after
 * reduce: 2.5-3.0 GB/s for 64 MiB on 2 ranks on the same machine and hour as 3.9-5.6 GB/s for
 * this one (then still slowed by heap frames, see the package notes; 5.5-7.7 GB/s without).
 * Each rank counts its published, reduced and collected pieces in its own cache line; a ring of
 * {@link #DEPTH} buffers lets a rank run ahead without overwriting a piece a slower rank still
 * reads. Counters grow across calls, so a call needs no reset. The ring stays in the last-level
 * cache, so the memory traffic is close to one read and one write of the tensor. Pieces of 1 MiB
 * measured best on 2 cores (64 MiB on 2 ranks: 256 KiB 3.2-4.3 GB/s, 1 MiB 4.1-4.7 GB/s, both
 * while heap frames still slowed the kernels).
 *
 * <p>Reduce-scatter and all-gather use the same ring and counters with one stage each fewer
 * (nobody collects a reduce-scatter; nobody reduces an all-gather).
 *
 * <p>All-reduces on two ranks, and small ones on more, take a one-shot form instead (see
 * {@link #oneShotAllReduce}): every rank reduces every piece from all slots, so a 4 KiB all-reduce
 * is a copy in, one wait on a counter and a reduce (about 1-3 us on 2 cores when the ranks hold
 * them, against a round trip of frames through the media driver's log buffers).
 *
 * <p>The same region holds the point-to-point channels of the group ({@link ShmPointToPoint}).
 */
final class ShmCollectives implements SharedMemoryPath {
    /** Bytes of the tensor moved per piece (every rank of a job must use the same; tuning knob weft.shm.piece, KiB). */
    static final long PIECE = Long.getLong("weft.shm.piece", 1024) << 10;
    /** Payloads from this size (bytes) take this path; smaller ones go as frames (knob weft.shm.min, bytes). */
    static final long MIN_BYTES = Long.getLong("weft.shm.min", 0);
    /** All-reduces up to this size (bytes) on more than two ranks take the one-shot form (knob weft.shm.oneshot, bytes). */
    static final long ONE_SHOT_BYTES = Long.getLong("weft.shm.oneshot", 64 << 10);
    /** The smallest piece a payload is cut into (knob weft.shm.minpiece, KiB). */
    static final long MIN_PIECE = Math.min(PIECE, Long.getLong("weft.shm.minpiece", 64) << 10);
    /** Buffers in the ring: pieces in flight plus room for a rank that runs ahead. */
    static final int DEPTH = 4;
    private static final long FLAG_STRIDE = 128; // one counter per cache-line pair: no false sharing
    private static final int PUBLISHED = 0, REDUCED = 1, COLLECTED = 2, STAGES = 3;
    private static final int CORES = Runtime.getRuntime().availableProcessors();
    /** How long a waiting rank spins, then yields (synchronous callers), before it parks; see awaitSlowly. */
    static final long SPIN_NANOS = Long.getLong("weft.shm.spin", 5) * 1000, YIELD_NANOS = 200_000, LANE_SPIN_NANOS = 2_000;
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();

    private final int n;
    private final int rank;
    private final MemorySegment region;
    private final Arena arena;
    private final Path file;
    private final long buffers;
    private final Runnable onClose;
    private final ShmPointToPoint pointToPoint;
    /** Pieces this rank has fully collected, over all calls: the global index of a call's first piece. */
    private long pieces;

    private ShmCollectives(int n, int rank, MemorySegment region, Arena arena, Path file, Runnable onClose) {
        this.n = n;
        this.onClose = onClose;
        this.rank = rank;
        this.region = region;
        this.arena = arena;
        this.file = file;
        this.buffers = countersBytes(n);
        this.pointToPoint = new ShmPointToPoint(region.asSlice(collectiveBytes(n), ShmPointToPoint.regionBytes(n)), n, rank);
    }

    /** The collectives' counters and ring, then the point-to-point channels. */
    static long regionBytes(int n) {
        return collectiveBytes(n) + ShmPointToPoint.regionBytes(n);
    }

    private static long collectiveBytes(int n) {
        return countersBytes(n) + DEPTH * (n + 1) * PIECE;
    }

    /** The counters at the start of the region (one per stage and rank), rounded up to a page: the ring follows. */
    private static long countersBytes(int n) {
        return align(FLAG_STRIDE * STAGES * n);
    }

    private static long align(long x) {
        return (x + 4095) & ~4095L;
    }

    /** Maps (creating if needed) the group's file under the shared-memory root; the last rank to close removes it. */
    static ShmCollectives mapFile(Path file, int n, int rank) {
        long size = regionBytes(n);
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            if (ch.size() < size) ch.truncate(size); // no-op when another rank grew it already
            if (ch.size() < size) ch.write(java.nio.ByteBuffer.allocate(1), size - 1);
            MemorySegment seg = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
            return new ShmCollectives(n, rank, seg, arena, file, () -> {});
        } catch (IOException e) {
            arena.close();
            throw new UncheckedIOException("cannot map the shared-memory collective region " + file
                    + " (" + (regionBytes(n) >> 20) + " MiB; is /dev/shm full?)", e);
        }
    }

    /** A region in this process's memory, shared by rank threads (the in-JVM transport); onClose forgets it. */
    static ShmCollectives inMemory(MemorySegment region, int n, int rank, Runnable onClose) {
        return new ShmCollectives(n, rank, region, null, null, onClose);
    }

    @Override
    public boolean handles(long numel) {
        return n > 1 && numel * 4 >= MIN_BYTES;
    }

    /** Where in the region rank r's slot (r < n) or the shared result (r == n) of ring buffer b starts (offsets, not slices: nothing allocated per piece). */
    private long at(int b, int r) {
        return buffers + (b * (long) (n + 1) + r) * PIECE;
    }

    @Override
    public void allReduce(Op op, MemorySegment data, long numel, ReduceOp rop) {
        long bytes = numel * 4;
        if (n == 2 || bytes <= ONE_SHOT_BYTES) {
            oneShotAllReduce(op, data, bytes, rop);
            return;
        }
        long rounds = (bytes + PIECE - 1) / PIECE;
        long base = pieces;
        for (long s = 0; s < rounds + 2; s++) {
            if (s < rounds) publish(op, data, bytes, base, s);
            if (s >= 1 && s - 1 < rounds) reduce(op, data, bytes, base, s - 1, rop);
            if (s >= 2) collect(op, data, bytes, base, s - 2);
        }
        finish(base + rounds);
    }

    /**
     * The one-shot all-reduce: every rank publishes each whole piece into its slot and then
     * reduces that piece from every rank's slot, in rank order, straight into its tensor. One
     * hand-off per piece instead of the three-stage pipeline's two, and no shared result to copy
     * back. Each rank reads all n slots, so the traffic grows with n: it serves every size on two
     * ranks (where it reads 3 bytes per byte of tensor, against 2.5 for the three stages) and
     * small payloads on more. Pieces shrink with the payload (see {@link #pieceFor}) so that the
     * copy into my slot of piece k+1 overlaps the peers' reading of piece k.
     */
    private void oneShotAllReduce(Op op, MemorySegment data, long bytes, ReduceOp rop) {
        long piece = pieceFor(bytes), rounds = Math.max(1, (bytes + piece - 1) / piece), base = pieces;
        for (long s = 0; s <= rounds; s++) {
            if (s < rounds) {
                long g = base + s;
                await(op, REDUCED, g - DEPTH + 1); // every rank has read the piece this buffer held
                long off = s * piece, len = Math.min(piece, bytes - off);
                MemorySegment.copy(data, off, region, at((int) (g % DEPTH), rank), len);
                signal(PUBLISHED, g + 1);
            }
            if (s >= 1) {
                long k = s - 1, g = base + k, off = k * piece, count = Math.min(piece, bytes - off) / 4;
                int b = (int) (g % DEPTH);
                await(op, PUBLISHED, g + 1);
                // my own contribution comes from my slot too: data is being overwritten with the result
                ReduceKernels.combine(rop, region, at(b, 0), region, at(b, 1), data, off, count);
                for (int q = 2; q < n; q++) ReduceKernels.combine(rop, data, off, region, at(b, q), data, off, count);
                if (rop == ReduceOp.AVG) ReduceKernels.divide(data, off, count, n);
                signal(REDUCED, g + 1);
            }
        }
        finish(base + rounds);
    }

    /**
     * Bytes per piece for a payload: a quarter of it (so a medium payload still pipelines over
     * four pieces), at least {@link #MIN_PIECE} (below that a hand-off costs more than the copy it
     * overlaps) and at most {@link #PIECE}. A whole number of cache lines; the same on every rank,
     * which passes the same size.
     */
    static long pieceFor(long bytes) {
        return Math.min(PIECE, Math.max(MIN_PIECE, ((bytes >> 2) + 63) & ~63L));
    }

    /** Copies into my slot every share of piece k but my own (the others reduce those). */
    private void publish(Op op, MemorySegment data, long bytes, long base, long k) {
        long g = base + k;
        // the ring buffer held piece g - DEPTH: every rank must have reduced it (read my slot) first
        await(op, REDUCED, g - DEPTH + 1);
        int b = (int) (g % DEPTH);
        long off = k * PIECE, count = Math.min(PIECE, bytes - off) / 4;
        for (int j = 0; j < n; j++) {
            if (j == rank) continue;
            long from = j * count / n * 4, to = (j + 1) * count / n * 4;
            MemorySegment.copy(data, off + from, region, at(b, rank) + from, to - from);
        }
        signal(PUBLISHED, g + 1);
    }

    /** Combines my share of piece k over all ranks, in rank order, into the shared result. */
    private void reduce(Op op, MemorySegment data, long bytes, long base, long k, ReduceOp rop) {
        long g = base + k;
        await(op, PUBLISHED, g + 1);
        // the result buffer held piece g - DEPTH: every rank must have collected it first
        await(op, COLLECTED, g - DEPTH + 1);
        int b = (int) (g % DEPTH);
        long off = k * PIECE, count = Math.min(PIECE, bytes - off) / 4;
        long from = rank * count / n, to = (rank + 1) * count / n;
        if (to > from) combineInRankOrder(rop, b, data, off + from * 4, from * 4, region, at(b, n) + from * 4, to - from);
        signal(REDUCED, g + 1);
    }

    /** Copies the reduced piece k back into my tensor once every rank has reduced its share. */
    private void collect(Op op, MemorySegment data, long bytes, long base, long k) {
        long g = base + k;
        await(op, REDUCED, g + 1);
        long off = k * PIECE, len = Math.min(PIECE, bytes - off);
        MemorySegment.copy(region, at((int) (g % DEPTH), n), data, off, len);
        signal(COLLECTED, g + 1);
    }

    /**
     * {@code dst = x_0 (op) x_1 (op) ... (op) x_{n-1}} over {@code count} floats, always in rank
     * order so every path gives the same bits: my own contribution is read from my tensor at
     * {@code mine}, each peer's from its slot of ring buffer b at {@code inSlot}.
     */
    private void combineInRankOrder(ReduceOp rop, int b, MemorySegment data, long mine, long inSlot, MemorySegment dst, long dOff, long count) {
        ReduceKernels.combine(rop, source(0, data), offset(b, 0, mine, inSlot), source(1, data), offset(b, 1, mine, inSlot), dst, dOff, count);
        for (int q = 2; q < n; q++) ReduceKernels.combine(rop, dst, dOff, source(q, data), offset(b, q, mine, inSlot), dst, dOff, count);
        if (rop == ReduceOp.AVG) ReduceKernels.divide(dst, dOff, count, n);
    }

    private MemorySegment source(int q, MemorySegment data) {
        return q == rank ? data : region;
    }

    private long offset(int b, int q, long mine, long inSlot) {
        return q == rank ? mine : at(b, q) + inSlot;
    }

    @Override
    public void send(Op op, int dst, long tag, MemorySegment data, long bytes) {
        pointToPoint.send(op, dst, tag, data, bytes);
    }

    @Override
    public void recv(Op op, int src, long tag, MemorySegment data, long bytes) {
        pointToPoint.recv(op, src, tag, data, bytes);
    }

    // ---- reduce-scatter and all-gather: the same ring and counters, one stage each fewer ------------

    /**
     * Reduce-scatter of n blocks of {@code block} floats: piece k is the k-th run of L = PIECE/4/n
     * floats of every block. Publish copies the runs of the others' blocks into my slot; reduce
     * combines my block's run in rank order (through my share of the shared result, so an output
     * that aliases my input block is safe) and copies it to the output. Nobody collects.
     */
    @Override
    public void reduceScatter(Op op, MemorySegment in, MemorySegment out, long block, ReduceOp rop) {
        long run = PIECE / 4 / n, rounds = (block + run - 1) / run, base = pieces;
        for (long s = 0; s <= rounds; s++) {
            if (s < rounds) {
                long g = base + s;
                await(op, REDUCED, g - DEPTH + 1); // every rank has reduced out of my slot's last piece
                int b = (int) (g % DEPTH);
                long len = Math.min(run, block - s * run) * 4;
                for (int j = 0; j < n; j++)
                    if (j != rank) MemorySegment.copy(in, (j * block + s * run) * 4, region, at(b, rank) + j * run * 4, len);
                signal(PUBLISHED, g + 1);
            }
            if (s >= 1) {
                long k = s - 1, g = base + k;
                await(op, PUBLISHED, g + 1);
                // an all-reduce before this one may still read the result buffer; in this operation
                // nobody but me touches my share of it, so only pieces of earlier operations count
                await(op, COLLECTED, Math.min(g - DEPTH + 1, base));
                int b = (int) (g % DEPTH);
                long count = Math.min(run, block - k * run), share = rank * run * 4;
                combineInRankOrder(rop, b, in, (rank * block + k * run) * 4, share, region, at(b, n) + share, count);
                MemorySegment.copy(region, at(b, n) + share, out, k * run * 4, count * 4);
                signal(REDUCED, g + 1);
            }
        }
        finish(base + rounds);
    }

    /**
     * All-gather of one {@code block} of floats per rank: piece k is the k-th run of PIECE/4 floats
     * of every block. Publish copies my run into my slot; collect copies every rank's run into its
     * block of the output (mine from my input).
     */
    @Override
    public void allGather(Op op, MemorySegment in, MemorySegment out, long block) {
        long run = PIECE / 4, rounds = (block + run - 1) / run, base = pieces;
        for (long s = 0; s <= rounds; s++) {
            if (s < rounds) {
                long g = base + s;
                await(op, COLLECTED, g - DEPTH + 1); // every rank has copied my slot's last piece out
                long len = Math.min(run, block - s * run) * 4;
                MemorySegment.copy(in, s * run * 4, region, at((int) (g % DEPTH), rank), len);
                signal(PUBLISHED, g + 1);
            }
            if (s >= 1) {
                long k = s - 1, g = base + k;
                await(op, PUBLISHED, g + 1);
                int b = (int) (g % DEPTH);
                long len = Math.min(run, block - k * run) * 4;
                for (int q = 0; q < n; q++)
                    MemorySegment.copy(q == rank ? in : region, q == rank ? k * run * 4 : at(b, q), out, (q * block + k * run) * 4, len);
                signal(COLLECTED, g + 1);
            }
        }
        finish(base + rounds);
    }

    /**
     * Ends an operation that used only some of the stages: the unused counters jump to the last
     * piece, so the next operation's waits (which may be on any stage) see this rank as done with
     * every piece so far, which it is.
     */
    private void finish(long last) {
        for (int stage = PUBLISHED; stage <= COLLECTED; stage++) signal(stage, last);
        pieces = last;
    }

    private long counter(int stage, int q) {
        return FLAG_STRIDE * (stage * (long) n + q);
    }

    private void signal(int stage, long value) {
        LONG.setRelease(region, counter(stage, rank), value);
    }

    /** Waits until every rank's counter of this stage has reached target, up to the op's deadline. */
    private void await(Op op, int stage, long target) {
        if (target <= 0) return;
        for (int q = 0; q < n; q++)
            if ((long) LONG.getAcquire(region, counter(stage, q)) < target) {
                awaitSlowly(op, stage, target, q);
                return;
            }
    }

    /**
     * Spins, then yields, then parks with growing naps, by elapsed time (a pause instruction lasts
     * 10 to 140 cycles depending on the processor, so counted spins would mean different waits).
     * A hand-off between two running ranks takes well under a microsecond, so a synchronous
     * caller spins for {@link #SPIN_NANOS} and then yields: alone on its core a yield returns at
     * once and the rank goes on polling, but where the scheduler has put both ranks on one core
     * (it does, for a while, after they have slept) it hands the core to the peer it waits for.
     * Spinning 20 us before yielding had made every 4 KiB operation of such a phase cost 25-30 us
     * on 2 cores (against 1-3 us when apart). A park costs 50-100 us (timer slack), which is what
     * a small collective must not pay, so it comes only after {@link #YIELD_NANOS}. Where ranks
     * outnumber cores a spinning rank holds the core the rank it waits for needs, so it yields at
     * once (4 ranks on 2 cores: a 4 KiB all-reduce took 870 us spinning first). On the collective
     * lane (an asynchronous call) the rank's compute threads want the cores: under CFS a yielding
     * thread keeps its share of the core, so the lane skips the yields and parks after a short spin.
     */
    private void awaitSlowly(Op op, int stage, long target, int from) {
        boolean lane = !FabricGroup.callerWaits();
        long spin = n > CORES ? 0 : lane ? LANE_SPIN_NANOS : SPIN_NANOS;
        long yieldUntil = lane ? spin : spin + YIELD_NANOS;
        long start = System.nanoTime(), nap = 1_000;
        for (int q = from; q < n; q++) {
            while ((long) LONG.getAcquire(region, counter(stage, q)) < target) {
                long waited = System.nanoTime() - start;
                if (waited < spin) Thread.onSpinWait();
                else if (waited < yieldUntil) Thread.yield();
                else {
                    if (System.nanoTime() - op.deadline > 0) throw timeout(op, stage, target);
                    LockSupport.parkNanos(nap);
                    nap = Math.min(2 * nap, 200_000);
                }
            }
        }
    }

    private CollectiveTimeoutException timeout(Op op, int stage, long target) {
        List<Integer> missing = new ArrayList<>();
        for (int q = 0; q < n; q++) if ((long) LONG.getAcquire(region, counter(stage, q)) < target) missing.add(q);
        return new CollectiveTimeoutException(op.name, op.group.name(), op.seq, missing, op.group.timeout());
    }

    @Override
    public void close() {
        onClose.run();
        if (arena != null) arena.close();
        if (file != null) {
            try {
                Files.deleteIfExists(file); // peers keep their mappings; a later open makes a fresh file
            } catch (IOException ignored) {
                // best effort: the file lives in a directory the driver deletes anyway
            }
        }
    }
}
