package dev.weft.core.io;

import dev.weft.core.DType;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class SafetensorsTest {
    @TempDir
    Path dir;

    @Test
    void roundTripsF32Bf16ScalarEmptyTensorsAndMetadata() throws IOException {
        Path file = dir.resolve("model.safetensors");
        try (Scope s = Scope.open()) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            tensors.put("w", Tensor.of(new float[] {1.5f, -2f, 3.25f, Float.NaN, Float.NEGATIVE_INFINITY, -0f}, 2, 3));
            tensors.put("b16", Tensor.of(new float[] {1f, -2.5f, 3.14159f, 1e-3f, 65504f}, 5).to(DType.BF16));
            tensors.put("scalar", Tensor.scalar(7.5f));
            tensors.put("empty", Tensor.zeros(0, 4));
            Safetensors.write(file, tensors, Map.of("format", "pt", "step", "42"));

            try (SafetensorsFile f = Safetensors.open(file)) {
                assertEquals(Map.of("format", "pt", "step", "42"), f.metadata());
                assertEquals(List.of("empty", "scalar", "w", "b16"), new ArrayList<>(f.names()),
                        "written largest element size first, then by name");
                assertArrayEquals(new int[] {2, 3}, f.shape("w"));
                assertArrayEquals(new int[] {}, f.shape("scalar"));
                assertArrayEquals(new int[] {0, 4}, f.shape("empty"));
                assertEquals(DType.F32, f.dtype("w"));
                assertEquals(DType.BF16, f.dtype("b16"));
                assertEquals("BF16", f.dtypeName("b16"));

                Tensor w = f.load("w");
                assertEquals(DType.F32, w.dtype());
                assertArrayEquals(new int[] {2, 3}, w.shape());
                assertArrayEquals(tensors.get("w").toArray(), w.toArray()); // bit-exact, NaN and -0 included
                assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(w.get(1, 2)));

                Tensor b = f.load("b16");
                assertEquals(DType.F32, b.dtype(), "load widens BF16 to F32");
                assertArrayEquals(tensors.get("b16").toArray(), b.toArray()); // the bf16 values, widened exactly

                assertEquals(7.5f, f.load("scalar").item());
                assertEquals(0, f.load("empty").numel());
            }
        }
    }

    @Test
    void headerIsPaddedSoDataIsEightByteAligned() throws IOException {
        Path file = dir.resolve("a.safetensors");
        for (String name : List.of("a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh")) {
            try (Scope s = Scope.open()) {
                Safetensors.write(file, Map.of(name, Tensor.of(new float[] {1, 2}, 2)), null);
            }
            ByteBuffer bb = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
            long n = bb.getLong(0);
            assertEquals(0, (8 + n) % 8, "header length " + n + " for name " + name);
            assertEquals(8 + n + 8, Files.size(file));
            String header = new String(Files.readAllBytes(file), 8, (int) n, StandardCharsets.UTF_8);
            assertTrue(header.startsWith("{\"" + name + "\":"), header);
            assertTrue(header.matches("(?s)\\{.*\\} *"), "only spaces after the JSON: '" + header + "'");
            assertEquals(1f, bb.order(ByteOrder.LITTLE_ENDIAN).getFloat((int) (8 + n)));
        }
    }

    @Test
    void writesNonContiguousViewsInLogicalOrder() throws IOException {
        Path file = dir.resolve("t.safetensors");
        try (Scope s = Scope.open()) {
            Tensor t = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3).transpose(0, 1);
            Tensor tb = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3).to(DType.BF16).transpose(0, 1);
            Safetensors.write(file, Map.of("t", t, "tb", tb), Map.of());
            try (SafetensorsFile f = Safetensors.open(file)) {
                assertEquals(Map.of(), f.metadata());
                assertArrayEquals(new int[] {3, 2}, f.shape("t"));
                assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, f.load("t").toArray());
                assertEquals(DType.BF16, f.dtype("tb"));
                assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, f.load("tb").toArray());
            }
        }
    }

    @Test
    void replacesAnExistingFileAndLeavesNoTemporaryFiles() throws IOException {
        Path file = dir.resolve("ckpt.safetensors");
        try (Scope s = Scope.open()) {
            Safetensors.write(file, Map.of("x", Tensor.of(new float[] {1}, 1)), null);
            Safetensors.write(file, Map.of("y", Tensor.of(new float[] {2, 3}, 2)), null);
            try (SafetensorsFile f = Safetensors.open(file)) {
                assertEquals(List.of("y"), new ArrayList<>(f.names()));
                assertArrayEquals(new float[] {2, 3}, f.load("y").toArray());
            }
        }
        try (var files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList());
        }
    }

    @Test
    void loadIntoConvertsToTheTargetDtype() throws IOException {
        Path file = dir.resolve("m.safetensors");
        try (Scope s = Scope.open()) {
            Safetensors.write(file, Map.of("f", Tensor.of(new float[] {1f, 3.14159f}, 2),
                    "h", Tensor.of(new float[] {0.5f, -8f}, 2).to(DType.BF16)), null);
            try (SafetensorsFile f = Safetensors.open(file)) {
                Tensor asBf16 = Tensor.empty(DType.BF16, "p", 2);
                f.loadInto("f", asBf16);
                assertArrayEquals(new float[] {1f, DType.fromBf16(DType.toBf16(3.14159f))}, asBf16.toArray());
                Tensor asF32 = Tensor.empty(2);
                f.loadInto("h", asF32);
                assertArrayEquals(new float[] {0.5f, -8f}, asF32.toArray());
                Tensor wrong = Tensor.empty(3);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> f.loadInto("f", wrong));
                assertTrue(e.getMessage().contains("[2]") && e.getMessage().contains("[3]"), e.getMessage());
            }
        }
    }

    @Test
    void rejectsBadArgumentsToWrite() {
        try (Scope s = Scope.open()) {
            Tensor t = Tensor.of(new float[] {1}, 1);
            assertThrows(IllegalArgumentException.class, () -> Safetensors.write(dir.resolve("x"), Map.of("__metadata__", t), null));
            assertThrows(IllegalArgumentException.class, () -> Safetensors.write(dir.resolve("x"), Map.of("", t), null));
            Tensor closed = Tensor.of(new float[] {1}, 1);
            closed.close();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Safetensors.write(dir.resolve("x"), Map.of("c", closed), null));
            assertTrue(e.getMessage().contains("'c'"), e.getMessage());
        }
    }

    // ---- validation of malformed files ------------------------------------------------------------

    @Test
    void missingTensorNameListsClosestNames() throws IOException {
        Path file = dir.resolve("m.safetensors");
        try (Scope s = Scope.open()) {
            Map<String, Tensor> m = new LinkedHashMap<>();
            for (String n : List.of("model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight", "model.norm.weight", "lm_head.weight"))
                m.put(n, Tensor.zeros(1));
            Safetensors.write(file, m, null);
            try (SafetensorsFile f = Safetensors.open(file)) {
                SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> f.load("model.layers.0.mlp.gate_proj.weight"));
                assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
                assertTrue(e.getMessage().contains("'model.layers.0.mlp.gate_proj.weight'"), e.getMessage());
                assertTrue(e.getMessage().contains("closest: 'model.layers.0.mlp.down_proj.weight', 'model.layers.0.mlp.up_proj.weight'"), e.getMessage());
                assertThrows(SafetensorsFormatException.class, () -> f.shape("nope"));
            }
        }
    }

    @Test
    void headerLengthLargerThanFile() throws IOException {
        byte[] bytes = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(1000).putLong(0).array();
        assertFormatError(bytes, "header length 1000 is larger than the 8 bytes");
        assertFormatError(new byte[] {1, 2, 3}, "too short");
        byte[] huge = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(-1).putLong(0).array();
        assertFormatError(huge, "header length 18446744073709551615");
    }

    @Test
    void badJson() throws IOException {
        assertFormatError(file("{\"a\": {\"dtype\": \"F32\", ", new byte[0]), "not valid JSON");
        assertFormatError(file("[1, 2]", new byte[0]), "must be a JSON object");
        assertFormatError(file("{\"a\": 1} trailing", new byte[0]), "not valid JSON");
        assertFormatError(file("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                + "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", new byte[4]), "not valid JSON");
        assertFormatError(file("{\"__metadata__\": {\"k\": 1}}", new byte[0]), "__metadata__ value of 'k' must be a string");
    }

    @Test
    void unknownDtype() throws IOException {
        assertFormatError(file(entry("x", "F31", "[1]", 0, 4), new byte[4]), "tensor 'x': unknown dtype 'F31'");
    }

    @Test
    void knownButUnsupportedDtypeOpensButCannotLoad() throws IOException {
        Path p = file("{" + entry("ids", "I64", "[2]", 0, 16) + ", " + entry("w", "F32", "[1]", 16, 20) + "}", new byte[20]);
        try (SafetensorsFile f = Safetensors.open(p)) {
            assertEquals("I64", f.dtypeName("ids"));
            assertEquals(0f, f.load("w").item());
            SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> f.load("ids"));
            assertTrue(e.getMessage().contains("tensor 'ids' has dtype I64"), e.getMessage());
        }
    }

    @Test
    void offsetsNotMatchingShape() throws IOException {
        assertFormatError(file(entry("x", "F32", "[2, 3]", 0, 20), new byte[20]),
                "tensor 'x': data_offsets [0,20] span 20 bytes but shape [2, 3] of F32 needs 24");
        assertFormatError(file(entry("x", "F32", "[2, -3]", 0, 20), new byte[20]), "shape [2,-3] must hold integers");
        assertFormatError(file(entry("x", "F32", "[1]", 4, 0), new byte[4]), "end before they begin");
    }

    @Test
    void offsetsOutOfRangeOverlappingOrWithGaps() throws IOException {
        assertFormatError(file(entry("x", "F32", "[2]", 0, 8), new byte[4]), "run past the end of the 4-byte data buffer");
        assertFormatError(file("{" + entry("a", "F32", "[2]", 0, 8) + ", " + entry("b", "F32", "[2]", 4, 12) + "}", new byte[12]),
                "tensor 'b' data_offsets [4, 12] overlap tensor 'a' [0, 8]");
        assertFormatError(file("{" + entry("a", "F32", "[1]", 0, 4) + ", " + entry("b", "F32", "[1]", 8, 12) + "}", new byte[12]),
                "gap in the data buffer: bytes [4, 8) before tensor 'b'");
        assertFormatError(file(entry("a", "F32", "[1]", 0, 4), new byte[12]), "data buffer has 12 bytes but the tensors cover only 4");
    }

    @Test
    void useAfterCloseFailsClearly() throws IOException {
        Path p = file(entry("a", "F32", "[1]", 0, 4), new byte[4]);
        SafetensorsFile f = Safetensors.open(p);
        f.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> f.load("a"));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }

    // ---- helpers -------------------------------------------------------------------------------

    private static String entry(String name, String dtype, String shape, long begin, long end) {
        String e = "\"" + name + "\": {\"dtype\": \"" + dtype + "\", \"shape\": " + shape + ", \"data_offsets\": [" + begin + ", " + end + "]}";
        return e;
    }

    private int count;

    /** A file with the given header (wrapped in braces unless it already is an object or array) and data. */
    private Path file(String header, byte[] data) throws IOException {
        String json = header.startsWith("{") || header.startsWith("[") ? header : "{" + header + "}";
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).array());
        out.write(h);
        out.write(data);
        Path p = dir.resolve("bad" + (count++) + ".safetensors");
        Files.write(p, out.toByteArray());
        return p;
    }

    private void assertFormatError(byte[] bytes, String expected) throws IOException {
        Path p = dir.resolve("bad" + (count++) + ".safetensors");
        Files.write(p, bytes);
        assertFormatError(p, expected);
    }

    private static void assertFormatError(Path p, String expected) {
        SafetensorsFormatException e = assertThrows(SafetensorsFormatException.class, () -> Safetensors.open(p).close());
        assertTrue(e.getMessage().startsWith(p.toString() + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: " + e.getMessage());
        assertTrue(e.getClass().getSimpleName().endsWith("FormatException"));
    }
}
