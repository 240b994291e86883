package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** {@code weft bench optimizers} on a tiny config: a table row per optimizer, the plot, and clear errors. */
class OptimizerBenchCommandTest {
    @TempDir
    Path dir;

    private Path tinyConfig() throws IOException {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 300; i++) text.append("shall I compare thee to a summer's day ").append(i % 5).append('\n');
        Files.writeString(dir.resolve("t.txt"), text);
        Path cfg = dir.resolve("c.yaml");
        Files.writeString(cfg, """
                model: {layers: 1, d_model: 32, heads: 2, ffn_dim: 64, vocab: 256, max_seq_len: 32}
                data: {text: t.txt, cache_dir: cache}
                train: {steps: 50, micro_batch: 2, eval_batches: 1, out_dir: run}
                optimizer: {lr: 0.002, warmup_steps: 10}
                """);
        return cfg;
    }

    @Test
    void tableHasARowPerOptimizerAndStateRatiosFollowTheFormulas() throws IOException {
        Path out = dir.resolve("bench");
        CliTest.Run r = CliTest.run("bench", "optimizers", "--config", tinyConfig().toString(), "--steps", "3",
                "--optimizers", "adamw,galore,apollo_mini", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(Files.size(out.resolve("val_loss.png")) > 0);
        Map<String, String[]> rows = new HashMap<>();
        for (String line : Files.readAllLines(out.resolve("optimizers.md"))) {
            String[] cells = line.split("\\|");
            if (cells.length > 5 && List.of("adamw", "galore", "apollo_mini").contains(cells[1].trim())) rows.put(cells[1].trim(), cells);
        }
        assertEquals(3, rows.size(), "one row per optimizer");
        // column 5: state on the attention and MLP matrices as a share of AdamW's 2mn floats
        assertEquals(100.0, percent(rows.get("adamw")[5]), 1e-9);
        // GaLore at rank d_model/4 = 8: (mr + 2nr) / 2mn over 32x32 and 32x64 matrices, between 31% and 38%
        double galore = percent(rows.get("galore")[5]);
        assertTrue(galore > 30 && galore < 38, "galore keeps " + galore + "%");
        assertTrue(percent(rows.get("apollo_mini")[5]) < 10, "apollo_mini keeps " + rows.get("apollo_mini")[5]);
        for (String[] row : rows.values()) assertTrue(Double.parseDouble(row[9].trim()) > 0, "final val loss " + row[9]);
    }

    private static double percent(String cell) {
        return Double.parseDouble(cell.trim().replace("%", ""));
    }

    @Test
    void unknownOptimizerIsRejectedBeforeAnyTraining() throws IOException {
        CliTest.Run r = CliTest.run("bench", "optimizers", "--config", tinyConfig().toString(), "--optimizers", "adamw,lion",
                "--out", dir.resolve("bench").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("unknown optimizer 'lion'"), r.err());
        assertFalse(Files.exists(dir.resolve("bench/adamw")), "nothing should have trained");
    }
}
