package dev.weft.core.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.weft.core.DType;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Checks the writer against read_safetensors.py, an independent numpy reader (skipped without python3 + numpy). */
class SafetensorsPythonReaderTest {
    @TempDir
    Path dir;

    record Result(int exit, String stdout, String stderr) {}

    static Result python(String... args) {
        List<String> command = new ArrayList<>(List.of("python3"));
        command.addAll(List.of(args));
        try {
            Path err = Files.createTempFile("python", ".err");
            try {
                // stderr to a file so neither pipe can fill up and block the process
                Process p = new ProcessBuilder(command).redirectError(err.toFile()).start();
                p.getOutputStream().close();
                byte[] out = p.getInputStream().readAllBytes();
                if (!p.waitFor(30, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    return new Result(-1, "", "timed out");
                }
                return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8), Files.readString(err));
            } finally {
                Files.deleteIfExists(err);
            }
        } catch (IOException e) {
            return new Result(-1, "", e.toString());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Result(-1, "", e.toString());
        }
    }

    @Test
    void pythonReaderSeesWhatJavaWrote() throws IOException {
        Result probe = python("-c", "import numpy");
        assumeTrue(probe.exit == 0, "python3 with numpy not available: " + probe.stderr);

        Path file = dir.resolve("w.safetensors");
        float[] w = {0.1f, -2f, Float.NaN, Float.POSITIVE_INFINITY, -0f, 3e-39f /* subnormal */};
        float[] h = {1f, -2.5f, 3.14159f, 65504f};
        try (Scope s = Scope.open()) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            tensors.put("model.layers.0.self_attn.q_proj.weight", Tensor.of(w, 3, 2));
            tensors.put("model.embed_tokens.weight", Tensor.of(h, 2, 2).to(DType.BF16));
            tensors.put("scalar", Tensor.scalar(42f));
            tensors.put("empty", Tensor.zeros(0));
            Safetensors.write(file, tensors, Map.of("format", "pt", "note", "ünïcode ✓"));
        }

        Result r = python(SafetensorsFixtureTest.resource("read_safetensors.py").toString(), file.toString());
        assertEquals(0, r.exit, "python reader failed: " + r.stderr);
        JsonNode root = new ObjectMapper().readTree(r.stdout);
        assertEquals("pt", root.get("metadata").get("format").asText());
        assertEquals("ünïcode ✓", root.get("metadata").get("note").asText());
        JsonNode t = root.get("tensors");
        assertEquals(4, t.size());

        JsonNode q = t.get("model.layers.0.self_attn.q_proj.weight");
        assertEquals("F32", q.get("dtype").asText());
        assertEquals("[3,2]", q.get("shape").toString());
        for (int i = 0; i < w.length; i++)
            assertEquals(Float.floatToRawIntBits(w[i]), (int) q.get("bits").get(i).asLong(), "element " + i);

        JsonNode e = t.get("model.embed_tokens.weight");
        assertEquals("BF16", e.get("dtype").asText());
        assertEquals("[2,2]", e.get("shape").toString());
        for (int i = 0; i < h.length; i++)
            assertEquals(Float.floatToRawIntBits(DType.fromBf16(DType.toBf16(h[i]))), (int) e.get("bits").get(i).asLong(), "bf16 element " + i);

        assertEquals("[]", t.get("scalar").get("shape").toString());
        assertEquals(Float.floatToRawIntBits(42f), (int) t.get("scalar").get("bits").get(0).asLong());
        assertEquals("[0]", t.get("empty").get("shape").toString());
        assertEquals(0, t.get("empty").get("bits").size());
    }
}
