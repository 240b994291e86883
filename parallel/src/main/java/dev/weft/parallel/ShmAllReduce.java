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
 * the payload goes round by round through a small region every rank maps. In round k each rank
 * copies into its slot the parts of its piece the others reduce, then reduces its own 1/n of the
 * piece across all ranks in rank order 0..n-1 (so the bits equal the direct algorithm's; its own
 * contribution is read from its tensor) into a shared result, then copies the whole result back. Three counters per rank phase the rounds; two buffers alternate so a round's writes
 * never overtake a slower rank's reads of the round before. Pieces are small enough to stay in
 * cache, so the memory traffic is close to one read and one write of the tensor.
 *
 * <p>Frames still carry small payloads (one round trip costs less than a round here) and all
 * traffic between hosts.
 */
final class ShmAllReduce implements SharedMemoryPath {
    /** Bytes of the tensor moved per round (every rank of a job must use the same; tuning knob weft.shm.piece, KiB). */
    static final long PIECE = Long.getLong("weft.shm.piece", 512) << 10;
    /** Payloads from this size (bytes) take this path. */
    static final long MIN_BYTES = 256 << 10;
    private static final long FLAG_STRIDE = 128; // one counter per cache-line pair: no false sharing
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();

    private final int n;
    private final int rank;
    private final MemorySegment region;
    private final Arena arena;
    private final Path file;
    private final long slots;
    private long signals;

    private ShmAllReduce(int n, int rank, MemorySegment region, Arena arena, Path file) {
        this.n = n;
        this.rank = rank;
        this.region = region;
        this.arena = arena;
        this.file = file;
        this.slots = align(FLAG_STRIDE * n);
    }

    static long regionBytes(int n) {
        return align(FLAG_STRIDE * n) + 2 * (n + 1) * PIECE;
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

    private MemorySegment slot(int buffer, int r) {
        return region.asSlice(slots + (buffer * (long) (n + 1) + r) * PIECE, PIECE);
    }

    @Override
    public void allReduce(Op op, MemorySegment data, long numel, ReduceOp rop) {
        long bytes = numel * 4;
        long rounds = (bytes + PIECE - 1) / PIECE;
        for (long k = 0; k < rounds; k++) {
            int b = (int) (signals / 2 & 1); // alternates every round (two signals per round)
            long off = k * PIECE;
            long len = Math.min(PIECE, bytes - off);
            long count = len / 4;
            // publish only what the others reduce: every share but my own
            for (int j = 0; j < n; j++) {
                if (j == rank) continue;
                long from = j * count / n * 4, to = (j + 1) * count / n * 4;
                MemorySegment.copy(data, off + from, slot(b, rank), from, to - from);
            }
            arrive(op);
            // my share: floats [rank*count/n, (rank+1)*count/n), combined in rank order, my own
            // contribution read straight from the tensor
            long from = rank * count / n, to = (rank + 1) * count / n;
            MemorySegment result = slot(b, n);
            if (to > from) {
                long o = from * 4, c = to - from;
                ReduceKernels.combine(rop, source(b, 0, data, off), sourceOffset(0, off, o), source(b, 1, data, off), sourceOffset(1, off, o), result, o, c);
                for (int q = 2; q < n; q++)
                    ReduceKernels.combine(rop, result, o, source(b, q, data, off), sourceOffset(q, off, o), result, o, c);
                if (rop == ReduceOp.AVG) ReduceKernels.divide(result, o, c, n);
            }
            arrive(op);
            MemorySegment.copy(result, 0, data, off, len);
        }
    }

    /** Where rank q's contribution to the current piece lives: my tensor for me, the slot for the others. */
    private MemorySegment source(int b, int q, MemorySegment data, long pieceOff) {
        return q == rank ? data : slot(b, q);
    }

    private long sourceOffset(int q, long pieceOff, long o) {
        return q == rank ? pieceOff + o : o;
    }

    /** Publishes this rank's next signal and waits until every rank has given it, up to the op's deadline. */
    private void arrive(Op op) {
        long target = ++signals;
        LONG.setRelease(region, FLAG_STRIDE * rank, target);
        int spins = 0;
        for (int q = 0; q < n; q++) {
            while ((long) LONG.getAcquire(region, FLAG_STRIDE * q) < target) {
                // spin briefly, then yield, then sleep in short naps: ranks may outnumber cores
                if (++spins < 200) Thread.onSpinWait();
                else if (spins < 400) Thread.yield();
                else {
                    if (System.nanoTime() - op.deadline > 0) throw timeout(op, target);
                    LockSupport.parkNanos(20_000);
                }
            }
        }
    }

    private CollectiveTimeoutException timeout(Op op, long target) {
        List<Integer> missing = new ArrayList<>();
        for (int q = 0; q < n; q++) if ((long) LONG.getAcquire(region, FLAG_STRIDE * q) < target) missing.add(q);
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
