package dev.weft.core.kernels;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.ForkJoinWorkerThread;

/**
 * Splits loops over the compute threads. One pool per process, sized by {@code -Dweft.threads}
 * (default: all cores); loops too small to pay for a hand-off run on the caller's thread.
 */
public final class Parallel {
    private static final int THREADS = Integer.getInteger("weft.threads", Runtime.getRuntime().availableProcessors());
    private static final ForkJoinPool POOL = new ForkJoinPool(Math.max(1, THREADS));

    /** Set while the calling thread runs its own chunk of a parallel loop, so nested loops run inline. */
    private static final ThreadLocal<Boolean> INSIDE = ThreadLocal.withInitial(() -> false);

    private Parallel() {}

    /** The body of a parallel loop over the half-open range [from, to). */
    @FunctionalInterface
    public interface Range {
        void run(int from, int to);
    }

    public static int threads() {
        return Math.max(1, THREADS);
    }

    /**
     * Runs {@code body} over [0, n) in up to {@link #threads()} contiguous chunks, none smaller
     * than {@code grain} iterations. Chunk boundaries depend only on n, grain and the thread count,
     * never on timing, so results are deterministic.
     */
    public static void forRange(int n, int grain, Range body) {
        if (n <= 0) return;
        int chunks = (int) Math.min(threads(), Math.max(1, n / Math.max(1, grain)));
        if (chunks <= 1 || INSIDE.get() || Thread.currentThread() instanceof ForkJoinWorkerThread w && w.getPool() == POOL) {
            body.run(0, n);
            return;
        }
        List<ForkJoinTask<?>> tasks = new ArrayList<>(chunks);
        for (int c = 1; c < chunks; c++) {
            int from = (int) ((long) n * c / chunks), to = (int) ((long) n * (c + 1) / chunks);
            tasks.add(POOL.submit(() -> body.run(from, to)));
        }
        INSIDE.set(true);
        try {
            body.run(0, (int) ((long) n / chunks));
        } finally {
            INSIDE.set(false);
        }
        for (ForkJoinTask<?> t : tasks) t.join();
    }
}
