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
 * <p>Small payloads take this path too: a 4 KiB all-reduce is one piece, two waits on counters
 * (a few microseconds when the ranks hold cores) against a round trip of frames through the
 * media driver's log buffers.
 */
final class ShmCollectives implements SharedMemoryPath {
    /** Bytes of the tensor moved per piece (every rank of a job must use the same; tuning knob weft.shm.piece, KiB). */
    static final long PIECE = Long.getLong("weft.shm.piece", 1024) << 10;
    /** Payloads from this size (bytes) take this path; smaller ones go as frames (knob weft.shm.min, bytes). */
    static final long MIN_BYTES = Long.getLong("weft.shm.min", 0);
    /** Buffers in the ring: pieces in flight plus room for a rank that runs ahead. */
    static final int DEPTH = 4;
    private static final long FLAG_STRIDE = 128; // one counter per cache-line pair: no false sharing
    private static final int PUBLISHED = 0, REDUCED = 1, COLLECTED = 2, STAGES = 3;
    private static final int CORES = Runtime.getRuntime().availableProcessors(), SPIN = 200, LANE_SPIN = 50;
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();

    private final int n;
    private final int rank;
    private final MemorySegment region;
    private final Arena arena;
    private final Path file;
    private final long buffers;
    private final Runnable onClose;
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
    }

    static long regionBytes(int n) {
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

    /** Rank r's slot (r < n) or the shared result (r == n) of ring buffer b. */
    private MemorySegment slot(int b, int r) {
        return region.asSlice(buffers + (b * (long) (n + 1) + r) * PIECE, PIECE);
    }

    @Override
    public void allReduce(Op op, MemorySegment data, long numel, ReduceOp rop) {
        long bytes = numel * 4;
        long rounds = (bytes + PIECE - 1) / PIECE;
        long base = pieces;
        for (long s = 0; s < rounds + 2; s++) {
            if (s < rounds) publish(op, data, bytes, base, s);
            if (s >= 1 && s - 1 < rounds) reduce(op, data, bytes, base, s - 1, rop);
            if (s >= 2) collect(op, data, bytes, base, s - 2);
        }
        finish(base + rounds);
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
            MemorySegment.copy(data, off + from, slot(b, rank), from, to - from);
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
        if (to > from) combineInRankOrder(rop, b, data, off + from * 4, from * 4, slot(b, n), from * 4, to - from);
        signal(REDUCED, g + 1);
    }

    /** Copies the reduced piece k back into my tensor once every rank has reduced its share. */
    private void collect(Op op, MemorySegment data, long bytes, long base, long k) {
        long g = base + k;
        await(op, REDUCED, g + 1);
        long off = k * PIECE, len = Math.min(PIECE, bytes - off);
        MemorySegment.copy(slot((int) (g % DEPTH), n), 0, data, off, len);
        signal(COLLECTED, g + 1);
    }

    /**
     * {@code dst = x_0 (op) x_1 (op) ... (op) x_{n-1}} over {@code count} floats, always in rank
     * order so every path gives the same bits: my own contribution is read from my tensor at
     * {@code mine}, each peer's from its slot of ring buffer b at {@code inSlot}.
     */
    private void combineInRankOrder(ReduceOp rop, int b, MemorySegment data, long mine, long inSlot, MemorySegment dst, long dOff, long count) {
        ReduceKernels.combine(rop, source(b, 0, data), offset(0, mine, inSlot), source(b, 1, data), offset(1, mine, inSlot), dst, dOff, count);
        for (int q = 2; q < n; q++) ReduceKernels.combine(rop, dst, dOff, source(b, q, data), offset(q, mine, inSlot), dst, dOff, count);
        if (rop == ReduceOp.AVG) ReduceKernels.divide(dst, dOff, count, n);
    }

    private MemorySegment source(int b, int q, MemorySegment data) {
        return q == rank ? data : slot(b, q);
    }

    private long offset(int q, long mine, long inSlot) {
        return q == rank ? mine : inSlot;
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
                    if (j != rank) MemorySegment.copy(in, (j * block + s * run) * 4, slot(b, rank), j * run * 4, len);
                signal(PUBLISHED, g + 1);
            }
            if (s >= 1) {
                long k = s - 1, g = base + k;
                await(op, PUBLISHED, g + 1);
                // an all-reduce before this one may still read the result buffer; in this operation
                // nobody but me touches my share of it, so only pieces of earlier operations count
                await(op, COLLECTED, Math.min(g - DEPTH + 1, base));
                int b = (int) (g % DEPTH);
                long count = Math.min(run, block - k * run), at = rank * run * 4;
                combineInRankOrder(rop, b, in, (rank * block + k * run) * 4, at, slot(b, n), at, count);
                MemorySegment.copy(slot(b, n), at, out, k * run * 4, count * 4);
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
                MemorySegment.copy(in, s * run * 4, slot((int) (g % DEPTH), rank), 0, len);
                signal(PUBLISHED, g + 1);
            }
            if (s >= 1) {
                long k = s - 1, g = base + k;
                await(op, PUBLISHED, g + 1);
                int b = (int) (g % DEPTH);
                long len = Math.min(run, block - k * run) * 4;
                for (int q = 0; q < n; q++)
                    MemorySegment.copy(q == rank ? in : slot(b, q), q == rank ? k * run * 4 : 0, out, (q * block + k * run) * 4, len);
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
        // spin briefly, then yield, then sleep in short naps. Where ranks outnumber cores a spinning
        // rank holds the core the rank it waits for needs, so it yields at once (4 ranks on 2
        // cores: a 4 KiB all-reduce took 870 us spinning first). On the collective lane (an
        // asynchronous call) the rank's compute threads want the cores: under CFS a yielding thread
        // keeps its share of the core, so the lane skips the yields and parks after a short spin.
        boolean lane = !FabricGroup.callerWaits();
        int spinUntil = n <= CORES ? (lane ? LANE_SPIN : SPIN) : 0;
        int yieldUntil = lane ? spinUntil : spinUntil + SPIN;
        int waits = 0;
        for (int q = 0; q < n; q++) {
            while ((long) LONG.getAcquire(region, counter(stage, q)) < target) {
                if (++waits < spinUntil) Thread.onSpinWait();
                else if (waits < yieldUntil) Thread.yield();
                else {
                    if (System.nanoTime() - op.deadline > 0) throw timeout(op, stage, target);
                    LockSupport.parkNanos(20_000);
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
