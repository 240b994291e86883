package dev.weft.core.nn;

import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;

/**
 * Parameter initialisation as a pure function of (seed, fully qualified name, global element
 * index). Any parallel layout that holds a slice of a parameter computes exactly the values one
 * process would, without communicating: it only needs the slice's global indices.
 */
public final class Init {
    private Init() {}

    /** How a parameter starts. */
    public sealed interface Scheme permits Normal, Constant {}

    /** Gaussian with mean 0 and the given standard deviation. */
    public record Normal(double std) implements Scheme {}

    /** Every element the same value (norm weights start at 1). */
    public record Constant(float value) implements Scheme {}

    public static Scheme normal(double std) {
        return new Normal(std);
    }

    public static Scheme constant(float value) {
        return new Constant(value);
    }

    /** Fills {@code t} (contiguous f32) with elements [firstIndex, firstIndex + numel) of parameter {@code fqn}. */
    public static void fill(Tensor t, Scheme scheme, long seed, String fqn, long firstIndex) {
        fillRun(t.data(), 0, t.numel(), scheme, seed, fqn, firstIndex);
    }

    /**
     * Fills {@code t}, the local block of parameter {@code fqn} that {@code place} describes, with
     * exactly the values those elements have in the whole parameter.
     */
    public static void fill(Tensor t, Scheme scheme, long seed, String fqn, Placement place) {
        if (!java.util.Arrays.equals(t.shape(), place.localShape()))
            throw new IllegalArgumentException(fqn + ": tensor of shape " + java.util.Arrays.toString(t.shape()) + " for " + place);
        if (place.isReplicated()) {
            fill(t, scheme, seed, fqn, 0);
            return;
        }
        int[] g = place.globalShape();
        int d = place.dim();
        long outer = 1, inner = 1;
        for (int i = 0; i < d; i++) outer *= g[i];
        for (int i = d + 1; i < g.length; i++) inner *= g[i];
        int rows = place.localShape()[d], start = place.offsets()[d];
        // the block is rows runs of inner elements per outer index; each run is contiguous in both
        MemorySegment seg = t.data();
        for (long o = 0; o < outer; o++)
            for (int r = 0; r < rows; r++)
                fillRun(seg, (o * rows + r) * inner, inner, scheme, seed, fqn, (o * g[d] + start + r) * inner);
    }

    private static void fillRun(MemorySegment seg, long at, long n, Scheme scheme, long seed, String fqn, long firstIndex) {
        switch (scheme) {
            case Constant c -> {
                for (long i = 0; i < n; i++) seg.setAtIndex(ValueLayout.JAVA_FLOAT, at + i, c.value());
            }
            case Normal nm -> {
                long key = mix(seed ^ fnv(fqn));
                for (long i = 0; i < n; i++) seg.setAtIndex(ValueLayout.JAVA_FLOAT, at + i, (float) (nm.std() * gaussian(key, firstIndex + i)));
            }
        }
    }

    /** A standard normal deviate that depends only on (key, index): Box–Muller over two counter hashes. */
    static double gaussian(long key, long index) {
        long a = mix(key + 0x9E3779B97F4A7C15L * (2 * index + 1));
        long b = mix(a ^ 0xD1B54A32D192ED03L);
        double u1 = ((a >>> 11) + 1) * 0x1.0p-53; // (0, 1]
        double u2 = (b >>> 11) * 0x1.0p-53;
        return StrictMath.sqrt(-2 * StrictMath.log(u1)) * StrictMath.cos(2 * Math.PI * u2);
    }

    /** SplitMix64's finaliser: a bijective, well-mixing 64-bit hash. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private static long fnv(String s) {
        long h = 0xcbf29ce484222325L;
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
            h ^= b & 0xff;
            h *= 0x100000001b3L;
        }
        return h;
    }
}
