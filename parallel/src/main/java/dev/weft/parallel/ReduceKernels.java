package dev.weft.parallel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The elementwise reductions of the collectives, written with the Vector API. They run on the
 * calling thread only: a rank shares its cores with the other ranks on the node, so spreading a
 * reduction over a pool would only steal from them. Offsets are in bytes, counts in floats.
 */
final class ReduceKernels {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private ReduceKernels() {}

    /** {@code dst = a (op) b}; AVG combines as a sum (the caller divides once at the end). dst may alias a or b. */
    static void combine(ReduceOp op, MemorySegment a, long aOff, MemorySegment b, long bOff, MemorySegment dst, long dOff, long count) {
        long i = 0;
        long bound = count - count % LANES;
        switch (op) {
            case SUM, AVG -> {
                for (; i < bound; i += LANES) load(a, aOff, i).add(load(b, bOff, i)).intoMemorySegment(dst, dOff + i * 4, ORDER);
                for (; i < count; i++) put(dst, dOff, i, get(a, aOff, i) + get(b, bOff, i));
            }
            case MAX -> {
                for (; i < bound; i += LANES) load(a, aOff, i).max(load(b, bOff, i)).intoMemorySegment(dst, dOff + i * 4, ORDER);
                for (; i < count; i++) put(dst, dOff, i, Math.max(get(a, aOff, i), get(b, bOff, i)));
            }
            case MIN -> {
                for (; i < bound; i += LANES) load(a, aOff, i).min(load(b, bOff, i)).intoMemorySegment(dst, dOff + i * 4, ORDER);
                for (; i < count; i++) put(dst, dOff, i, Math.min(get(a, aOff, i), get(b, bOff, i)));
            }
        }
    }

    /** {@code x[i] /= n}: the last step of an average (a division, not a multiply by 1/n, so it equals sum/n exactly rounded). */
    static void divide(MemorySegment x, long off, long count, int n) {
        long i = 0;
        long bound = count - count % LANES;
        float d = n;
        for (; i < bound; i += LANES) load(x, off, i).div(d).intoMemorySegment(x, off + i * 4, ORDER);
        for (; i < count; i++) put(x, off, i, get(x, off, i) / d);
    }

    private static FloatVector load(MemorySegment s, long off, long i) {
        return FloatVector.fromMemorySegment(SPECIES, s, off + i * 4, ORDER);
    }

    private static float get(MemorySegment s, long off, long i) {
        return s.get(F, off + i * 4);
    }

    private static void put(MemorySegment s, long off, long i, float v) {
        s.set(F, off + i * 4, v);
    }
}
