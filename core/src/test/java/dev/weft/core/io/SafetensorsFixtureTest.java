package dev.weft.core.io;

import dev.weft.core.DType;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Reads tiny_llama.safetensors, written by make_fixture.py with numpy + struct + json and no weft
 * code, and checks every value against the closed forms in that script.
 */
class SafetensorsFixtureTest {
    static Path resource(String name) {
        try {
            return Path.of(SafetensorsFixtureTest.class.getResource("/safetensors/" + name).toURI());
        } catch (URISyntaxException | NullPointerException e) {
            throw new AssertionError("test resource safetensors/" + name + " is missing", e);
        }
    }

    @Test
    void readsHandWrittenLlamaFixture() throws Exception {
        try (Scope s = Scope.open(); SafetensorsFile f = Safetensors.open(resource("tiny_llama.safetensors"))) {
            assertEquals(List.of("model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                    "model.layers.0.self_attn.q_proj.weight", "model.norm.weight"), List.copyOf(f.names()));
            assertEquals(Map.of("format", "pt", "source", "make_fixture.py"), f.metadata());

            // embed_tokens: F32 [5, 3], arange * 0.25 - 3
            assertArrayEquals(new int[] {5, 3}, f.shape("model.embed_tokens.weight"));
            assertEquals(DType.F32, f.dtype("model.embed_tokens.weight"));
            Tensor embed = f.load("model.embed_tokens.weight");
            float[] expected = new float[15];
            for (int i = 0; i < 15; i++) expected[i] = (float) (i * 0.25 - 3);
            assertArrayEquals(expected, embed.toArray());
            assertEquals(0.5f, embed.get(4, 2)); // row 4 = token 4, column 2: 14 * 0.25 - 3

            // q_proj: BF16 [out=3, in=3], (arange - 4) / 8, all exact in bf16
            String q = "model.layers.0.self_attn.q_proj.weight";
            assertEquals(DType.BF16, f.dtype(q));
            assertArrayEquals(new int[] {3, 3}, f.shape(q));
            Tensor qw = f.load(q);
            assertEquals(DType.F32, qw.dtype());
            float[] qe = new float[9];
            for (int i = 0; i < 9; i++) qe[i] = (i - 4) / 8f;
            assertArrayEquals(qe, qw.toArray());

            // input_layernorm: F16 [3], 1 + arange * 0.125; loaded as F32
            String ln = "model.layers.0.input_layernorm.weight";
            assertEquals("F16", f.dtypeName(ln));
            assertEquals(DType.F32, f.dtype(ln));
            assertArrayEquals(new float[] {1f, 1.125f, 1.25f}, f.load(ln).toArray());

            // norm: F32 [3] at an unaligned offset (18), (float)(1 + 0.1 * i)
            assertArrayEquals(new float[] {1f, (float) 1.1, (float) 1.2}, f.load("model.norm.weight").toArray());
        }
    }
}
