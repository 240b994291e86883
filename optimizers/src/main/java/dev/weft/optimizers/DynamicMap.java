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

    private DynamicMap() {}

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

    /** Index of the code nearest to x (ties go to the smaller code). */
    static int quantize(float[] map, float x) {
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
