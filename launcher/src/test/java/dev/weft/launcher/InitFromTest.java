package dev.weft.launcher;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.weft.core.Tensor;
import dev.weft.core.io.Safetensors;
import dev.weft.core.io.SafetensorsFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Fine-tuning ({@code model.init_from}) from a Hugging Face directory: its weights split over two
 * shards and an index train exactly as the single model.safetensors does, and unlike a fresh start.
 */
class InitFromTest {
    private static final String MODEL = "model: {layers: 1, d_model: 32, heads: 2, ffn_dim: 64, vocab: 256, max_seq_len: 32%s}\n";

    @TempDir
    Path dir;

    @Test
    void shardedAndSingleFileDirectoriesFineTuneAlike() throws IOException {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 300; i++) text.append("the quick brown fox jumps over the lazy dog ").append(i % 7).append('\n');
        Files.writeString(dir.resolve("t.txt"), text);
        List<Double> fresh = losses(train("base", "", 2), "base");
        Path single = dir.resolve("single");
        assertEquals(0, CliTest.run("export", "--checkpoint", dir.resolve("base").toString(), "--out", single.toString()).code());
        Path sharded = split(single, dir.resolve("sharded"));

        List<Double> fromSingle = losses(train("from-single", ", init_from: single", 2), "from-single");
        List<Double> fromSharded = losses(train("from-sharded", ", init_from: sharded", 2), "from-sharded");
        assertEquals(fromSingle, fromSharded, "the same weights, the same losses");
        // the base run is a fresh start of the same config: its first loss is before any update
        assertNotEquals(fresh.getFirst(), fromSingle.getFirst(), "the first step starts from the loaded weights");

        Files.delete(sharded.resolve("model-00001-of-00002.safetensors"));
        CliTest.Run missing = train("missing", ", init_from: sharded", 1);
        assertEquals(2, missing.code(), missing.err());
        assertTrue(missing.err().contains("model-00001-of-00002.safetensors, which is missing") && missing.err().strip().lines().count() == 1, missing.err());

        Path cfg = dir.resolve("wide.yaml");
        Files.writeString(cfg, MODEL.formatted(", init_from: base").replace("d_model: 32", "d_model: 64") + common("wide", 1));
        CliTest.Run wide = CliTest.run("train", cfg.toString());
        assertEquals(2, wide.code(), wide.err());
        assertTrue(wide.err().contains("model.init_from:") && wide.err().contains("d_model 32 vs 64") && wide.err().strip().lines().count() == 1, wide.err());
    }

    private CliTest.Run train(String out, String init, int steps) throws IOException {
        Path cfg = dir.resolve(out + ".yaml");
        Files.writeString(cfg, MODEL.formatted(init) + common(out, steps));
        CliTest.Run r = CliTest.run("train", cfg.toString());
        return r;
    }

    private static String common(String out, int steps) {
        return """
                data: {text: t.txt, cache_dir: cache}
                train: {steps: %d, micro_batch: 2, eval_every: 100, eval_batches: 1, save_every: %d, out_dir: %s}
                sample: {tokens: 2}
                """.formatted(steps, steps, out);
    }

    private List<Double> losses(CliTest.Run r, String out) throws IOException {
        assertEquals(0, r.code(), r.err());
        List<Double> losses = new ArrayList<>();
        for (String line : Files.readAllLines(dir.resolve(out).resolve("metrics.jsonl"))) {
            JsonNode j = new ObjectMapper().readTree(line);
            if (j.has("loss")) losses.add(j.get("loss").doubleValue());
        }
        assertFalse(losses.isEmpty());
        return losses;
    }

    /** {@code from}'s model.safetensors as two shards plus model.safetensors.index.json in {@code to}. */
    private static Path split(Path from, Path to) throws IOException {
        Files.createDirectories(to);
        Files.copy(from.resolve("config.json"), to.resolve("config.json"));
        Map<String, Tensor> first = new LinkedHashMap<>(), second = new LinkedHashMap<>();
        ObjectNode index = new ObjectMapper().createObjectNode();
        ObjectNode map = index.putObject("weight_map");
        try (SafetensorsFile f = Safetensors.open(from.resolve("model.safetensors"))) {
            int i = 0;
            for (String name : f.names()) {
                boolean one = i++ % 2 == 0;
                (one ? first : second).put(name, f.load(name));
                map.put(name, one ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
            }
        }
        Safetensors.write(to.resolve("model-00001-of-00002.safetensors"), first, Map.of("format", "pt"));
        Safetensors.write(to.resolve("model-00002-of-00002.safetensors"), second, Map.of("format", "pt"));
        new ObjectMapper().writeValue(to.resolve("model.safetensors.index.json").toFile(), index);
        first.values().forEach(Tensor::close);
        second.values().forEach(Tensor::close);
        return to;
    }
}
