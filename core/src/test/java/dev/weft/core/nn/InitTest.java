package dev.weft.core.nn;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class InitTest {
    @Test
    void aSliceInitialisedAloneEqualsTheSameSliceOfTheWhole() {
        try (Scope s = Scope.open()) {
            Tensor whole = Tensor.empty(64, 48);
            Init.fill(whole, Init.normal(0.02), 42, "model.layers.3.mlp.up_proj.weight", 0);
            // rows 16..31 as a tensor-parallel rank would hold them
            Tensor slice = Tensor.empty(16, 48);
            Init.fill(slice, Init.normal(0.02), 42, "model.layers.3.mlp.up_proj.weight", 16L * 48);
            assertArrayEquals(whole.narrow(0, 16, 16).toArray(), slice.toArray());
        }
    }

    @Test
    void valuesDependOnSeedAndNameAndLookGaussian() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.empty(20000), b = Tensor.empty(20000), c = Tensor.empty(20000);
            Init.fill(a, Init.normal(1), 1, "x", 0);
            Init.fill(b, Init.normal(1), 2, "x", 0);
            Init.fill(c, Init.normal(1), 1, "y", 0);
            float[] av = a.toArray();
            assertNotEquals(av[0], b.toArray()[0]);
            assertNotEquals(av[0], c.toArray()[0]);
            double mean = 0, var = 0;
            for (float v : av) mean += v;
            mean /= av.length;
            for (float v : av) var += (v - mean) * (v - mean);
            var /= av.length;
            assertEquals(0, mean, 0.03);
            assertEquals(1, var, 0.05);
        }
    }
}
