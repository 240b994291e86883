package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class CliTest {
    @TempDir
    Path dir;

    record Run(int code, String out, String err) {}

    static Run run(String... args) {
        CommandLine cl = Main.commandLine();
        StringWriter out = new StringWriter(), err = new StringWriter();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    @Test
    void everyCommandHasHelp() {
        CommandLine cl = Main.commandLine();
        for (String name : cl.getSubcommands().keySet()) {
            if (name.equals("help")) continue;
            Run r = run(name, "--help");
            assertEquals(0, r.code(), name + " --help failed: " + r.err());
            assertTrue(r.out().contains("Usage: weft " + name), name + ": " + r.out());
            for (String sub : cl.getSubcommands().get(name).getSubcommands().keySet()) {
                Run rs = run(name, sub, "--help");
                assertEquals(0, rs.code(), name + " " + sub + " --help failed: " + rs.err());
            }
        }
        assertTrue(cl.getSubcommands().keySet().containsAll(java.util.List.of("train", "generate", "prepare", "export", "bench")));
    }

    @Test
    void aMissingConfigIsAClearErrorNotAStackTrace() {
        Run r = run("train", dir.resolve("missing.yaml").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("config file not found"), r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace for bad input: " + r.err());
    }

    @Test
    void anInvalidConfigNamesTheKey() throws IOException {
        Path cfg = dir.resolve("bad.yaml");
        Files.writeString(cfg, "data: {text: x.txt}\nmodel: {d_model: 100, heads: 3}\n");
        Run r = run("train", cfg.toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("d_model = 100"), r.err());
    }

    @Test
    void aMissingCheckpointIsAClearError() {
        Run r = run("generate", "--checkpoint", dir.resolve("nowhere").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("not found"), r.err());
    }

    @Test
    void anExhaustedMemoryBudgetSaysWhatWasLiveAndKeepsTheCheckpoint() throws IOException {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 300; i++) text.append("all the world's a stage, and all the men and women merely players\n");
        Files.writeString(dir.resolve("t.txt"), text);
        Path cfg = dir.resolve("c.yaml");
        Files.writeString(cfg, """
                model: {layers: 1, d_model: 32, heads: 2, ffn_dim: 64, vocab: 256, max_seq_len: 64}
                data: {text: t.txt, cache_dir: cache}
                train: {steps: 2, micro_batch: 2, eval_every: 0, save_every: 1, out_dir: run}
                sample: {tokens: 0}
                """);
        assertEquals(0, run("train", cfg.toString()).code());
        Path model = dir.resolve("run/checkpoints/step-00000002/model.safetensors");
        byte[] before = Files.readAllBytes(model);

        Run r = run("train", cfg.toString(), "--set", "train.steps=4", "--set", "train.micro_batch=64",
                "--set", "train.memory_budget_mib=1", "--resume");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains("out of budget") && r.err().contains("Largest live allocations"), r.err());
        assertArrayEquals(before, Files.readAllBytes(model), "the last checkpoint must survive the failed run");
    }

    @Test
    void unknownOptionsAreReported() {
        Run r = run("train", "x.yaml", "--bogus");
        assertNotEquals(0, r.code());
        assertTrue(r.err().contains("--bogus"), r.err());
    }
}
