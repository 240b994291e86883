package dev.weft.launcher;

import dev.weft.launcher.ZeroBenchCommand.Case;
import dev.weft.launcher.ZeroBenchCommand.RankFigures;
import dev.weft.trainer.metrics.MetricsLog;
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

/** {@code weft bench zero}: parsing a rank's log and the metrics, the table, bad input, and one real run. No timing is asserted. */
class ZeroBenchCommandTest {
    @TempDir
    Path dir;

    private static final String RANK_LOG = """
            === weft launch: attempt 0 ===
            joined: rank 1 of 2 (local rank 1, node 0, attempt 0)
            final: train loss 5.1234; validation off (train.eval_every = 0), unigram baseline 4.9000 nats/token
            memory: peak live 1.5 MiB, weights 136.6 KiB, gradients 68.3 KiB, optimizer state 136.6 KiB
            model state on this rank: parameters 139904 B, gradients 69952 B, optimizer state 139904 B (ZeRO-2, 34976 parameters)
            process rss 180.2 MiB (peak 201.0 MiB)
            """;

    @Test
    void aRankLogGivesItsModelStateAndMemory() {
        RankFigures f = ZeroBenchCommand.parseRankLog(1, RANK_LOG);
        assertNotNull(f);
        assertEquals(139904 + 69952 + 139904, f.modelState());
        assertEquals(34976, f.parameterCount());
        assertEquals(Math.round(1.5 * 1024 * 1024), f.peakLive());
        assertEquals(Math.round(201.0 * 1024 * 1024), f.peakRss());
        // 4Ψ + 12Ψ/2 = 10Ψ: the example line is exactly on the formula
        assertEquals(1.0, f.modelState() / ZeroBenchCommand.formulaBytes(2, f.parameterCount(), 2), 1e-12);
        assertNull(ZeroBenchCommand.parseRankLog(0, "joined: rank 0 of 2\n"), "no model-state line: no figures");
        RankFigures noRss = ZeroBenchCommand.parseRankLog(0, RANK_LOG.replaceAll("process rss.*\n", ""));
        assertEquals(-1, noRss.peakRss(), "a rank that does not report its RSS reads as unavailable");
    }

    @Test
    void theFormulasAreTheZeroPaperOnesForAdamWInFp32() {
        assertEquals(16.0 * 1000, ZeroBenchCommand.formulaBytes(0, 1000, 4));
        assertEquals(8.0 * 1000 + 2000, ZeroBenchCommand.formulaBytes(1, 1000, 4));
        assertEquals(4.0 * 1000 + 3000, ZeroBenchCommand.formulaBytes(2, 1000, 4));
        assertEquals(4000, ZeroBenchCommand.formulaBytes(3, 1000, 4));
    }

    @Test
    void theMedianStepSkipsTheWarmUpAndIgnoresRecordsWithoutATime() throws IOException {
        Path metrics = dir.resolve("metrics.jsonl");
        // steps 1-2 are slow (warm-up) and must not count; the eval record has no step_seconds
        Files.writeString(metrics, """
                {"step":1,"loss":5.5,"step_seconds":9.0}
                {"step":2,"loss":5.4,"step_seconds":7.0}
                {"step":3,"loss":5.3,"step_seconds":0.40}
                {"step":3,"val_loss":5.2}
                {"step":4,"loss":5.2,"step_seconds":0.30}
                {"step":5,"loss":5.1,"step_seconds":0.50}
                {"step":6,"loss":5.0,"step_seconds":0.20}
                """);
        BenchLaunch.StepTimes t = BenchLaunch.stepTimes(BenchLaunch.timedSteps(MetricsLog.read(metrics), ZeroBenchCommand.WARMUP_STEPS));
        assertEquals(0.35, t.median(), 1e-12);
        assertEquals(0.275, t.p25(), 1e-12, "a quarter of the way from 0.20 through 0.30, 0.40, 0.50");
        assertEquals(0.425, t.p75(), 1e-12);
        Files.writeString(metrics, "{\"step\":1,\"step_seconds\":1.0}\n{\"step\":2,\"step_seconds\":1.0}\n");
        assertTrue(Double.isNaN(BenchLaunch.stepTimes(BenchLaunch.timedSteps(MetricsLog.read(metrics), ZeroBenchCommand.WARMUP_STEPS)).median()), "nothing left after the warm-up");
    }

    @Test
    void aRefusalIsReadFromTheRanksMessage() {
        String launchOutput = """
                [launch] attempt 0: started rank(s) [0 (pid 11), 1 (pid 12)], logs in /tmp/x/logs
                [rank 0] weft rank 0: error: parallel.zero = 3 (sharded parameters) is not available yet; use parallel.zero: 0, 1 or 2
                weft launch: rank 0 failed first: exit value 1
                """;
        assertEquals("parallel.zero = 3 (sharded parameters) is not available yet; use parallel.zero: 0, 1 or 2",
                ZeroBenchCommand.refusal(launchOutput));
        assertNull(ZeroBenchCommand.refusal("weft launch: rank 1 failed first: killed by signal 9 (SIGKILL), exit value 137\n"),
                "a crash is a failure, not a refusal");
    }

    @Test
    void theTableSetsEveryStageAgainstDdpAtTheSameDpSize() {
        long psi = 34976;
        List<Case> cases = List.of(
                Case.measured(2, 0, List.of(figures(0, psi, 16 * psi), figures(1, psi, 16 * psi)), List.of(0.40, 0.45, 0.50, 0.55, 0.60)),
                Case.measured(2, 2, List.of(figures(0, psi, 10 * psi), figures(1, psi, 10 * psi + 640)), List.of(0.55, 0.60, 0.70)),
                Case.refused(2, 3, "parallel.zero = 3 (sharded parameters) is not available yet"));
        String table = ZeroBenchCommand.table(cases);
        List<String[]> rows = rows(table);
        assertEquals(3, rows.size(), table);
        assertEquals("0.500 s (0.45-0.55)", rows.get(0)[8].trim());
        assertEquals("1.00x (baseline)", rows.get(0)[9].trim());
        assertEquals("1.20x", rows.get(1)[9].trim());
        assertEquals("<= 1.1x: missed", rows.get(1)[10].trim());
        // the rank furthest from the formula (rank 1, 640 B over 10Ψ) speaks for the run
        assertEquals((10.0 * psi + 640) / (10.0 * psi), bytesRatio(rows.get(1)), 1e-4);
        assertEquals("ZeRO-3: not available yet", rows.get(2)[3].trim());
    }

    @Test
    void aRoundThatFailedKeepsTheOtherRoundsFiguresAndSaysSo() {
        long psi = 1000;
        Case partly = new Case(4, 0, List.of(figures(0, psi, 16 * psi)), List.of(2.0, 2.0, 2.0), null,
                "1 of 2 rounds failed: weft launch exited 1: weft launch: rank 0 failed first: exit code 255");
        String[] row = rows(ZeroBenchCommand.table(List.of(partly))).getFirst();
        assertEquals("2.000 s (2.00-2.00; 1 of 2 rounds failed)", row[8].trim());
        assertEquals(1.0, bytesRatio(row), 1e-12);
    }

    @Test
    void badInputIsOneLine() {
        for (String[] bad : List.of(new String[] {"--ranks", "0"}, new String[] {"--stages", "4"}, new String[] {"--steps", "2"},
                new String[] {"--rounds", "0"})) {
            List<String> args = new ArrayList<>(List.of("bench", "zero"));
            args.addAll(List.of(bad));
            CliTest.Run r = CliTest.run(args.toArray(String[]::new));
            assertEquals(2, r.code(), String.join(" ", bad) + ": " + r.out() + r.err());
            assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());
            assertTrue(r.err().contains(bad[0]), "names the option: " + r.err());
        }
    }

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void aRealRunOnTwoRanksPrintsARowPerStageWithTheBytesRatio() throws IOException {
        Path cfg = LaunchTest.config(dir, 3, 0);
        Path out = dir.resolve("bench");
        CliTest.Run r = CliTest.run("bench", "zero", "--config", cfg.toString(), "--steps", "3", "--ranks", "2", "--stages", "0,1",
                "--out", out.toString());
        assertEquals(0, r.code(), r.out() + r.err());
        List<String[]> rows = rows(Files.readString(out.resolve("zero.md")));
        assertEquals(2, rows.size(), r.out());
        for (int i = 0; i < 2; i++) {
            assertEquals("2", rows.get(i)[1].trim());
            assertEquals(Integer.toString(i), rows.get(i)[2].trim());
            double ratio = bytesRatio(rows.get(i));
            assertTrue(ratio > 0.9 && ratio < 1.1, "model state against the formula: " + rows.get(i)[5]);
        }
        assertTrue(r.out().contains("| dp | ZeRO |"), "the table is printed at the end: " + r.out());
    }

    private static RankFigures figures(int rank, long psi, long modelState) {
        return new RankFigures(rank, 4 * psi, 4 * psi, modelState - 8 * psi, psi, 1 << 20, 100 << 20);
    }

    private static List<String[]> rows(String table) {
        List<String[]> rows = new ArrayList<>();
        for (String line : table.split("\n")) {
            String[] cells = line.split("\\|");
            if (cells.length > 2 && cells[1].trim().matches("\\d+")) rows.add(cells);
        }
        return rows;
    }

    /** "1.0000 (met)" in the "vs formula" column. */
    private static double bytesRatio(String[] row) {
        return Double.parseDouble(row[5].trim().split(" ")[0]);
    }
}
