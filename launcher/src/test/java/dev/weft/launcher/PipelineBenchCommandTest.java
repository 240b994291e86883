package dev.weft.launcher;

import dev.weft.launcher.PipelineBenchCommand.PipelineCase;
import dev.weft.launcher.PipelineBenchCommand.RankTimeline;
import dev.weft.launcher.PipelineBenchCommand.StageTimes;
import dev.weft.launcher.PipelineBenchCommand.TpCase;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** {@code weft bench pipeline}: reading a rank's timeline, the formulas, the tables, bad input, and one real run. No timing is asserted. */
class PipelineBenchCommandTest {
    @TempDir
    Path dir;

    private static final String RANK_LOG = """
            joined: rank 1 of 2 (local rank 1, node 0, attempt 0)
            memory: peak live 25.8 MiB, weights 3.4 MiB, gradients 3.4 MiB, optimizer state 6.8 MiB; process rss 215.6 MiB (peak 215.6 MiB)
            pipeline timeline: rank 1 of 2, 4 timed steps after 2 warm-up, wall 2.175768 s, busy 1.782407 s (bubble 0.1808); \
            stage 1: F 32 x 21.198 ms, I 32 x 20.000 ms, W 32 x 14.502 ms; stage 3: F 32 x 10.500 ms, B 32 x 17.250 ms; peak held 11692160 B; \
            busy/wall per step 400.000/500.000 ms, 500.000/600.000 ms, 441.204/537.884 ms, 441.203/537.884 ms
            pipeline last step (rank 1, ns): recvA0<0 100 250, F0@1 250 900, sendA0>2 900 910
            """;

    @Test
    void aRankLogGivesItsTimeline() {
        RankTimeline t = PipelineBenchCommand.parseTimeline(RANK_LOG);
        assertNotNull(t);
        assertEquals(1, t.rank());
        assertEquals(4, t.timedSteps());
        assertEquals(2.175768, t.wallSeconds(), 1e-12);
        assertEquals(1.782407, t.busySeconds(), 1e-12);
        assertEquals(11692160, t.peakHeldBytes());
        assertEquals(List.of(1, 3), t.stages().stream().map(StageTimes::stage).toList());
        StageTimes s1 = t.stages().get(0), s3 = t.stages().get(1);
        assertEquals(21.198, s1.forward(), 1e-12);
        assertTrue(Double.isNaN(s1.backward()), "a split backward has no whole one");
        assertEquals(20.0, s1.backwardInput(), 1e-12);
        assertEquals(14.502, s1.backwardWeight(), 1e-12);
        assertEquals(17.25, s3.backward(), 1e-12);
        assertEquals(0.01725, s3.costs().backward(), 1e-12, "costs are in seconds");
        assertEquals(0, s3.costs().backwardInput(), "a kind not run costs nothing");
        assertArrayEquals(new double[] {0.4, 0.5, 0.441204, 0.441203}, t.stepBusy(), 1e-12);
        assertArrayEquals(new double[] {0.5, 0.6, 0.537884, 0.537884}, t.stepWall(), 1e-12);
        assertArrayEquals(new long[] {100, 250, 900}, t.lastStart());
        assertArrayEquals(new long[] {250, 900, 910}, t.lastEnd());
        assertNull(PipelineBenchCommand.parseTimeline("joined: rank 0 of 2\n"), "no timeline line: no figures");
    }

    /**
     * GPipe on 2 ranks, 1 micro-batch: rank 0 runs F0@0 0-10, sendA 10-11, recvG 11-40; rank 1 recvA
     * 0-14 (its data posted at 11: 3 ns late), F 14-24, B 24-34, sendG 34-35. Rank 0's receive waited
     * from 11 to 40 for a send posted at 35: 5 ns. The mean is 4 ns.
     */
    @Test
    void theTransferLatencyIsReadFromWaitingReceivesAgainstTheirSends() {
        var plan = dev.weft.parallel.pipeline.Schedules.gpipe(2, 1);
        assertEquals("[F0@0, sendA0>1, recvG0<1, B0@0]", plan.actions(0).toString());
        assertEquals("[recvA0<0, F0@1, B0@1, sendG0>0]", plan.actions(1).toString());
        RankTimeline r0 = new RankTimeline(0, 1, 1, 1, List.of(stage(0, 1, 1, Double.NaN, Double.NaN)), 0, new double[0], new double[0],
                new long[] {0, 10, 11, 40}, new long[] {10, 11, 40, 50});
        RankTimeline r1 = new RankTimeline(1, 1, 1, 1, List.of(stage(1, 1, 1, Double.NaN, Double.NaN)), 0, new double[0], new double[0],
                new long[] {0, 14, 24, 34}, new long[] {14, 24, 34, 35});
        // from each send's start: activation 10 -> 14, gradient 34 -> 40
        assertEquals(5e-9, new PipelineCase("gpipe", 2, 1, 1, List.of(r0, r1), List.of(), null).transferSeconds(), 1e-18);
        // a receive that looked only after its data was posted says nothing of the latency
        RankTimeline late = new RankTimeline(1, 1, 1, 1, r1.stages(), 0, new double[0], new double[0], new long[] {12, 14, 24, 34}, r1.lastEnd());
        assertEquals(6e-9, new PipelineCase("gpipe", 2, 1, 1, List.of(r0, late), List.of(), null).transferSeconds(), 1e-18);
        // the replay of those times with free transfers: rank 1 F 14-24 -> 10-20 from its start, B 20-30; rank 0 B 30-40 after F 0-10
        assertEquals(1 - 40.0 / 80, new PipelineCase("gpipe", 2, 1, 1, List.of(r0, r1), List.of(), null).lastStepReplayBubble(), 1e-12);
    }

    @Test
    void roundsPoolIntoOneTimelinePerRank() {
        RankTimeline a = new RankTimeline(0, 4, 2.0, 1.5, List.of(stage(0, 10, Double.NaN, 6, 4)), 100, new double[] {0.3, 0.4, 0.4, 0.4},
                new double[] {0.5, 0.5, 0.5, 0.5}, new long[0], new long[0]);
        RankTimeline b = new RankTimeline(0, 2, 1.0, 0.9, List.of(stage(0, 16, Double.NaN, 9, 1)), 300, new double[] {0.45, 0.45},
                new double[] {0.5, 0.5}, new long[] {1}, new long[] {2});
        RankTimeline pooled = RankTimeline.pool(List.of(a, b));
        assertEquals(6, pooled.timedSteps());
        assertEquals(3.0, pooled.wallSeconds(), 1e-12);
        assertEquals(2.4, pooled.busySeconds(), 1e-12);
        assertEquals(300, pooled.peakHeldBytes());
        assertEquals(12.0, pooled.stages().getFirst().forward(), 1e-12, "weighted by timed steps: (4 x 10 + 2 x 16) / 6");
        assertTrue(Double.isNaN(pooled.stages().getFirst().backward()));
        assertArrayEquals(new long[] {2}, pooled.lastEnd(), "the last round's last step");
        assertArrayEquals(new double[] {0.3, 0.4, 0.4, 0.4, 0.45, 0.45}, pooled.stepBusy(), "the rounds' steps in turn");
        PipelineCase c = PipelineCase.pool(List.of(PipelineCase.failed("1f1b", 1, 1, 1, "crashed"),
                new PipelineCase("1f1b", 1, 1, 1, List.of(a), List.of(0.5), null), new PipelineCase("1f1b", 1, 1, 1, List.of(b), List.of(0.7), null)));
        assertNull(c.failure(), "a failed round leaves the others' figures");
        assertEquals(List.of(0.5, 0.7), c.timedSteps());
        // steps' bubbles 0.4, 0.2, 0.2, 0.2, 0.1, 0.1: a stalled first step moves the mean (0.2 over all) and not the median
        assertEquals(0.2, c.medianStepBubble(), 1e-12);
    }

    @Test
    void theTheoryIsTheHelpersFormulas() {
        assertEquals(1.0 / 9, PipelineBenchCommand.theoreticalBubble("1f1b", 2, 8, 1), 1e-12);
        assertEquals(3.0 / 11, PipelineBenchCommand.theoreticalBubble("gpipe", 4, 8, 1), 1e-12);
        assertEquals(3.0 / 27, PipelineBenchCommand.theoreticalBubble("zbh1", 4, 8, 1), 1e-12);
        assertEquals(3.0 / 19, PipelineBenchCommand.theoreticalBubble("interleaved", 4, 8, 2), 1e-12);
    }

    @Test
    void theTableSetsEachScheduleAgainstOneFOneBAndTheory() {
        // pp 2, m 4: 1F1B with equal stages, each rank busy 78% of its wall
        List<RankTimeline> equal = List.of(timeline(0, 1.0, 0.78, stage(0, 5, 5, Double.NaN, Double.NaN)),
                timeline(1, 1.0, 0.78, stage(1, 5, 5, Double.NaN, Double.NaN)));
        List<RankTimeline> split = List.of(timeline(0, 1.0, 0.9, stage(0, 5, Double.NaN, 3, 2)), timeline(1, 1.0, 0.9, stage(1, 5, Double.NaN, 3, 2)));
        List<PipelineCase> cases = List.of(
                new PipelineCase("1f1b", 2, 4, 1, equal, List.of(0.5, 0.5), null),
                new PipelineCase("zbh1", 2, 4, 1, split, List.of(0.45, 0.45), null),
                PipelineCase.failed("interleaved", 2, 4, 2, "weft launch exited 1"));
        String table = PipelineBenchCommand.pipelineTable(cases);
        List<String[]> rows = rows(table);
        assertEquals(3, rows.size(), table);
        // 1F1B: measured 0.22, theory 1/5, simulated with equal stages and free transfers: the formula
        assertEquals("0.220", rows.get(0)[3].trim());
        assertEquals("0.220", rows.get(0)[4].trim(), "equal steps: the median step is the mean");
        assertEquals("0.200", rows.get(0)[5].trim());
        assertEquals("0.200 (0.00 ms each)", rows.get(0)[6].trim(), "no last step printed: free transfers");
        assertEquals("0.200", rows.get(0)[7].trim());
        assertEquals("within 15% of theory: met (+10%); median step met (+10%)", rows.get(0)[9].trim());
        assertEquals("1.00x (baseline)", rows.get(0)[14].trim());
        assertEquals("<= 0.5x 1F1B: met (0.45x); median step met (0.45x)", rows.get(1)[9].trim());
        assertEquals("0.220, NaN", rows.get(0)[10].trim(), "no last step printed: no replay of it");
        assertEquals("0.90x", rows.get(1)[14].trim());
        assertEquals("2, 1", rows.get(0)[12].trim(), "1F1B keeps p - r micro-batches in flight on rank r");
        assertTrue(rows.get(2)[3].contains("failed"), rows.get(2)[3]);
        assertTrue(PipelineBenchCommand.notes(cases, 1).contains("pp 2 runs 2 rank processes on 1 cores"));
        assertFalse(PipelineBenchCommand.notes(cases, 2).contains("rank processes on"));
    }

    @Test
    void theTpTableSetsTpAgainstOneRank() {
        String table = PipelineBenchCommand.tpTable(List.of(new TpCase(1, 2, List.of(1.0, 1.0), 1 << 20, null), new TpCase(2, 1, List.of(1.3, 1.3), 1 << 20, null)));
        List<String[]> rows = new ArrayList<>();
        for (String line : table.split("\n")) if (line.startsWith("| one rank") || line.startsWith("| tp ")) rows.add(line.split("\\|"));
        assertEquals(2, rows.size(), table);
        assertEquals("1.00x (baseline)", rows.get(0)[4].trim());
        assertEquals("1.30x", rows.get(1)[4].trim());
        assertEquals("<= 1.25x: missed", rows.get(1)[5].trim());
        assertEquals("2 x 1", rows.get(1)[2].trim());
    }

    @Test
    void badInputIsOneLine() {
        for (String[] bad : List.of(new String[] {"--pp", "1"}, new String[] {"--schedules", "pipedream"}, new String[] {"--steps", "2"},
                new String[] {"--virtual-stages", "1"}, new String[] {"--micro-batches", "0"}, new String[] {"--rounds", "0"})) {
            List<String> args = new ArrayList<>(List.of("bench", "pipeline"));
            args.addAll(List.of(bad));
            CliTest.Run r = CliTest.run(args.toArray(String[]::new));
            assertEquals(2, r.code(), String.join(" ", bad) + ": " + r.out() + r.err());
            assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());
            assertTrue(r.err().contains(bad[0]), "names the option: " + r.err());
        }
    }

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void aRealRunPrintsARowPerScheduleAndTheTpComparison() throws IOException {
        Path cfg = LaunchTest.config(dir, 3, 0);
        Path out = dir.resolve("bench");
        // the tiny test model, not the bench's default one; 4 layers hold pp 2 with 2 virtual stages
        CliTest.Run r = CliTest.run("bench", "pipeline", "--config", cfg.toString(), "--steps", "3", "--pp", "2", "--micro-batches", "4",
                "--schedules", "1f1b,interleaved", "--out", out.toString(), "--set", "model.layers=4", "--set", "model.d_model=32", "--set", "model.ffn_dim=64",
                "--set", "model.kv_heads=2", "--set", "train.seq_len=16", "--set", "train.micro_batch=2");
        assertEquals(0, r.code(), r.out() + r.err());
        String tables = Files.readString(out.resolve("pipeline.md"));
        List<String[]> rows = rows(tables);
        assertEquals(2, rows.size(), tables);
        assertEquals("1f1b", rows.get(0)[2].trim());
        assertEquals("interleaved (v 2)", rows.get(1)[2].trim());
        for (String[] row : rows) {
            for (int col : new int[] {3, 4, 5}) {
                double bubble = Double.parseDouble(row[col].trim());
                assertTrue(bubble >= 0 && bubble < 1, "a bubble is a fraction: " + row[col]);
            }
            assertTrue(row[6].contains(" ms each"), row[6]);
            String[] lastStep = row[10].split(",");
            for (String b : lastStep) assertTrue(Double.parseDouble(b.trim()) >= 0, "the last step, measured and replayed: " + row[10]);
            assertEquals(2, row[11].split(",").length, "one held figure per rank: " + row[11]);
        }
        assertTrue(tables.contains("| one rank | 1 x "), tables);
        assertTrue(tables.contains("| tp 2 | 2 x "), tables);
        assertTrue(r.out().contains("| pp | schedule |"), "the tables are printed at the end: " + r.out());
    }

    private static RankTimeline timeline(int rank, double wall, double busy, StageTimes stage) {
        return new RankTimeline(rank, 2, wall, busy, List.of(stage), 1 << 20, new double[] {busy / 2, busy / 2}, new double[] {wall / 2, wall / 2},
                new long[0], new long[0]);
    }

    private static StageTimes stage(int s, double f, double b, double i, double w) {
        return new StageTimes(s, f, b, i, w);
    }

    private static List<String[]> rows(String table) {
        List<String[]> rows = new ArrayList<>();
        for (String line : table.split("\n")) {
            String[] cells = line.split("\\|");
            if (cells.length > 2 && cells[1].trim().matches("\\d+")) rows.add(cells);
        }
        return rows;
    }
}
