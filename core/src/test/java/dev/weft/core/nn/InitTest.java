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

    @Test
    void everyBlockOfAPlacementHoldsTheWholesValues() {
        try (Scope s = Scope.open()) {
            String fqn = "model.layers.1.self_attn.o_proj.weight";
            int[] shape = {6, 8, 4};
            Tensor whole = Tensor.empty(shape);
            Init.fill(whole, Init.normal(0.02), 7, fqn, Placement.replicated(shape));
            float[] w = whole.toArray();
            for (int dim = 0; dim < 3; dim++) {
                for (int parts : new int[] {1, 2}) {
                    for (int index = 0; index < parts; index++) {
                        Placement p = Placement.sharded(shape, dim, "tp", index, parts);
                        Tensor block = Tensor.empty(p.localShape());
                        Init.fill(block, Init.normal(0.02), 7, fqn, p);
                        float[] b = block.toArray();
                        int[] ls = p.localShape(), off = p.offsets();
                        int k = 0;
                        for (int i = 0; i < ls[0]; i++)
                            for (int j = 0; j < ls[1]; j++)
                                for (int l = 0; l < ls[2]; l++, k++) {
                                    int gi = ((i + off[0]) * shape[1] + (j + off[1])) * shape[2] + (l + off[2]);
                                    assertEquals(w[gi], b[k], 0f, p + " at (" + i + ", " + j + ", " + l + ")");
                                }
                    }
                }
            }
            assertThrows(IllegalArgumentException.class, () -> Placement.sharded(shape, 2, "tp", 0, 3), "4 does not split into 3");
        }
    }

    @Test
    void aModelsParametersKnowTheirPlace() {
        dev.weft.core.model.Llama m = new dev.weft.core.model.Llama(new dev.weft.core.model.LlamaConfig(1, 16, 2, 2, 32, 64, 8, 10000f, 1e-5f, false, 0.02), 3);
        try {
            var places = m.namedPlacements();
            assertEquals(m.namedParameters().keySet(), places.keySet());
            assertArrayEquals(new int[] {64, 16}, places.get("model.embed_tokens.weight").globalShape());
            assertTrue(places.values().stream().allMatch(Placement::isReplicated), "one process holds everything whole");
        } finally {
            m.close();
        }
    }
}
