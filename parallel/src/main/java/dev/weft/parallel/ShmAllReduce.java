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
 * All-reduce for ranks on one host, straight through shared memory (as NCCL does within a node):
 * the payload goes piece by piece through a small region every rank maps. Each piece passes three
 * stages on every rank: <em>publish</em> (copy into my slot the parts of my piece the others
 * reduce), <em>reduce</em> (combine my own 1/n of the piece across all ranks in rank order 0..n-1,
 * so the bits equal the direct algorithm's, into a shared result; my own contribution is read
 * from my tensor) and <em>collect</em> (copy the whole result back into my tensor).
 *
 * <p>The stages are pipelined: one pass publishes piece k, reduces piece k-1 and collects piece k-2,
 * so each wait is for work a peer did a stage earlier, and a rank that was briefly descheduled
 * (two cores shared by the ranks, their JIT and GC threads and the media driver) rarely stalls the
 * others. An earlier version ran the stages in lockstep with a barrier after publish and after
 * reduce; on 2 cores it lost most of a 64 MiB all-reduce's time in those barriers (2.1-2.3 GB/s).
 * Each rank counts its published, reduced and collected pieces in its own cache line; a ring of
 * {@link #DEPTH} buffers lets a rank run ahead without overwriting a piece a slower rank still
 * reads. Counters grow across calls, so a call needs no reset. The ring stays in the last-level
 * cache, so the memory traffic is close to one read and one write of the tensor. Pieces of 1 MiB
 * measured best on 2 cores (64 MiB on 2 ranks: 256 KiB 3.2-4.3 GB/s, 1 MiB 4.1-4.7 GB/s).
 *
 * <p>Small payloads take this path too: a 4 KiB all-reduce is one piece, two waits on counters
 * (a few microseconds when the ranks hold cores) against a round trip of frames through the
 * media driver's log buffers.
 */
final class ShmAllReduce implements SharedMemoryPath {
    /** Bytes of the tensor moved per piece (every rank of a job must use the same; tuning knob weft.shm.piece, KiB). */
    static final long PIECE = Long.getLong("weft.shm.piece", 1024) << 10;
    /** Payloads from this size (bytes) take this path; smaller ones go as frames (knob weft.shm.min, bytes). */
    static final long MIN_BYTES = Long.getLong("weft.shm.min", 0);
    /** Buffers in the ring: pieces in flight plus room for a rank that runs ahead. */
    static final int DEPTH = 4;
    private static final long FLAG_STRIDE = 128; // one counter per cache-line pair: no false sharing
    private static final int PUBLISHED = 0, REDUCED = 1, COLLECTED = 2;
    private static final int CORES = Runtime.getRuntime().availableProcessors(), SPIN = 200;
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();

    private final int n;
    private final int rank;
    private final MemorySegment region;
    private final Arena arena;
    private final Path file;
    private final long buffers;
    /** Pieces this rank has fully collected, over all calls: the global index of a call's first piece. */
    private long pieces;

    private ShmAllReduce(int n, int rank, MemorySegment region, Arena arena, Path file) {
        this.n = n;
        this.rank = rank;
        this.region = region;
        this.arena = arena;
        this.file = file;
        this.buffers = align(FLAG_STRIDE * 3 * n);
    }

    static long regionBytes(int n) {
        return align(FLAG_STRIDE * 3 * n) + DEPTH * (n + 1) * PIECE;
    }

    private static long align(long x) {
        return (x + 4095) & ~4095L;
    }

    /** Maps (creating if needed) the group's file under the shared-memory root; the last rank to close removes it. */
    static ShmAllReduce mapFile(Path file, int n, int rank) {
        long size = regionBytes(n);
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            if (ch.size() < size) ch.truncate(size); // no-op when another rank grew it already
            if (ch.size() < size) ch.write(java.nio.ByteBuffer.allocate(1), size - 1);
            MemorySegment seg = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
            return new ShmAllReduce(n, rank, seg, arena, file);
        } catch (IOException e) {
            arena.close();
            throw new UncheckedIOException("cannot map the shared-memory collective region " + file
                    + " (" + (regionBytes(n) >> 20) + " MiB; is /dev/shm full?)", e);
        }
    }

    /** A region in this process's memory, shared by rank threads (the in-JVM transport). */
    static ShmAllReduce inMemory(MemorySegment region, int n, int rank) {
        return new ShmAllReduce(n, rank, region, null, null);
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
        pieces = base + rounds;
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
        MemorySegment result = slot(b, n);
        if (to > from) {
            long o = from * 4, c = to - from;
            ReduceKernels.combine(rop, source(b, 0, data), sourceOffset(0, off, o), source(b, 1, data), sourceOffset(1, off, o), result, o, c);
            for (int q = 2; q < n; q++)
                ReduceKernels.combine(rop, result, o, source(b, q, data), sourceOffset(q, off, o), result, o, c);
            if (rop == ReduceOp.AVG) ReduceKernels.divide(result, o, c, n);
        }
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

    /** Where rank q's contribution to the current piece lives: my tensor for me, the slot for the others. */
    private MemorySegment source(int b, int q, MemorySegment data) {
        return q == rank ? data : slot(b, q);
    }

    private long sourceOffset(int q, long pieceOff, long o) {
        return q == rank ? pieceOff + o : o;
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
        // cores: a 4 KiB all-reduce took 870 us spinning first).
        int spins = n <= CORES ? 0 : SPIN;
        for (int q = 0; q < n; q++) {
            while ((long) LONG.getAcquire(region, counter(stage, q)) < target) {
                if (++spins < SPIN) Thread.onSpinWait();
                else if (spins < 2 * SPIN) Thread.yield();
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
