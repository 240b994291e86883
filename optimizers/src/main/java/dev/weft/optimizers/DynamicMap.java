package dev.weft.optimizers;

import java.util.Arrays;

/**
 * The 8-bit dynamic quantisation map of Dettmers et al. (bitsandbytes' {@code create_dynamic_map}):
 * 256 sorted codes in [-1, 1] (signed) or [0, 1] (unsigned) spread over seven decades, denser
 * near zero, plus exact 0 and 1. A value normalised by its block's absolute maximum is stored as
 * the index of the nearest code. The reference computes the code midpoints in float32 with
 * torch.linspace; we compute them in double and round once, which can differ in the last bit.
 */
final class DynamicMap {
    static final float[] SIGNED = build(true), UNSIGNED = build(false);
    private static final Buckets SIGNED_BUCKETS = new Buckets(SIGNED), UNSIGNED_BUCKETS = new Buckets(UNSIGNED);

    private DynamicMap() {}

    /**
     * Where to start looking for x's code, by x's position in float order: bucket b holds the
     * index of the last code at or below the bucket's smallest value. Buckets are 2^16 floats wide
     * (0.4% of x around 0.5, finer than the codes' spacing), so a lookup scans a step or two
     * instead of a binary search's eight unpredictable branches.
     */
    private static final class Buckets {
        static final int SHIFT = 16;
        final float[] map;
        final int lowKey;
        final short[] start;

        Buckets(float[] map) {
            this.map = map;
            this.lowKey = key(map[0]);
            int count = (int) (((long) key(map[map.length - 1]) - lowKey) >>> SHIFT) + 1;
            start = new short[count];
            for (int b = 0, i = 0; b < count; b++) {
                float first = fromKey((int) (lowKey + ((long) b << SHIFT)));
                while (i + 1 < map.length && map[i + 1] <= first) i++;
                start[b] = (short) i;
            }
        }

        /** Index of the code nearest x, for map[0] < x < map[last]. */
        int nearest(float x) {
            int lo = start[(int) (((long) key(x) - lowKey) >>> SHIFT)];
            while (map[lo + 1] <= x) lo++;
            return x - map[lo] <= map[lo + 1] - x ? lo : lo + 1;
        }

        /** Floats as ints in the same order: negative floats have all but the sign bit flipped. */
        static int key(float x) {
            int b = Float.floatToRawIntBits(x);
            return b ^ ((b >> 31) & 0x7fffffff);
        }

        static float fromKey(int k) {
            return Float.intBitsToFloat(k ^ ((k >> 31) & 0x7fffffff));
        }
    }

    static float[] build(boolean signed) {
        double[] codes = new double[256];
        int k = 0;
        for (int i = 0; i < 7; i++) {
            int count = signed ? 1 << i : 1 << (i + 1);
            double scale = StrictMath.pow(10, -6 + i);
            for (int j = 0; j < count; j++) {
                // Midpoints of count equal intervals of [0.1, 1].
                double lo = 0.1 + 0.9 * j / count, hi = 0.1 + 0.9 * (j + 1) / count;
                double mean = (lo + hi) / 2;
                codes[k++] = scale * mean;
                if (signed) codes[k++] = -scale * mean;
            }
        }
        codes[k++] = 0;
        codes[k++] = 1;
        if (k != 256) throw new AssertionError("dynamic map has " + k + " codes");
        Arrays.sort(codes);
        float[] out = new float[256];
        for (int i = 0; i < 256; i++) out[i] = (float) codes[i];
        return out;
    }

    /** Index of the code nearest to x (ties go to the smaller code); {@code map} is SIGNED or UNSIGNED. */
    static int quantize(float[] map, float x) {
        int last = map.length - 1;
        if (x <= map[0]) return 0;
        if (x >= map[last]) return last;
        if (Float.isNaN(x)) return bisect(map, x);
        if (map == SIGNED) return SIGNED_BUCKETS.nearest(x);
        if (map == UNSIGNED) return UNSIGNED_BUCKETS.nearest(x);
        return bisect(map, x);
    }

    /** {@link #quantize} by binary search, for any sorted map (and the test's cross-check). */
    static int bisect(float[] map, float x) {
        int lo = 0, hi = map.length - 1;
        if (x <= map[lo]) return lo;
        if (x >= map[hi]) return hi;
        while (hi - lo > 1) {
            int mid = (lo + hi) >>> 1;
            if (map[mid] <= x) lo = mid;
            else hi = mid;
        }
        return x - map[lo] <= map[hi] - x ? lo : hi;
    }
}
