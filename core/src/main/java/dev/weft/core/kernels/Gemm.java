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
 */
public final class Gemm {
    private static final int ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;
    private static final MethodHandle SGEMM;

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
            int threads = Integer.getInteger("weft.blas.threads", Parallel.threads());
            MethodHandle setThreads = linker.downcallHandle(find(lookup, "openblas_set_num_threads"), FunctionDescriptor.ofVoid(I));
            setThreads.invokeExact(threads);
        } catch (Throwable e) {
            throw new ExceptionInInitializerError("could not load OpenBLAS from the JavaCPP preset: " + e);
        }
    }

    private Gemm() {}

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
