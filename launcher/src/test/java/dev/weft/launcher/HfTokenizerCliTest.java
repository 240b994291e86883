package dev.weft.launcher;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A tokenizer.json through the CLI: training records its identity and copies the file into each
 * checkpoint, export copies it on, and generate finds it in a model directory, a foreign one too.
 */
class HfTokenizerCliTest {
    private static final Path TOKENIZER = Path.of("../trainer/src/test/fixtures/hf-tokenizer/tokenizer.json").toAbsolutePath().normalize();

    @TempDir
    Path dir;

    @Test
    void theTokenizerTravelsFromTrainingThroughExportToGeneration() throws IOException {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 300; i++) text.append("the quick brown fox jumps over the lazy dog ").append(i % 7).append('\n');
        Files.writeString(dir.resolve("t.txt"), text);
        Path cfg = dir.resolve("c.yaml");
        Files.writeString(cfg, """
                model: {layers: 1, d_model: 16, heads: 2, ffn_dim: 32, vocab: 2304, max_seq_len: 16}
                data: {text: t.txt, cache_dir: cache, tokenizer: %s}
                train: {steps: 2, micro_batch: 2, eval_every: 2, eval_batches: 1, save_every: 2, out_dir: run}
                sample: {tokens: 3, prompt: "the "}
                """.formatted(TOKENIZER));
        CliTest.Run trained = CliTest.run("train", cfg.toString());
        assertEquals(0, trained.code(), trained.err());
        String identity = dev.weft.trainer.data.Tokenizer.fileIdentity(Files.readAllBytes(TOKENIZER));
        Path step = dir.resolve("run/checkpoints/step-00000002");
        assertArrayEquals(Files.readAllBytes(TOKENIZER), Files.readAllBytes(step.resolve("tokenizer.json")));
        assertEquals(identity, tokenizerOf(step));

        assertEquals(0, CliTest.run("generate", "--checkpoint", dir.resolve("run").toString(), "--tokens", "3").code());

        Path hf = dir.resolve("hf");
        CliTest.Run exp = CliTest.run("export", "--checkpoint", dir.resolve("run").toString(), "--out", hf.toString());
        assertEquals(0, exp.code(), exp.err());
        assertArrayEquals(Files.readAllBytes(TOKENIZER), Files.readAllBytes(hf.resolve("tokenizer.json")));
        assertEquals(identity, tokenizerOf(hf));
        assertEquals(0, CliTest.run("generate", "--checkpoint", hf.toString(), "--tokens", "3", "--temperature", "0").code());

        // A foreign directory: config.json says nothing of weft, tokenizer.json sits beside it.
        ObjectNode config = (ObjectNode) new ObjectMapper().readTree(hf.resolve("config.json").toFile());
        config.remove("weft_tokenizer");
        new ObjectMapper().writeValue(hf.resolve("config.json").toFile(), config);
        assertEquals(0, CliTest.run("generate", "--checkpoint", hf.toString(), "--tokens", "3").code());
        Path reexport = dir.resolve("hf2");
        assertEquals(0, CliTest.run("export", "--checkpoint", hf.toString(), "--out", reexport.toString()).code());
        assertEquals(identity, tokenizerOf(reexport), "an export of a foreign directory records its tokenizer.json");

        Files.delete(hf.resolve("tokenizer.json"));
        CliTest.Run none = CliTest.run("generate", "--checkpoint", hf.toString(), "--tokens", "3");
        assertEquals(2, none.code(), none.err());
        assertTrue(none.err().strip().startsWith("weft generate: error: ") && none.err().contains("holds no tokenizer.json")
                && none.err().strip().lines().count() == 1, none.err());

        // A checkpoint whose tokenizer.json is not the one it was trained with.
        Files.writeString(step.resolve("tokenizer.json"), Files.readString(TOKENIZER) + "\n");
        CliTest.Run other = CliTest.run("generate", "--checkpoint", step.toString(), "--tokens", "3");
        assertEquals(2, other.code(), other.err());
        assertTrue(other.err().contains("was trained with " + identity) && other.err().strip().lines().count() == 1, other.err());
    }

    @Test
    void anUnreadableTokenizerJsonIsAOneLineError() throws IOException {
        Files.writeString(dir.resolve("t.txt"), "some text to prepare\n".repeat(20));
        Path bad = Files.writeString(dir.resolve("tokenizer.json"), "{not json");
        CliTest.Run r = CliTest.run("prepare", "--input", dir.resolve("t.txt").toString(), "--out", dir.resolve("out").toString(),
                "--tokenizer", bad.toString());
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().strip().startsWith("weft prepare: error: tokenizer " + bad + " is not a valid tokenizer.json: not JSON"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
    }

    private static String tokenizerOf(Path modelDir) throws IOException {
        return new ObjectMapper().readTree(modelDir.resolve("config.json").toFile()).path("weft_tokenizer").asText(null);
    }
}
