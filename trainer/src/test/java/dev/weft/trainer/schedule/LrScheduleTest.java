package dev.weft.trainer.schedule;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class LrScheduleTest {
    private static final double EPS = 1e-12;

    @Test
    void warmupIsLinearAndReachesPeakOnItsLastStep() {
        LrSchedule s = LrSchedule.warmupCosine(1e-3, 1e-4, 10, 110);
        assertEquals(1e-4, s.lr(0), EPS);          // peak / warmup on the first step
        assertEquals(5e-4, s.lr(4), EPS);
        assertEquals(1e-3, s.lr(9), EPS);          // last warmup step
        assertEquals(1e-3, s.lr(10), EPS);         // cosine starts at the peak
    }

    @Test
    void cosineDecaysToMinAtTotalStepsThenStaysThere() {
        LrSchedule s = LrSchedule.warmupCosine(1e-3, 1e-4, 10, 110);
        assertEquals(1e-4 + 0.9e-3 * 0.5, s.lr(60), EPS);                                    // halfway
        assertEquals(1e-4 + 0.9e-3 * 0.5 * (1 + Math.cos(Math.PI / 4)), s.lr(35), EPS);     // a quarter of the way
        assertEquals(1e-4, s.lr(110), EPS);
        assertEquals(1e-4, s.lr(1_000_000), EPS);
        for (long t = 10; t < 110; t++) assertTrue(s.lr(t + 1) <= s.lr(t), "non-increasing after warmup at " + t);
    }

    @Test
    void noWarmupAndWarmupToTheEnd() {
        LrSchedule noWarmup = LrSchedule.warmupCosine(2.0, 0.0, 0, 4);
        assertEquals(2.0, noWarmup.lr(0), EPS);
        assertEquals(1.0, noWarmup.lr(2), EPS);
        assertEquals(0.0, noWarmup.lr(4), EPS);

        LrSchedule allWarmup = LrSchedule.warmupCosine(2.0, 0.5, 4, 4);
        assertEquals(0.5, allWarmup.lr(0), EPS);
        assertEquals(2.0, allWarmup.lr(3), EPS);
        assertEquals(0.5, allWarmup.lr(4), EPS);
    }

    /** A trial run shorter than its config's warmup: the warmup is clamped to the run, not refused. */
    @Test
    void aWarmupLongerThanTheRunIsTheWholeRun() {
        LrSchedule s = LrSchedule.warmupCosine(2.0, 0.5, 20, 4);
        assertEquals(LrSchedule.warmupCosine(2.0, 0.5, 4, 4).toString(), s.toString());
        assertEquals(0.5, s.lr(0), EPS);
        assertEquals(2.0, s.lr(3), EPS);
        assertEquals(0.5, s.lr(4), EPS);
    }

    @Test
    void constant() {
        LrSchedule c = LrSchedule.constant(3e-4);
        assertEquals(3e-4, c.lr(0));
        assertEquals(3e-4, c.lr(123_456));
        assertEquals("constant(3.0E-4)", c.toString());
    }

    @Test
    void rejectsBadArgumentsWithClearMessages() {
        assertMessage("peakLr must be a finite number > 0, got 0.0", () -> LrSchedule.warmupCosine(0, 0, 0, 10));
        assertMessage("peakLr must be a finite number > 0, got NaN", () -> LrSchedule.warmupCosine(Double.NaN, 0, 0, 10));
        assertMessage("minLr must be in [0, peakLr=0.001], got 0.01", () -> LrSchedule.warmupCosine(1e-3, 1e-2, 0, 10));
        assertMessage("minLr must be in [0, peakLr=0.001], got -1.0", () -> LrSchedule.warmupCosine(1e-3, -1, 0, 10));
        assertMessage("warmupSteps must be >= 0, got -1", () -> LrSchedule.warmupCosine(1e-3, 0, -1, 10));
        assertMessage("totalSteps must be >= 1, got 0", () -> LrSchedule.warmupCosine(1e-3, 0, 0, 0));
        assertMessage("learning rate must be a finite number >= 0, got Infinity", () -> LrSchedule.constant(Double.POSITIVE_INFINITY));
        assertMessage("step must be >= 0, got -1", () -> LrSchedule.warmupCosine(1e-3, 0, 0, 10).lr(-1));
        assertMessage("step must be >= 0, got -5", () -> LrSchedule.constant(1).lr(-5));
    }

    private static void assertMessage(String expected, Runnable r) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        assertEquals(expected, e.getMessage());
    }
}
