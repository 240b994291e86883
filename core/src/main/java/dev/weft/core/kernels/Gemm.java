package dev.weft.core.kernels;

import org.bytedeco.javacpp.Loader;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * Single-precision GEMM through OpenBLAS. The library is the one bundled in the JavaCPP OpenBLAS
 * preset; JavaCPP extracts and loads it, and we call {@code cblas_sgemm} with an FFM downcall on
 * off-heap segments, so no array is copied in or out.
 *
 * <p>Row-major throughout: C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C.
 *
 * <p>OpenBLAS runs single-threaded; we split large products into column or row panels over our
 * own {@link Parallel} pool instead. Measured here, OpenBLAS's own threads spin while they wait
 * and collapse when the cores are shared (a 256x256x2048 product fell to 5.6 GFLOP/s under load,
 * against 103 GFLOP/s on one core), and a single pool keeps nested parallel loops (attention calls
 * GEMM from inside one) from oversubscribing the cores. The panel split never changes the order
 * of any element's reduction over k, so results do not depend on the thread count.
 */
public final class Gemm {
    private static final int ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;
    private static final MethodHandle SGEMM;
    private static final MethodHandle SET_THREADS;

    static {
        try {
            Loader.load(org.bytedeco.openblas.global.openblas.class);
            SymbolLookup lookup = SymbolLookup.loaderLookup();
            Linker linker = Linker.nativeLinker();
            MemorySegment sym = find(lookup, "cblas_sgemm");
            var I = ValueLayout.JAVA_INT;
            var P = ValueLayout.ADDRESS;
            SGEMM = linker.downcallHandle(sym, FunctionDescriptor.ofVoid(I, I, I, I, I, I, ValueLayout.JAVA_FLOAT, P, I, P, I,
                    ValueLayout.JAVA_FLOAT, P, I), Linker.Option.critical(false));
            int threads = Integer.getInteger("weft.blas.threads", 1);
            SET_THREADS = linker.downcallHandle(find(lookup, "openblas_set_num_threads"), FunctionDescriptor.ofVoid(I));
            SET_THREADS.invokeExact(threads);
        } catch (Throwable e) {
            throw new ExceptionInInitializerError("could not load OpenBLAS from the JavaCPP preset: " + e);
        }
    }

    private Gemm() {}

    /**
     * Sets OpenBLAS's own thread count. weft runs it with 1 (see above); benchmarks raise it to
     * measure OpenBLAS called directly in its default, all-cores configuration.
     */
    public static void setBlasThreads(int threads) {
        try {
            SET_THREADS.invokeExact(threads);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    private static MemorySegment find(SymbolLookup lookup, String name) {
        Optional<MemorySegment> s = lookup.find(name);
        if (s.isPresent()) return s.get();
        for (String path : Loader.getLoadedLibraries().values()) {
            if (path != null && path.contains("openblas")) {
                Optional<MemorySegment> t = SymbolLookup.libraryLookup(java.nio.file.Path.of(path), java.lang.foreign.Arena.global()).find(name);
                if (t.isPresent()) return t.get();
            }
        }
        throw new IllegalStateException("symbol " + name + " not found in the bundled OpenBLAS");
    }

    /**
     * C = alpha * op(A) * op(B) + beta * C on row-major matrices at element offsets into their
     * segments. {@code lda}, {@code ldb}, {@code ldc} are row strides in elements.
     */
    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
                             MemorySegment a, long aOff, int lda, MemorySegment b, long bOff, int ldb,
                             float beta, MemorySegment c, long cOff, int ldc) {
        if (m == 0 || n == 0) return;
        if (k == 0) {
            // BLAS leaves C untouched for k == 0 only when beta == 1; do the scaling ourselves.
            for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) {
                long p = cOff + (long) i * ldc + j;
                c.setAtIndex(VectorMath.F, p, beta == 0f ? 0f : beta * c.getAtIndex(VectorMath.F, p));
            }
            return;
        }
        long work = (long) m * n * k;
        if (work < PARALLEL_WORK || Parallel.threads() == 1) {
            call(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
        } else if (n >= m) {
            // Column panels: C[:, j0:j1] = A · B[:, j0:j1].
            int panels = Math.min(Parallel.threads(), Math.max(1, n / 16));
            Parallel.forRange(panels, 1, (from, to) -> {
                for (int p = from; p < to; p++) {
                    int j0 = panelStart(n, panels, p), j1 = panelStart(n, panels, p + 1);
                    long bo = transB ? bOff + (long) j0 * ldb : bOff + j0;
                    call(transA, transB, m, j1 - j0, k, alpha, a, aOff, lda, b, bo, ldb, beta, c, cOff + j0, ldc);
                }
            });
        } else {
            // Row panels: C[i0:i1, :] = A[i0:i1, :] · B.
            int panels = Math.min(Parallel.threads(), Math.max(1, m / 16));
            Parallel.forRange(panels, 1, (from, to) -> {
                for (int p = from; p < to; p++) {
                    int i0 = panelStart(m, panels, p), i1 = panelStart(m, panels, p + 1);
                    long ao = transA ? aOff + i0 : aOff + (long) i0 * lda;
                    call(transA, transB, i1 - i0, n, k, alpha, a, ao, lda, b, bOff, ldb, beta, c, cOff + (long) i0 * ldc, ldc);
                }
            });
        }
    }

    /** Below this many multiply-adds a product runs on the calling thread (splitting costs more than it saves). */
    private static final long PARALLEL_WORK = 1L << 21;

    /** Panel boundaries on multiples of 16, so every panel but the last keeps whole SIMD blocks. */
    private static int panelStart(int size, int panels, int p) {
        if (p >= panels) return size;
        return (int) ((long) size * p / panels) & ~15;
    }

    private static void call(boolean transA, boolean transB, int m, int n, int k, float alpha, MemorySegment a, long aOff, int lda,
                             MemorySegment b, long bOff, int ldb, float beta, MemorySegment c, long cOff, int ldc) {
        try {
            SGEMM.invokeExact(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, m, n, k, alpha,
                    a.asSlice(aOff * 4), lda, b.asSlice(bOff * 4), ldb, beta, c.asSlice(cOff * 4), ldc);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
