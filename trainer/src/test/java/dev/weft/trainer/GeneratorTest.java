package dev.weft.trainer;

import dev.weft.core.model.Llama;
import dev.weft.core.model.LlamaConfig;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class GeneratorTest {
    private final Generator g = new Generator(new Llama(new LlamaConfig(1, 16, 2, 2, 16, 12, 8, 10000f, 1e-5f, true, 0.02), 1), 9);

    @Test
    void greedyAndTopOnePickTheLargestLogit() {
        float[] logits = {0.1f, 2f, -1f, 1.9f};
        assertEquals(1, g.pick(logits, 0, 0));
        for (int i = 0; i < 50; i++) assertEquals(1, g.pick(logits, 1.0, 1));
    }

    @Test
    void topKNeverSamplesOutsideTheKMostLikely() {
        float[] logits = {5f, 4.9f, 0f, 0f, 0f, 0f, 4.8f};
        int[] counts = new int[logits.length];
        for (int i = 0; i < 3000; i++) counts[g.pick(logits, 2.0, 3)]++;
        assertEquals(0, counts[2] + counts[3] + counts[4] + counts[5]);
        assertTrue(counts[0] > 0 && counts[1] > 0 && counts[6] > 0);
    }

    @Test
    void temperatureSharpensTheDistribution() {
        float[] logits = {1f, 0f};
        int hot = 0, cold = 0;
        for (int i = 0; i < 4000; i++) {
            if (g.pick(logits, 2.0, 0) == 0) hot++;
            if (g.pick(logits, 0.25, 0) == 0) cold++;
        }
        // p(0) = sigmoid(1/T): 0.62 at T=2, 0.98 at T=0.25
        assertEquals(0.62, hot / 4000.0, 0.04);
        assertEquals(0.98, cold / 4000.0, 0.02);
    }

    @Test
    void generatesTheRequestedNumberOfTokensPastTheContextWindow() {
        int[] out = g.generate(new int[] {1, 2, 3}, 12, 0.8, 5);
        assertEquals(12, out.length);
        for (int t : out) assertTrue(t >= 0 && t < 12);
        assertThrows(IllegalArgumentException.class, () -> g.generate(new int[0], 3, 1, 0));
    }
}
