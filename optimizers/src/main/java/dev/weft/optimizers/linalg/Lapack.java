package dev.weft.optimizers.linalg;

import org.bytedeco.javacpp.Loader;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * SVD and QR from the LAPACK inside the JavaCPP OpenBLAS preset (the same library {@code Gemm}
 * uses), called through FFM on off-heap segments. Row-major float32 throughout.
 *
 * <p>Singular vectors are only defined up to sign; {@link #svd} fixes the sign so that the
 * largest-magnitude entry of every left singular vector is positive (and flips the matching row
 * of Vᵀ). Projectors built from them are then a deterministic function of the gradient, which
 * checkpoints and reference tests rely on.
 */
public final class Lapack {
    private static final int ROW_MAJOR = 101, COL_MAJOR = 102;
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    private static final MethodHandle SGESDD, SGEQRF, SORGQR;

    static {
        try {
            Loader.load(org.bytedeco.openblas.global.openblas.class);
            Linker linker = Linker.nativeLinker();
            var I = ValueLayout.JAVA_INT;
            var B = ValueLayout.JAVA_BYTE;
            var P = ValueLayout.ADDRESS;
            SGESDD = linker.downcallHandle(find("LAPACKE_sgesdd_work"), FunctionDescriptor.of(I, I, B, I, I, P, I, P, P, I, P, I, P, I, P));
            SGEQRF = linker.downcallHandle(find("LAPACKE_sgeqrf"), FunctionDescriptor.of(I, I, I, I, P, I, P));
            SORGQR = linker.downcallHandle(find("LAPACKE_sorgqr"), FunctionDescriptor.of(I, I, I, I, I, P, I, P));
            // Single-threaded like Gemm: OpenBLAS's threaded kernels may change the order of reductions from
            // call to call, and a projector that differs in the last bit would break bit-exact resume.
            MethodHandle threads = linker.downcallHandle(find("openblas_set_num_threads"), FunctionDescriptor.ofVoid(I));
            threads.invokeExact(1);
        } catch (Throwable e) {
            throw new ExceptionInInitializerError("could not bind LAPACK from the JavaCPP OpenBLAS preset: " + e);
        }
    }

    private Lapack() {}

    private static MemorySegment find(String name) {
        Optional<MemorySegment> s = SymbolLookup.loaderLookup().find(name);
        if (s.isPresent()) return s.get();
        for (String path : Loader.getLoadedLibraries().values()) {
            if (path != null && path.contains("openblas") && !path.contains("jni")) {
                Optional<MemorySegment> t = SymbolLookup.libraryLookup(java.nio.file.Path.of(path), Arena.global()).find(name);
                if (t.isPresent()) return t.get();
            }
        }
        throw new IllegalStateException("symbol " + name + " not found in the bundled OpenBLAS (is it the LAPACK-enabled build?)");
    }

    /** A thin SVD A = U·diag(S)·Vᵀ of an m×n matrix, k = min(m, n): U is m×k, S has k values (descending), Vt is k×n. */
    public record Svd(int m, int n, float[] u, float[] s, float[] vt) {
        public int k() {
            return s.length;
        }
    }

    /**
     * Thin SVD of the row-major m×n matrix at {@code a} (not modified). Calls the column-major
     * {@code sgesdd_work} on Aᵀ (the same bytes) with workspaces we allocate, aligned the same way
     * every call: the plain LAPACKE entry points transpose and allocate internally with malloc, and
     * results that depend on where malloc puts a buffer would break bit-exact resume.
     */
    public static Svd svd(MemorySegment a, int m, int n) {
        int k = Math.min(m, n);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment work = arena.allocate((long) m * n * 4, 64);
            MemorySegment.copy(a, 0, work, 0, (long) m * n * 4);
            // Column-major view: Aᵀ is n×m with lda n. Its left vectors are A's right ones and vice versa.
            MemorySegment s = arena.allocate((long) k * 4, 64), vt = arena.allocate((long) n * k * 4, 64), u = arena.allocate((long) k * m * 4, 64);
            MemorySegment iwork = arena.allocate(8L * k * 4, 64), query = arena.allocate(64, 64);
            int info = (int) SGESDD.invokeExact(COL_MAJOR, (byte) 'S', n, m, work, n, s, vt, n, u, k, query, -1, iwork);
            if (info != 0) throw new ArithmeticException("LAPACK sgesdd workspace query failed (info " + info + ")");
            int lwork = (int) query.get(F, 0) + 1;
            MemorySegment ws = arena.allocate((long) lwork * 4, 64);
            info = (int) SGESDD.invokeExact(COL_MAJOR, (byte) 'S', n, m, work, n, s, vt, n, u, k, ws, lwork, iwork);
            if (info != 0) throw new ArithmeticException("LAPACK sgesdd failed on a " + m + "x" + n + " matrix (info " + info + ")");
            // Column-major n×k "U" of Aᵀ is row-major k×n Vᵀ of A; column-major k×m "Vᵀ" of Aᵀ is row-major m×k U of A.
            float[] U = u.toArray(F), S = s.toArray(F), V = vt.toArray(F);
            for (int j = 0; j < k; j++) {
                int arg = 0;
                for (int i = 1; i < m; i++) if (Math.abs(U[i * k + j]) > Math.abs(U[arg * k + j])) arg = i;
                if (U[arg * k + j] < 0) {
                    for (int i = 0; i < m; i++) U[i * k + j] = -U[i * k + j];
                    for (int c = 0; c < n; c++) V[j * n + c] = -V[j * n + c];
                }
            }
            return new Svd(m, n, U, S, V);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * The m×k orthonormal factor Q of a QR decomposition of the row-major m×k matrix (m ≥ k),
     * with signs fixed so that R has a non-negative diagonal.
     */
    public static float[] orthonormalize(float[] a, int m, int k) {
        if (m < k) throw new IllegalArgumentException("orthonormalize needs rows >= columns, got " + m + "x" + k);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment q = arena.allocateFrom(F, a), tau = arena.allocate((long) k * 4, 64);
            int info = (int) SGEQRF.invokeExact(ROW_MAJOR, m, k, q, k, tau);
            if (info != 0) throw new ArithmeticException("LAPACK sgeqrf failed (info " + info + ")");
            boolean[] flip = new boolean[k];
            for (int j = 0; j < k; j++) flip[j] = q.getAtIndex(F, (long) j * k + j) < 0;
            info = (int) SORGQR.invokeExact(ROW_MAJOR, m, k, k, q, k, tau);
            if (info != 0) throw new ArithmeticException("LAPACK sorgqr failed (info " + info + ")");
            float[] out = q.toArray(F);
            for (int j = 0; j < k; j++) if (flip[j]) for (int i = 0; i < m; i++) out[i * k + j] = -out[i * k + j];
            return out;
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
