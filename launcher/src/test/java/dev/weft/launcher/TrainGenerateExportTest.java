package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** The user's path through the CLI: train a tiny model, generate from it, export it, generate from the export. */
class TrainGenerateExportTest {
    @TempDir
    Path dir;

    @Test
    void trainThenGenerateThenExport() throws IOException {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 400; i++) text.append("the quick brown fox jumps over the lazy dog ").append(i % 7).append('\n');
        Files.writeString(dir.resolve("t.txt"), text);
        Path cfg = dir.resolve("c.yaml");
        Files.writeString(cfg, """
                model: {layers: 1, d_model: 32, heads: 2, ffn_dim: 64, vocab: 256, max_seq_len: 32}
                data: {text: t.txt, cache_dir: cache}
                train: {steps: 4, micro_batch: 2, eval_every: 2, eval_batches: 1, save_every: 2, out_dir: run}
                sample: {tokens: 5, prompt: "the "}
                """);
        CliTest.Run trained = CliTest.run("train", cfg.toString());
        assertEquals(0, trained.code(), trained.err());
        Path run = dir.resolve("run");
        assertTrue(Files.exists(run.resolve("metrics.jsonl")));
        assertTrue(Files.exists(run.resolve("loss.png")));
        assertTrue(Files.exists(run.resolve("checkpoints/step-00000004/model.safetensors")));

        CliTest.Run gen = CliTest.run("generate", "--checkpoint", run.toString(), "--tokens", "8", "--prompt", "the ");
        assertEquals(0, gen.code(), gen.err());

        Path hf = dir.resolve("hf");
        CliTest.Run exp = CliTest.run("export", "--checkpoint", run.toString(), "--out", hf.toString());
        assertEquals(0, exp.code(), exp.err());
        assertTrue(Files.readString(hf.resolve("config.json")).contains("\"LlamaForCausalLM\""));
        CliTest.Run gen2 = CliTest.run("generate", "--checkpoint", hf.toString(), "--tokens", "3", "--temperature", "0");
        assertEquals(0, gen2.code(), gen2.err());
    }
}
