package dev.weft.trainer.metrics;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class ProgressBarTest {
    /** A clock the test moves by hand. */
    static final class FakeClock {
        long nanos = 1_000_000_000L;

        void advanceSeconds(double s) {
            nanos += (long) (s * 1e9);
        }
    }

    private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    private final PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
    private final FakeClock clock = new FakeClock();

    private String output() {
        return bytes.toString(StandardCharsets.UTF_8);
    }

    private List<String> lines() {
        return Arrays.stream(output().split("\n")).filter(l -> !l.isEmpty()).toList();
    }

    @Test
    void rendersTheDocumentedFormat() {
        assertEquals("step 120/2000 [#...................] 6% loss 2.3456 | 41.2k tok/s | ETA 3m12s",
                ProgressBar.render(120, 2000, 2.34561, 41_234, 192));
        assertEquals("step 0/10 [....................] 0% loss NaN | -- tok/s | ETA --",
                ProgressBar.render(0, 10, Double.NaN, Double.NaN, Double.NaN));
        assertEquals("step 10/10 [####################] 100% loss 0.1000 | 999 tok/s | ETA 0s",
                ProgressBar.render(10, 10, 0.1, 999.4, 0));
        assertEquals("step 5/10 [##########..........] 50% loss 1.0000 | 1.50M tok/s | ETA 1h05m",
                ProgressBar.render(5, 10, 1, 1.5e6, 3900));
    }

    @Test
    void formatsRatesAndDurations() {
        assertEquals("0", ProgressBar.rate(0));
        assertEquals("1.0k", ProgressBar.rate(999.6));
        assertEquals("41.2k", ProgressBar.rate(41_200));
        assertEquals("1.00M", ProgressBar.rate(999_990));
        assertEquals("2.10G", ProgressBar.rate(2.1e9));
        assertEquals("--", ProgressBar.rate(-1));
        assertEquals("59s", ProgressBar.duration(59.4));
        assertEquals("1m00s", ProgressBar.duration(59.6));
        assertEquals("3m12s", ProgressBar.duration(192));
        assertEquals("2h00m", ProgressBar.duration(7199));
        assertEquals("2d03h", ProgressBar.duration(2 * 86400 + 3 * 3600));
        assertEquals("--", ProgressBar.duration(Double.POSITIVE_INFINITY));
    }

    @Test
    void etaComesFromTheSmoothedStepTimeAndIgnoresTheFirstStep() {
        ProgressBar bar = new ProgressBar(out, 100, false, () -> clock.nanos, 1e9);
        clock.advanceSeconds(50);      // a slow first step (warm-up) before the first update
        bar.update(1, 3.0, 1000);      // starts the clock; no rate yet
        assertTrue(lines().getLast().endsWith("ETA --"), output());
        for (int s = 2; s <= 10; s++) {
            clock.advanceSeconds(2);   // steady 2 s per step
            bar.update(s, 3.0, 1000);
        }
        // 90 steps left at 2 s each; the 50 s warm-up does not count
        assertTrue(lines().getLast().startsWith("step 10/100 [##..................] 10%"), output());
        assertTrue(lines().getLast().endsWith("ETA 3m00s"), output());
    }

    @Test
    void smoothingFollowsAChangeInSpeedGradually() {
        ProgressBar bar = new ProgressBar(out, 1000, false, () -> clock.nanos, 1e9);
        bar.update(0, 1, 1);
        for (int s = 1; s <= 50; s++) {
            clock.advanceSeconds(1);
            bar.update(s, 1, 1);
        }
        clock.advanceSeconds(3);       // one slow step: 3 s
        bar.update(51, 1, 1);
        bar.finish();
        // smoothed: 1 + 0.1 * (3 - 1) = 1.2 s per step, 949 steps left -> 1138.8 s = 18m59s
        assertTrue(lines().getLast().endsWith("ETA 18m59s"), output());
    }

    @Test
    void nonInteractivePrintsOnFirstUpdateEachTenthAndTheEnd() {
        ProgressBar bar = new ProgressBar(out, 200, false, () -> clock.nanos, 1e9);
        for (int s = 1; s <= 200; s++) {
            clock.advanceSeconds(0.01);
            bar.update(s, 1, 1);
        }
        bar.finish();
        List<String> l = lines();
        assertEquals(11, l.size(), output()); // step 1, then 20, 40, ..., 200
        assertTrue(l.get(0).startsWith("step 1/200 "), l.get(0));
        assertTrue(l.get(1).startsWith("step 20/200 "), l.get(1));
        assertTrue(l.get(10).startsWith("step 200/200 "), l.get(10));
        assertFalse(output().contains("\r"));
    }

    @Test
    void nonInteractiveAlsoPrintsAfterTheTimeInterval() {
        ProgressBar bar = new ProgressBar(out, 1000, false, () -> clock.nanos, 30);
        bar.update(1, 1, 1);
        clock.advanceSeconds(29);
        bar.update(2, 1, 1);           // within the same tenth and interval: silent
        assertEquals(1, lines().size());
        clock.advanceSeconds(1);
        bar.update(3, 1, 1);           // 30 s since the last line
        assertEquals(2, lines().size());
        assertTrue(lines().get(1).startsWith("step 3/1000"), output());
    }

    @Test
    void interactiveRedrawsInPlaceAtMostTenTimesASecond() {
        ProgressBar bar = new ProgressBar(out, 1000, true, () -> clock.nanos, 30);
        for (int s = 1; s <= 100; s++) {
            clock.advanceSeconds(0.01); // 100 updates per second for one second
            bar.update(s, 1, 1);
        }
        String o = output();
        long redraws = o.chars().filter(c -> c == '\r').count();
        assertTrue(redraws >= 9 && redraws <= 11, redraws + " redraws in:\n" + o);
        assertFalse(o.contains("\n"), "interactive updates stay on one line");
        bar.finish();
        assertTrue(output().endsWith("\n"));
        assertTrue(output().contains("\rstep 100/1000 "), "finish shows the latest state");
    }

    @Test
    void interactivePadsAShorterLineSoNoOldCharactersRemain() {
        ProgressBar bar = new ProgressBar(out, 10, true, () -> clock.nanos, 30);
        bar.update(1, 1, 123_456);     // "123.5k tok/s"
        clock.advanceSeconds(1);
        bar.update(2, 1, 5);           // "5 tok/s": 5 characters shorter
        String[] frames = output().split("\r");
        assertEquals(frames[1].length(), frames[2].length(), "the second frame overwrites the whole first one");
        assertTrue(frames[2].endsWith("     "));
    }

    @Test
    void messageClearsAndRedrawsTheBar() {
        ProgressBar bar = new ProgressBar(out, 10, true, () -> clock.nanos, 30);
        bar.update(1, 2.0, 100);
        String line = ProgressBar.render(1, 10, 2.0, 100, Double.NaN);
        bar.message("saved checkpoint step-1");
        assertEquals("\r" + line + "\r" + " ".repeat(line.length()) + "\rsaved checkpoint step-1\n" + line, output());

        bytes.reset();
        ProgressBar plain = new ProgressBar(out, 10, false, () -> clock.nanos, 30);
        plain.update(1, 2.0, 100);
        plain.message("hello");
        assertEquals(line + "\nhello\n", output());
    }

    @Test
    void finishIsIdempotentAndLaterUpdatesAreIgnored() {
        ProgressBar bar = new ProgressBar(out, 10, false, () -> clock.nanos, 30);
        bar.update(3, 1, 1);
        bar.finish();
        bar.finish();
        bar.update(4, 1, 1);
        assertEquals(1, lines().size(), output());
    }

    @Test
    void rejectsBadArguments() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new ProgressBar(out, 0, false));
        assertEquals("totalSteps must be >= 1, got 0", e.getMessage());
    }
}
