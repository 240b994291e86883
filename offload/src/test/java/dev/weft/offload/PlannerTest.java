package dev.weft.offload;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The planner's search on figures given by hand (the trainer's probes measure real ones). */
class PlannerTest {
    private static final long MIB = 1 << 20;

    /** 4 layers; each layer keeps 10 MiB, 6 MiB selective, 1 MiB full or offloaded; recompute and offload cost time. */
    private static Planner.Measurements figures() {
        return new Planner.Measurements(4, 2, 8 * MIB, 8 * MIB, 16 * MIB,
                Map.of(LayerPolicy.KEEP, 10 * MIB, LayerPolicy.SELECTIVE, 6 * MIB, LayerPolicy.FULL, MIB, LayerPolicy.HOST, MIB, LayerPolicy.DISK, MIB),
                Map.of(LayerPolicy.KEEP, 4 * MIB, LayerPolicy.SELECTIVE, 5 * MIB, LayerPolicy.FULL, 9 * MIB, LayerPolicy.HOST, 20 * MIB, LayerPolicy.DISK, 20 * MIB),
                Map.of(LayerPolicy.KEEP, 1.0, LayerPolicy.SELECTIVE, 1.1, LayerPolicy.FULL, 1.3, LayerPolicy.HOST, 1.2, LayerPolicy.DISK, 2.0), 0.5,
                Map.of(Tier.DEVICE, new Planner.OptimizerStep(0, 0.1), Tier.HOST, new Planner.OptimizerStep(2 * MIB, 0.3),
                        Tier.DISK, new Planner.OptimizerStep(2 * MIB, 1.0)));
    }

    @Test
    void anAmpleBudgetKeepsEverything() {
        Planner.Plan p = Planner.best(figures(), 1 << 30);
        assertEquals(List.of(LayerPolicy.KEEP, LayerPolicy.KEEP, LayerPolicy.KEEP, LayerPolicy.KEEP), p.layers());
        assertEquals(Tier.DEVICE, p.optimizer());
        assertEquals(Planner.none(figures()), p);
        // weights 8 + grads 8 + state 16 + 4 layers x 10 + transient 4
        assertEquals(76 * MIB, p.peakBytes());
        assertEquals(2 * (0.5 + 4) + 0.1, p.stepSeconds(), 1e-12);
    }

    @Test
    void aTighterBudgetTakesTheCheapestSavingsFirst() {
        // 62 MiB: moving the optimizer state to host (saves 16 MiB for 0.2 s) beats any recompute that saves as much
        Planner.Plan p = Planner.best(figures(), 62 * MIB);
        assertTrue(p.peakBytes() <= 62 * MIB);
        assertEquals(Tier.HOST, p.optimizer(), p.describe());
        for (Planner.Plan q : Planner.all(figures()))
            if (q.peakBytes() <= 62 * MIB) assertTrue(q.stepSeconds() >= p.stepSeconds() - 1e-12, q.describe() + " is faster than the choice " + p.describe());
    }

    @Test
    void anImpossibleBudgetSaysTheSmallestThatWorks() {
        Planner.NoPlanException e = assertThrows(Planner.NoPlanException.class, () -> Planner.best(figures(), 10 * MIB));
        // smallest: weights 8 + grads 8 + no state + 4 x 1 + transient 9 (full everywhere) = 29 MiB
        assertEquals(29 * MIB, e.smallestBytes());
        assertTrue(e.getMessage().contains("the smallest that works is 29 MiB") && e.getMessage().contains("at least 29"), e.getMessage());
        assertTrue(!e.getMessage().contains("\n"));
    }

    @Test
    void configWordsAndDescription() {
        Planner.Plan p = Planner.cost(figures(), List.of(LayerPolicy.DISK, LayerPolicy.FULL, LayerPolicy.FULL, LayerPolicy.KEEP), Tier.HOST);
        assertEquals(List.of("none", "full", "full", "none"), p.recompute());
        assertEquals(List.of("disk", "none", "none", "none"), p.activations());
        assertEquals("layer 0 offload to disk, layers 1-2 recompute full, layer 3 keep; optimizer state on host", p.describe());
        assertThrows(IllegalArgumentException.class, () -> LayerPolicy.of("full", "host"));
    }
}
