package dev.weft.offload;

import org.junit.jupiter.api.Test;

import java.util.Collections;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The planner's search and its replay of a micro-batch, on figures given by hand (the trainer's probes measure real ones). */
class PlannerTest {
    private static final long MIB = 1 << 20;

    private static Planner.LayerMemory mem(long kept, long forward, long backward, long freed, long restored) {
        return new Planner.LayerMemory(kept * MIB, forward * MIB, backward * MIB, freed * MIB, restored * MIB);
    }

    /**
     * 4 layers. Keeping holds 10 MiB a layer; selective 6 (4 of them freed after its backward);
     * full and offload 1 (the input). Offload brings 9 MiB back for a backward.
     */
    private static Planner.Measurements figures() {
        return new Planner.Measurements(4, 2, 8 * MIB, 8 * MIB, 16 * MIB,
                Map.of(LayerPolicy.KEEP, mem(10, 2, 3, 0, 0), LayerPolicy.SELECTIVE, mem(6, 2, 5, 5, 0), LayerPolicy.FULL, mem(1, 2, 9, 0, 0),
                        LayerPolicy.HOST, mem(1, 2, 3, 0, 9), LayerPolicy.DISK, mem(1, 2, 3, 0, 9)), 0, 4 * MIB, 0, 5 * MIB,
                Map.of(LayerPolicy.KEEP, 1.0, LayerPolicy.SELECTIVE, 1.1, LayerPolicy.FULL, 1.3, LayerPolicy.HOST, 1.2, LayerPolicy.DISK, 2.0), 0.5,
                Map.of(Tier.DEVICE, new Planner.OptimizerStep(0, 0.1), Tier.HOST, new Planner.OptimizerStep(2 * MIB, 0.3),
                        Tier.DISK, new Planner.OptimizerStep(2 * MIB, 1.0)));
    }

    @Test
    void anAmpleBudgetKeepsEverything() {
        Planner.Plan p = Planner.best(figures(), 1 << 30);
        assertEquals(Collections.nCopies(4, LayerPolicy.KEEP), p.layers());
        assertEquals(Tier.DEVICE, p.optimizer());
        assertEquals(Planner.none(figures()), p);
        // weights 8 + grads 8 + state 16 + 4 layers x 10 + the root's 4 (above the last layer's backward 3)
        assertEquals(76 * MIB, p.peakBytes());
        assertEquals(2 * (0.5 + 4) + 0.1, p.stepSeconds(), 1e-12);
    }

    /** The replay, by hand: offloading layers bring their bytes back, and one prefetches the layer before when it offloads too. */
    @Test
    void theReplayFollowsTheMicroBatch() {
        Planner.Measurements m = figures();
        // [host, host, full, full]: forward 4 kept; root 4 + 4 = 8; layer 3 full 4 + 9 = 13, layer 2 the same;
        // layer 1 host: +9 own, +9 prefetch of layer 0 -> 22, + 3 = 25; layer 0: its bytes are back, 22 - 9 = 13 + 3 = 16
        assertEquals(32 + 25, Planner.cost(m, List.of(LayerPolicy.HOST, LayerPolicy.HOST, LayerPolicy.FULL, LayerPolicy.FULL), Tier.DEVICE).peakBytes() / MIB);
        // [host, full, full, full]: layer 0 alone brings 9 back: 4 + 9 + 3 = 16 > the full layers' 13
        assertEquals(32 + 16, Planner.cost(m, List.of(LayerPolicy.HOST, LayerPolicy.FULL, LayerPolicy.FULL, LayerPolicy.FULL), Tier.DEVICE).peakBytes() / MIB);
        // selective frees 5 after each backward: 4 x 6 = 24 kept; root 28; layer 3: 24 + 5 = 29, then 19 + 5, ...
        assertEquals(32 + 29, Planner.cost(m, Collections.nCopies(4, LayerPolicy.SELECTIVE), Tier.DEVICE).peakBytes() / MIB);
        // the optimizer step's phase dominates when the activations are small: state on host, 2 MiB streamed, but full recompute's 13 above it
        assertEquals(16 + 13, Planner.cost(m, Collections.nCopies(4, LayerPolicy.FULL), Tier.HOST).peakBytes() / MIB);
    }

    @Test
    void aTighterBudgetTakesTheCheapestSavingsFirst() {
        Planner.Plan p = Planner.best(figures(), 62 * MIB);
        assertTrue(p.peakBytes() <= 62 * MIB);
        for (Planner.Plan q : Planner.all(figures()))
            if (q.peakBytes() <= 62 * MIB) assertTrue(q.stepSeconds() >= p.stepSeconds() - 1e-12, q.describe() + " is faster than the choice " + p.describe());
    }

    @Test
    void anImpossibleBudgetSaysTheSmallestThatWorks() {
        Planner.NoPlanException e = assertThrows(Planner.NoPlanException.class, () -> Planner.best(figures(), 10 * MIB));
        long smallest = Long.MAX_VALUE;
        for (Planner.Plan q : Planner.all(figures())) smallest = Math.min(smallest, q.peakBytes());
        assertEquals(smallest, e.smallestBytes());
        long mib = (smallest + MIB - 1) / MIB;
        assertTrue(e.getMessage().contains("the smallest that works is " + mib + " MiB") && e.getMessage().contains("at least " + mib), e.getMessage());
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
