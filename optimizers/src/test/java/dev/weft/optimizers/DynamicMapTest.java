package dev.weft.optimizers;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The bucketed code lookup gives exactly the binary search's answer, ties and edges included. */
class DynamicMapTest {
    @Test
    void bucketLookupEqualsBinarySearch() {
        for (float[] map : new float[][] {DynamicMap.SIGNED, DynamicMap.UNSIGNED}) {
            SplittableRandom rnd = new SplittableRandom(3);
            for (int i = 0; i < 2_000_000; i++) {
                // uniform, and log-uniform over the map's seven decades, both signs
                float x = i % 2 == 0 ? (float) (rnd.nextDouble() * 2.2 - 1.1)
                        : (float) ((rnd.nextBoolean() ? 1 : -1) * StrictMath.pow(10, -9 + 9.2 * rnd.nextDouble()));
                assertEquals(DynamicMap.bisect(map, x), DynamicMap.quantize(map, x), "x = " + x);
            }
            for (int i = 0; i < map.length; i++) {
                float c = map[i];
                assertEquals(i, DynamicMap.quantize(map, c), "code " + i);
                for (float x : new float[] {Math.nextUp(c), Math.nextDown(c)})
                    assertEquals(DynamicMap.bisect(map, x), DynamicMap.quantize(map, x), "x = " + x);
                if (i + 1 < map.length) {
                    float mid = (c + map[i + 1]) / 2; // a tie (or the float nearest one) goes to the smaller code
                    assertEquals(DynamicMap.bisect(map, mid), DynamicMap.quantize(map, mid), "midpoint " + mid);
                }
            }
            for (float x : new float[] {0f, -0f, Float.MIN_VALUE, -Float.MIN_VALUE, 1f, -1f, 2f, -2f, Float.NaN})
                assertEquals(DynamicMap.bisect(map, x), DynamicMap.quantize(map, x), "x = " + x);
        }
    }
}
