package dev.weft.parallel.pipeline;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class ScheduleSimulatorTest {
    private static final int[] PS = {1, 2, 3, 4, 6};

    /** With F = B, no W and free transfers, GPipe and 1F1B leave (p-1)/(m+p-1) of the rank-time idle. */
    @Test
    void gpipeAndOneFOneBBubbleIsTheTextbookFormula() {
        Costs equal = Costs.of(1, 1, 0, 0);
        for (int p : PS) {
            for (int m : new int[] {p, p + 1, 2 * p, 8, 16}) {
                double theory = (p - 1.0) / (m + p - 1);
                for (Schedule s : new Schedule[] {Schedules.gpipe(p, m), Schedules.oneFOneB(p, m)}) {
                    var sim = ScheduleSimulator.simulate(s, equal);
                    assertEquals(theory, sim.bubbleFraction(), 1e-9, s.name() + " p=" + p + " m=" + m);
                    assertEquals((m + p - 1) * 2.0, sim.makespan(), 1e-9, s.name() + " p=" + p + " m=" + m);
                }
            }
        }
    }

    /**
     * ZB-H1 with F = B = W: 1F1B idles (p-1)(F+B+W) per rank, ZB-H1 (p-1)(F+B-W), a third; the
     * replay gives exactly (p-1)/(3m+p-1).
     */
    @Test
    void zbh1BubbleIsAThirdOfOneFOneBs() {
        Costs split = Costs.of(1, 1, 1, 0);
        for (int p : PS) {
            for (int m : new int[] {p, p + 1, 2 * p, 8, 16}) {
                var zb = ScheduleSimulator.simulate(Schedules.zbh1(p, m), split);
                var ofob = ScheduleSimulator.simulate(Schedules.oneFOneB(p, m), split);
                String where = "p=" + p + " m=" + m;
                assertEquals((p - 1.0) / (3 * m + p - 1), zb.bubbleFraction(), 1e-9, where);
                double zbIdle = zb.makespan() * p - zb.totalBusy(), ofobIdle = ofob.makespan() * p - ofob.totalBusy();
                assertEquals(ofobIdle / 3, zbIdle, 1e-9, where);
                if (p > 1) assertTrue(zb.bubbleFraction() < ofob.bubbleFraction(), where);
            }
        }
    }

    /** Interleaving v chunks per rank (each 1/v of the work) cuts the bubble to (p-1)/(vm+p-1). */
    @Test
    void interleavedBubbleIsSmallerThanOneFOneBs() {
        for (int p : new int[] {2, 3, 4}) {
            for (int m : new int[] {p, 2 * p, 4 * p}) {
                var ofob = ScheduleSimulator.simulate(Schedules.oneFOneB(p, m), Costs.of(1, 2, 0, 0));
                var inter = ScheduleSimulator.simulate(Schedules.interleaved1F1B(p, m, 2), Costs.of(0.5, 1, 0, 0));
                String where = "p=" + p + " m=" + m;
                assertTrue(inter.bubbleFraction() < ofob.bubbleFraction(), where);
                assertEquals((p - 1.0) / (2 * m + p - 1), inter.bubbleFraction(), 1e-9, where);
            }
        }
    }

    @Test
    void peakLiveActivationsArePForOneFOneBAndMForGPipe() {
        Costs c = Costs.of(1, 1, 1, 0).withBytes(1000, 300);
        for (int p : new int[] {2, 3, 4}) {
            for (int m : new int[] {p, 2 * p, 8}) {
                String where = "p=" + p + " m=" + m;
                var ofob = ScheduleSimulator.simulate(Schedules.oneFOneB(p, m), c);
                var gpipe = ScheduleSimulator.simulate(Schedules.gpipe(p, m), c);
                var zb = ScheduleSimulator.simulate(Schedules.zbh1(p, m), c);
                assertEquals(p, ofob.rank(0).peakLiveActivations(), where);
                assertEquals(p * 1000L, ofob.rank(0).peakBytes(), where);
                for (int r = 0; r < p; r++) {
                    assertEquals(p - r, ofob.rank(r).peakLiveActivations(), where + " 1f1b rank " + r);
                    assertEquals(m, gpipe.rank(r).peakLiveActivations(), where + " gpipe rank " + r);
                    // ZB-H1: the same p micro-batches in flight on every rank as 1F1B holds on its first
                    assertEquals(p, zb.rank(r).peakInFlight(), where + " zbh1 rank " + r);
                    assertEquals(p - r, zb.rank(r).peakLiveActivations(), where + " zbh1 rank " + r);
                    // r held W's, plus, for a moment, the micro-batch whose B just ran before the oldest W
                    assertEquals(r == 0 ? 0 : r + 1, zb.rank(r).peakHeldForWeights(), where + " zbh1 rank " + r);
                }
            }
        }
    }

    /** A transfer delays the receiver only: GPipe's fill and drain each cross p-1 links. */
    @Test
    void transferLatencyLengthensTheFillAndDrain() {
        for (int p : new int[] {2, 4}) {
            var sim = ScheduleSimulator.simulate(Schedules.gpipe(p, 8), Costs.of(1, 2, 0, 0.25));
            assertEquals(8 * 3 + (p - 1) * (3 + 2 * 0.25), sim.makespan(), 1e-9, "p=" + p);
            assertEquals(8 * 3.0 * p, sim.totalBusy(), 1e-9, "transfers cost the sender nothing");
        }
    }

    /**
     * GPipe over two stages, the second twice as slow (F = B = 2 against 1), two micro-batches: stage 1
     * runs F0 1-3, F1 3-5, B0 5-7, B1 7-9; stage 0's B0 waits for B0@1 (7-8) and B1 for B1@1 (9-10).
     */
    @Test
    void perStageCostsChargeEachStageItsOwn() {
        var sim = ScheduleSimulator.simulate(Schedules.gpipe(2, 2), java.util.List.of(Costs.of(1, 1, 0, 0), Costs.of(2, 2, 0, 0)));
        assertEquals(10, sim.makespan(), 1e-9);
        assertEquals(4, sim.rank(0).busy(), 1e-9);
        assertEquals(8, sim.rank(1).busy(), 1e-9);
        assertEquals(0.4, sim.bubbleFraction(), 1e-9);
        // interleaved: each rank holds two stages, each priced by its own bytes
        var inter = ScheduleSimulator.simulate(Schedules.interleaved1F1B(2, 4, 2),
                java.util.List.of(Costs.of(1, 1, 0, 0).withBytes(100, 0), Costs.of(1, 1, 0, 0).withBytes(100, 0),
                        Costs.of(1, 1, 0, 0).withBytes(10, 0), Costs.of(1, 1, 0, 0).withBytes(10, 0)));
        var uniform = ScheduleSimulator.simulate(Schedules.interleaved1F1B(2, 4, 2), Costs.of(1, 1, 0, 0).withBytes(100, 0));
        assertEquals(uniform.makespan(), inter.makespan(), 1e-9, "equal times: the same replay");
        assertTrue(inter.rank(0).peakBytes() < uniform.rank(0).peakBytes(), "stage 2's activations priced at its own 10 B");
        assertThrows(IllegalArgumentException.class, () -> ScheduleSimulator.simulate(Schedules.gpipe(2, 2), java.util.List.of(Costs.of(1, 1, 0, 0))));
    }

    /** Each computation's own time: one slow backward on stage 1 holds up stage 0's. */
    @Test
    void aReplayOfEachActionsOwnTimeChargesEachItsOwn() {
        Schedule s = Schedules.gpipe(2, 2);
        var own = ScheduleSimulator.simulate(s, a -> a.equals(Action.backward(0, 1)) ? 5.0 : 1.0, 0);
        // stage 1: F0 1-2, F1 2-3, B0 3-8, B1 8-9; stage 0: B0 8-9, B1 9-10
        assertEquals(10, own.makespan(), 1e-9);
        assertEquals(4, own.rank(0).busy(), 1e-9);
        assertEquals(8, own.rank(1).busy(), 1e-9);
        assertEquals(10 + 2 * 0.5, ScheduleSimulator.simulate(s, a -> a.equals(Action.backward(0, 1)) ? 5.0 : 1.0, 0.5).makespan(), 1e-9,
                "the activation and the gradient each cross once on the critical path");
        assertThrows(IllegalArgumentException.class, () -> ScheduleSimulator.simulate(s, a -> -1.0, 0));
    }

    @Test
    void anUnsoundScheduleIsNotReplayed() {
        Schedule s = Schedules.gpipe(2, 2);
        var broken = new Schedule(2, 2, 2, "dropped", java.util.List.of(s.actions(0), s.actions(1).subList(1, s.actions(1).size())));
        var e = assertThrows(IllegalArgumentException.class, () -> ScheduleSimulator.simulate(broken, Costs.of(1, 1, 1, 0)));
        assertTrue(e.getMessage().contains("rule"), e.getMessage());
    }
}
