package dev.weft.launcher;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * A baseline the collectives benchmark measures in the same run, beside one core's copy rate
 * ({@link dev.weft.offload.Bandwidth#hostCopy}): what two cores move through shared memory when
 * they only swap data. It shows what the shared path is up against on this machine: cross-core
 * traffic, and two cores sharing the memory bandwidth (on a shared VM it also shows when that
 * bandwidth drops for a while).
 */
final class MemoryBaselines {
    private MemoryBaselines() {}

    /**
     * Two threads swap {@code bytes} through a shared ring of four {@code piece}-byte buffers each:
     * each copies its private source in piece by piece and the other's pieces out to its private
     * destination, with no reduction (a 2-rank all-reduce moves half of that across: each rank
     * sends the half the other reduces and fetches the half it reduced). The slower thread's best
     * rate over 5 passes, in GB/s of its own tensor. It spins while waiting,
     * so the figure needs two free cores.
     */
    static double exchange(long bytes, long piece) throws InterruptedException {
        final int depth = 4;
        long pieces = Math.max(1, bytes / piece);
        try (Arena shared = Arena.ofShared()) {
            MemorySegment ring = shared.allocate(2 * depth * piece, 4096);
            AtomicLongArray published = new AtomicLongArray(32), consumed = new AtomicLongArray(32); // index 16*r: no false sharing
            double[] best = new double[2];
            boolean[] failed = new boolean[2];
            Thread[] threads = new Thread[2];
            for (int me = 0; me < 2; me++) {
                int r = me, other = 1 - me;
                threads[r] = new Thread(() -> {
                    try (Arena own = Arena.ofConfined()) {
                        MemorySegment src = own.allocate(pieces * piece, 64), dst = own.allocate(pieces * piece, 64);
                        src.fill((byte) (r + 1));
                        dst.fill((byte) 0);
                        long seq = 0;
                        for (int pass = 0; pass < 6; pass++) {
                            long t0 = System.nanoTime();
                            for (long k = 0; k < pieces; k++, seq++) {
                                long slot = seq % depth;
                                awaitCount(consumed, other, seq - depth + 1); // the other has read my old piece
                                MemorySegment.copy(src, k * piece, ring, (r * depth + slot) * piece, piece);
                                published.set(16 * r, seq + 1);
                                awaitCount(published, other, seq + 1);
                                MemorySegment.copy(ring, (other * depth + slot) * piece, dst, k * piece, piece);
                                consumed.set(16 * r, seq + 1);
                            }
                            if (pass > 0) best[r] = Math.max(best[r], pieces * piece / ((System.nanoTime() - t0) / 1e9)); // pass 0 warms up
                        }
                        MemorySegment want = own.allocate(dst.byteSize()).fill((byte) (other + 1));
                        if (dst.mismatch(want) >= 0) failed[r] = true; // the ring lost or mixed up pieces
                    }
                }, "exchange-" + r);
                threads[r].start();
            }
            for (Thread t : threads) t.join();
            if (failed[0] || failed[1]) throw new IllegalStateException("the shared-memory exchange delivered wrong bytes");
            return Math.min(best[0], best[1]) / 1e9;
        }
    }

    private static void awaitCount(AtomicLongArray counts, int thread, long target) {
        for (int spins = 0; counts.get(16 * thread) < target; spins++) {
            if (spins < 10_000) Thread.onSpinWait();
            else Thread.yield(); // fewer free cores than threads: let the other run
        }
    }
}
