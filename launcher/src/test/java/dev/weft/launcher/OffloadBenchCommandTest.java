package dev.weft.launcher;

import dev.weft.launcher.OffloadBenchCommand.BudgetRow;
import dev.weft.launcher.OffloadBenchCommand.DiskRow;
import dev.weft.launcher.OffloadBenchCommand.LadderPick;
import dev.weft.launcher.OffloadBenchCommand.Run;
import dev.weft.launcher.OffloadBenchCommand.Shape;
import dev.weft.offload.Bandwidth;
import dev.weft.offload.LayerPolicy;
import dev.weft.offload.Planner;
import dev.weft.offload.Tier;
import dev.weft.trainer.config.TrainConfig;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.Collections;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** {@code weft bench offload}: bad input, the budget and ladder arithmetic, and the tables' ratios and verdicts. No timing is asserted. */
class OffloadBenchCommandTest {
    private static final Path EXAMPLE = Path.of("../examples/tinyshakespeare.yaml");
    private static final long MIB = 1 << 20;

    private static TrainConfig example() {
        return TrainConfig.load(EXAMPLE, List.of());
    }

    private static Planner.Plan plan(LayerPolicy p, Tier opt, long peak, double step) {
        return new Planner.Plan(Collections.nCopies(4, p), opt, peak, step);
    }

    @Test
    void badOptionsAreRefusedBeforeAnythingRuns() {
        int[] d = {256};
        assertThrows(IllegalArgumentException.class, () -> OffloadBenchCommand.validate(0, List.of("disk"), 256, 4, 512, d, 8, 128, 2));
        var e = assertThrows(IllegalArgumentException.class, () -> OffloadBenchCommand.validate(3, List.of("disks"), 256, 4, 512, d, 8, 128, 2));
        assertTrue(e.getMessage().contains("'disks'"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> OffloadBenchCommand.validate(3, List.of("disk"), 2, 4, 512, d, 8, 128, 2), "total below one piece");
        assertThrows(IllegalArgumentException.class, () -> OffloadBenchCommand.validate(3, List.of("disk"), 256, 0, 512, d, 8, 128, 2));
        assertThrows(IllegalArgumentException.class, () -> OffloadBenchCommand.validate(3, List.of("ladder"), 256, 4, 0, d, 8, 128, 2));
        assertThrows(IllegalArgumentException.class, () -> OffloadBenchCommand.validate(3, List.of("ladder"), 256, 4, 512, new int[0], 8, 128, 2));
        assertThrows(IllegalArgumentException.class, () -> OffloadBenchCommand.validate(3, List.of("ladder"), 256, 4, 512, d, 0, 128, 2));
        assertThrows(IllegalArgumentException.class, () -> OffloadBenchCommand.validate(3, List.of("ladder"), 256, 4, 512, d, 8, 1, 2));
        assertThrows(IllegalArgumentException.class, () -> OffloadBenchCommand.validate(3, List.of("ladder"), 256, 4, 512, d, 8, 128, 0));
        assertDoesNotThrow(() -> OffloadBenchCommand.validate(1, List.of("throughput", "disk", "ladder"), 256, 4, 512, d, 8, 128, 2));
    }

    @Test
    void theCliRefusesBadStepsWithAMessageAndRegistersTheCommand() {
        StringWriter err = new StringWriter();
        CommandLine cli = Main.commandLine().setErr(new PrintWriter(err)).setOut(new PrintWriter(new StringWriter()));
        int rc = cli.execute("bench", "offload", "--steps", "0", "--config", EXAMPLE.toString());
        assertNotEquals(0, rc);
        assertTrue(err.toString().contains("--steps must be at least 1"), err.toString());
        assertTrue(cli.getSubcommands().get("bench").getSubcommands().containsKey("offload"));
    }

    @Test
    void budgetsAreWholeMiBRoundedUp() {
        assertEquals(152, OffloadBenchCommand.budgetMiB(151 * MIB + 1, 1.0));
        assertEquals(76, OffloadBenchCommand.budgetMiB(151 * MIB + 1, 0.5));
        assertEquals(38, OffloadBenchCommand.budgetMiB(151 * MIB, 0.25));
        assertEquals(1, OffloadBenchCommand.budgetMiB(10, 0.25), "never a zero budget, which would mean none");
    }

    @Test
    void largestFindsTheLastCountThatFits() {
        assertEquals(37, OffloadBenchCommand.largest(64, n -> n <= 37));
        assertEquals(64, OffloadBenchCommand.largest(64, n -> true), "capped at the ladder's top");
        assertEquals(0, OffloadBenchCommand.largest(64, n -> false));
        assertEquals(1, OffloadBenchCommand.largest(64, n -> n == 1));
        assertEquals(5, OffloadBenchCommand.largest(5, n -> n <= 5));
        for (int k = 1; k <= 20; k++) {
            int limit = k;
            assertEquals(Math.min(limit, 13), OffloadBenchCommand.largest(13, n -> n <= limit));
        }
    }

    @Test
    void theLadderKeepsHeadDimAndScalesKvHeadsAndFfn() {
        TrainConfig cfg = example(); // d_model 256, 4 heads, 4 kv heads: head_dim 64
        assertEquals(new Shape(1024, 16, 16, 3072, 2), OffloadBenchCommand.shape(cfg, 1024, 2));
        assertEquals(new Shape(384, 6, 6, 1152, 3), OffloadBenchCommand.shape(cfg, 384, 3));
        TrainConfig gqa = TrainConfig.load(EXAMPLE, List.of("model.kv_heads=2"));
        assertEquals(new Shape(768, 12, 6, 2304, 1), OffloadBenchCommand.shape(gqa, 768, 1));
        assertThrows(IllegalArgumentException.class, () -> OffloadBenchCommand.shape(cfg, 300, 1), "300 is no multiple of head_dim 64");
        assertEquals("2 x d1024 (heads 16, kv 16, ffn 3072)", OffloadBenchCommand.shape(cfg, 1024, 2).label());
    }

    @Test
    void roundsPoolTheirTimedStepsAndAFailedRoundFailsTheCase() {
        Run a = new Run(1, 100, 100, 3, 3.0, null), b = new Run(1, 120, 120, 3, 2.5, null);
        Run pooled = Run.pooled(1000, List.of(a, b), List.of(List.of(1.0, 2.0, 9.0), List.of(2.0, 2.0, 1.0)));
        assertEquals(500, pooled.tokensPerSecond(), 1e-9, "the median of the pooled steps is 2 s");
        assertEquals(120, pooled.peakBytes(), "the highest peak");
        assertEquals(6, pooled.timedSteps());
        assertEquals(2.5, pooled.lastLoss());
        Run failed = Run.failed("boom");
        assertSame(failed, Run.pooled(1000, List.of(a, failed), List.of(List.of(1.0), List.of())));
        Bandwidth best = OffloadBenchCommand.fastest(new Bandwidth(1, 4), new Bandwidth(2, 3));
        assertEquals(new Bandwidth(2, 4), best, "the fastest of each direction");
        assertEquals(new Bandwidth(1, 1), OffloadBenchCommand.fastest(null, new Bandwidth(1, 1)));
    }

    @Test
    void verdictsAndPercentages() {
        assertEquals("met", OffloadBenchCommand.verdict(0.9, 0.9));
        assertEquals("missed", OffloadBenchCommand.verdict(0.899, 0.9));
        assertEquals("missed", OffloadBenchCommand.verdict(Double.NaN, 0.9));
        assertEquals("+10.0%", OffloadBenchCommand.signedPercent(110, 100));
        assertEquals("-2.5%", OffloadBenchCommand.signedPercent(975, 1000));
        assertEquals("-", OffloadBenchCommand.signedPercent(5, 0));
        assertEquals(0.9, OffloadBenchCommand.targetFor(0.5));
        assertEquals(0.7, OffloadBenchCommand.targetFor(0.25));
        assertTrue(Double.isNaN(OffloadBenchCommand.targetFor(1.0)), "no target at the full budget");
    }

    @Test
    void theThroughputTableGivesRatiosVerdictsAndRefusals() {
        Run none = new Run(1000, 150 * MIB, 150 * MIB, 6, 3.0, null);
        List<BudgetRow> rows = List.of(
                new BudgetRow(1.0, 152 * MIB, plan(LayerPolicy.KEEP, Tier.DEVICE, 150 * MIB, 0.6), null, new Run(990, 150 * MIB, 150 * MIB, 6, 3.0, null)),
                new BudgetRow(0.5, 76 * MIB, plan(LayerPolicy.HOST, Tier.HOST, 75 * MIB, 0.62), null, new Run(850, 78 * MIB, 78 * MIB, 6, 3.0, null)),
                new BudgetRow(0.25, 38 * MIB, null, "no offload policy fits a device budget of 38.0 MiB: the smallest that works is 41 MiB", null));
        String t = OffloadBenchCommand.throughputTable(example(), none, rows, 6, 2);
        assertTrue(t.contains("| no offload, no budget | keep all; optimizer state on device | - | - | 150.0 MiB | 150.0 MiB | 1000 | 1.00x (baseline) | - |"), t);
        assertTrue(t.contains("| 100% (152.0 MiB) | layers 0-3 keep; optimizer state on device | 150.0 MiB | 0.600 s | 150.0 MiB (+0.0%) | 150.0 MiB | 990 | 99.0% | - |"), t);
        assertTrue(t.contains("| 50% (76.0 MiB) | layers 0-3 offload to host; optimizer state on host | 75.0 MiB | 0.620 s | 78.0 MiB (+4.0%) | 78.0 MiB | 850 | 85.0% | >= 90%: missed |"), t);
        assertTrue(t.contains("| 25% (38.0 MiB) | cannot be met: no offload policy fits a device budget of 38.0 MiB: the smallest that works is 41 MiB"), t);
        assertTrue(t.contains(">= 70%: missed (no policy fits) |"), t);
        assertTrue(t.contains("that row's ratio is this machine's run-to-run spread"), "at 100% the plan is the baseline's: " + t);
        assertTrue(t.contains("what the planner predicts and train.memory_budget_mib caps"), t);
        assertTrue(t.contains("median of 6 timed steps per run (after 2 warm-up), 2 round(s)"), t);

        List<BudgetRow> failed = List.of(new BudgetRow(0.5, 76 * MIB, plan(LayerPolicy.FULL, Tier.DEVICE, 75 * MIB, 0.7), null, Run.failed("MemoryBudgetExceededException: x")));
        String f = OffloadBenchCommand.throughputTable(example(), none, failed, 6, 2);
        assertTrue(f.contains("failed: MemoryBudgetExceededException: x | - | - | - | >= 90%: missed (the run failed) |"), f);
        List<BudgetRow> met = List.of(new BudgetRow(0.25, 38 * MIB, plan(LayerPolicy.DISK, Tier.DISK, 37 * MIB, 0.9), null, new Run(700, 37 * MIB, 37 * MIB, 6, 3.0, null)));
        assertTrue(OffloadBenchCommand.throughputTable(example(), none, met, 6, 2).contains("| 70.0% | >= 70%: met |"));
    }

    @Test
    void theDiskTableGivesRatiosAgainstPlainIoAndSaysWhichSideMissed() {
        List<DiskRow> rows = List.of(new DiskRow("direct", new Bandwidth(1.6, 0.9), new Bandwidth(2.0, 1.0), null),
                new DiskRow("buffered", new Bandwidth(1.0, 4.0), new Bandwidth(2.0, 4.0), null),
                new DiskRow("mapped", null, null, "offload.disk_io = mapped failed: boom"));
        String t = OffloadBenchCommand.diskTable(example(), rows, 256 * MIB, 4 * MIB, 3);
        assertTrue(t.contains("| direct | 1.60 | 2.00 | 80% | 0.90 | 1.00 | 90% | met |"), t);
        assertTrue(t.contains("| buffered | 1.00 | 2.00 | 50% | 4.00 | 4.00 | 100% | missed (write) |"), t);
        assertTrue(t.contains("| mapped | not supported here: offload.disk_io = mapped failed: boom |"), t);
        assertTrue(t.contains("page cache"), "the table says why buffered and mapped reads are fast");
        assertTrue(t.contains("256.0 MiB written then read back in 4.0 MiB pieces"), t);
        assertTrue(t.contains("fastest of 3"), t);
    }

    @Test
    void theLadderTableGivesTheParameterRatioAndWhyItFallsShort() {
        Shape small = new Shape(256, 4, 4, 768, 30), big = new Shape(256, 4, 4, 768, 62);
        List<LadderPick> picks = List.of(
                new LadderPick("no offload", small, 30_000_000, plan(LayerPolicy.KEEP, Tier.DEVICE, 500 * MIB, 1), new Run(Double.NaN, 501 * MIB, 501 * MIB, 0, 5.5, null), null, List.of()),
                new LadderPick("offload", big, 62_000_000, plan(LayerPolicy.DISK, Tier.DISK, 510 * MIB, 2), new Run(Double.NaN, 505 * MIB, 505 * MIB, 0, 5.5, null), null,
                        List.of("63 x d256 (heads 4, kv 4, ffn 768) (predicted peak 511.0 MiB): MemoryBudgetExceededException: over")));
        String t = OffloadBenchCommand.ladderTable(512 * MIB, 128, 2, picks);
        assertTrue(t.contains("| no offload | 30 x d256 (heads 4, kv 4, ffn 768) | 30,000,000 | layers 0-3 keep; optimizer state on device | 500.0 MiB | trained; 501.0 MiB (+0.2%), 501.0 MiB |"), t);
        assertTrue(t.contains("parameters with offload / without: 2.07x; target >= 4x: missed (the planner moves"), t);
        assertTrue(t.contains("micro-batch 2 x 128 tokens"), t);
        assertTrue(t.contains("offload: the planner's larger pick 63 x d256 (heads 4, kv 4, ffn 768) (predicted peak 511.0 MiB): MemoryBudgetExceededException: over; "
                + "the ladder planned again for 3% less"), t);

        List<LadderPick> oneFailed = List.of(picks.get(0), new LadderPick("offload", big, 200_000_000, picks.get(1).plan(), Run.failed("boom\nLive now: ..."), null, List.of()));
        String f = OffloadBenchCommand.ladderTable(512 * MIB, 128, 2, oneFailed);
        assertTrue(f.contains("FAILED: boom |"), "one line of the failure in the table: " + f);
        assertTrue(f.contains("6.67x; target >= 4x: missed (a verification run failed)"), f);

        List<LadderPick> noneFits = List.of(new LadderPick("no offload", null, 0, null, null, "no ladder shape fits 512 MiB without offload", List.of()), picks.get(1));
        String n = OffloadBenchCommand.ladderTable(512 * MIB, 128, 2, noneFits);
        assertTrue(n.contains("| no offload | no ladder shape fits 512 MiB without offload | - |"), n);
        assertTrue(n.contains("target >= 4x: missed (a side has no shape that fits)"), n);
    }
}
