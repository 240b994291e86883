package dev.weft.trainer.hf;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.io.Safetensors;
import dev.weft.core.model.Llama;
import dev.weft.core.model.LlamaConfig;
import dev.weft.core.ops.Rope;
import dev.weft.trainer.Checkpoint;
import dev.weft.trainer.HfConfig;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * weft's Llama against Hugging Face transformers' LlamaForCausalLM, through checkpoints in both
 * directions. The reference is {@code src/test/resources/hf/llama_reference.py}, a numpy forward
 * pass written from transformers' modeling_llama.py (torch and transformers are not needed).
 *
 * <ul>
 *   <li>HF → weft: committed fixtures {@code hf/tiny-llama} (untied, GQA 4 query / 2 kv heads, one
 *       tensor stored as BF16) and {@code hf/tiny-llama-tied}, each with the reference's logits for
 *       fixed ids. Regenerate with
 *       {@code python3 llama_reference.py write-fixture tiny-llama --seed 1234 --bf16 model.layers.1.mlp.up_proj.weight}
 *       and {@code python3 llama_reference.py write-fixture tiny-llama-tied --tied --seed 99}.</li>
 *   <li>weft → HF: a weft model saved the way checkpoints are ({@link HfConfig#write} and
 *       {@link Safetensors#write} of {@code namedParameters()}) is read by the reference script
 *       (which also makes the safetensors library's layout checks), run when python3 with numpy is
 *       available (skipped otherwise).</li>
 * </ul>
 * Both sides compute in float32; they differ only in summation order and transcendental
 * rounding, so the logits (magnitudes up to ~30) must agree to {@link #TOLERANCE} absolute.
 */
class HfCompatibilityTest {
    /** Absolute logit tolerance: float32 rounding differences are ~1e-6 here, a convention error is ~1e-1. */
    static final double TOLERANCE = 1e-4;
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    static Path resource(String name) {
        URL url = HfCompatibilityTest.class.getResource("/hf/" + name);
        assertNotNull(url, "test resource hf/" + name + " is missing");
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static float[] readF32(Path file) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[b.remaining() / 4];
        b.asFloatBuffer().get(out);
        return out;
    }

    /** Largest |a - b|, failing on a length mismatch or NaN so that a broken side cannot pass. */
    static double maxAbsDiff(float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, "element count");
        double max = 0;
        for (int i = 0; i < expected.length; i++) {
            assertFalse(Float.isNaN(actual[i]) || Float.isNaN(expected[i]), "NaN at " + i);
            max = Math.max(max, Math.abs((double) expected[i] - actual[i]));
        }
        return max;
    }

    static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    static float[] weftLogits(Llama model, int[] ids, int batch, int seq, int position) {
        try (Scope s = Scope.open()) {
            return model.forward(ids, batch, seq, position).toArray();
        }
    }

    // ---- HF → weft ------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"tiny-llama", "tiny-llama-tied"})
    void huggingFaceCheckpointLoadsAndGivesTheReferenceLogits(String fixture) throws IOException {
        Path dir = resource(fixture);
        JsonNode fx = JSON.readTree(dir.resolve("fixture.json").toFile());
        int batch = fx.get("batch").asInt(), seq = fx.get("seq").asInt(), position = fx.get("position").asInt();
        int[] ids = new int[batch * seq];
        for (int i = 0; i < ids.length; i++) ids[i] = fx.get("ids").get(i).asInt();
        float[] expected = readF32(dir.resolve("expected_logits.f32"));

        HfConfig.Loaded cfg = HfConfig.read(dir.resolve("config.json"));
        LlamaConfig c = cfg.model();
        assertEquals(2, c.kvHeads(), "num_key_value_heads");
        assertEquals(4, c.heads(), "num_attention_heads");
        assertEquals(1e-6f, c.normEps(), "rms_norm_eps written as 1e-06");
        assertEquals(fixture.endsWith("tied"), c.tiedEmbeddings(), "tie_word_embeddings");
        Llama model = new Llama(c, 0);
        try {
            Checkpoint.loadModel(dir, model);
            float[] actual = weftLogits(model, ids, batch, seq, position);
            assertEquals(fx.get("logits_shape").get(0).asInt() * fx.get("logits_shape").get(1).asInt(), actual.length);
            double err = maxAbsDiff(expected, actual);
            System.out.printf("HfCompatibility %s: max |weft - reference| = %.3g (max |logit| %.3g)%n", fixture, err, maxAbs(expected));
            assertTrue(err <= TOLERANCE, fixture + ": max abs logit difference " + err + " exceeds " + TOLERANCE);
        } finally {
            model.close();
        }
    }

    /**
     * Rotary alone at absolute positions 37..41. A whole forward pass cannot see an absolute position
     * error (attention scores under RoPE depend only on relative positions), so the rotation itself is
     * checked against the reference's, which would catch an interleaved pairing or an offset slip.
     */
    @ParameterizedTest
    @ValueSource(strings = {"tiny-llama", "tiny-llama-tied"})
    void ropeAtAnOffsetMatchesTheReferenceRotation(String fixture) throws IOException {
        Path dir = resource(fixture);
        JsonNode rope = JSON.readTree(dir.resolve("fixture.json").toFile()).get("rope");
        int[] shape = new int[4];
        for (int i = 0; i < 4; i++) shape[i] = rope.get("shape").get(i).asInt();
        float[] x = readF32(dir.resolve("rope_input.f32")), expected = readF32(dir.resolve("rope_expected.f32"));
        try (Scope s = Scope.open()) {
            float[] actual = Rope.apply(Tensor.of(x, shape), rope.get("offset").asInt(), (float) rope.get("theta").asDouble()).toArray();
            double err = maxAbsDiff(expected, actual);
            System.out.printf("HfCompatibility rope: max |weft - reference| = %.3g%n", err);
            assertTrue(err <= 1e-5, "rotary at offset " + rope.get("offset") + ": max abs difference " + err + " exceeds 1e-5");
        }
    }

    // ---- weft → HF ------------------------------------------------------------------------------

    static boolean pythonWithNumpy;

    @BeforeAll
    static void probePython() {
        try {
            Process p = new ProcessBuilder("python3", "-c", "import numpy").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            pythonWithNumpy = p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException | InterruptedException e) {
            pythonWithNumpy = false;
        }
    }

    /** A random weft model with weights large enough (and norm gains away from 1) that every path shows in the logits. */
    static Llama randomModel(LlamaConfig c, long seed) {
        Llama m = new Llama(c, seed);
        Random r = new Random(seed);
        for (Map.Entry<String, Tensor> e : m.namedParameters().entrySet()) {
            if (!e.getKey().endsWith("norm.weight")) continue;
            float[] g = new float[(int) e.getValue().numel()];
            for (int i = 0; i < g.length; i++) g[i] = 1f + 0.3f * (float) r.nextGaussian();
            e.getValue().copyFrom(g);
        }
        return m;
    }

    /** Saves like {@link Checkpoint#save}: Hugging Face config.json and model.safetensors of namedParameters(). */
    static Path saveWeftCheckpoint(Llama model, Path dir) throws IOException {
        Files.createDirectories(dir);
        HfConfig.write(dir.resolve("config.json"), model.config(), "byte");
        Safetensors.write(dir.resolve("model.safetensors"), model.namedParameters(), Map.of("format", "pt"));
        return dir;
    }

    static float[] referenceLogits(Path checkpoint, int[] ids, int batch, int seq, int position, Path out) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("python3", resource("llama_reference.py").toString(), "logits", checkpoint.toString(),
                "--ids", Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(",")),
                "--batch", Integer.toString(batch), "--seq", Integer.toString(seq), "--position", Integer.toString(position),
                "--out", out.toString()));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "llama_reference.py did not finish");
        assertEquals(0, p.exitValue(), "llama_reference.py failed:\n" + log);
        return readF32(out);
    }

    static int[] randomIds(int n, int vocab, long seed) {
        Random r = new Random(seed);
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = r.nextInt(vocab);
        return ids;
    }

    void assertWeftMatchesReference(LlamaConfig c, long seed, int batch, int seq, int position, String what) throws Exception {
        assumeTrue(pythonWithNumpy, "python3 with numpy is not available; skipping the weft → reference direction");
        Llama model = randomModel(c, seed);
        try {
            Path dir = saveWeftCheckpoint(model, tmp.resolve("ckpt-" + seed));
            int[] ids = randomIds(batch * seq, c.vocab(), seed + 1);
            float[] expected = referenceLogits(dir, ids, batch, seq, position, tmp.resolve("logits-" + seed + ".f32"));
            float[] actual = weftLogits(model, ids, batch, seq, position);
            double err = maxAbsDiff(expected, actual);
            System.out.printf("HfCompatibility %s: max |weft - reference| = %.3g (max |logit| %.3g)%n", what, err, maxAbs(expected));
            assertTrue(maxAbs(expected) > 100 * TOLERANCE, what + ": logits too small to tell models apart");
            assertTrue(err <= TOLERANCE, what + ": max abs logit difference " + err + " exceeds " + TOLERANCE);
        } finally {
            model.close();
        }
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void weftCheckpointGivesTheSameLogitsInTheReference(boolean tied) throws Exception {
        // GQA with groups of 3, eps and theta unlike the fixture's, so config.json has to carry them; the tied
        // model's eps is large enough to move the logits, so where eps enters the norm is checked too
        LlamaConfig c = new LlamaConfig(2, 48, 6, 2, 40, 80, 64, 500000f, tied ? 0.05f : 1e-5f, tied, 0.25);
        assertWeftMatchesReference(c, tied ? 11 : 12, 2, 16, 0, "weft→reference " + (tied ? "tied" : "untied"));
    }

    /** The full context window (positions 0..95) and a window starting at position 70. */
    @Test
    void longSequenceAndPositionOffsetMatchTheReference() throws Exception {
        LlamaConfig c = new LlamaConfig(1, 32, 2, 1, 32, 50, 96, 10000f, 1e-6f, false, 0.3);
        assertWeftMatchesReference(c, 21, 1, 96, 0, "weft→reference seq 96");
        assertWeftMatchesReference(c, 22, 2, 20, 70, "weft→reference positions 70..89");
    }
}
