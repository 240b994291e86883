package dev.weft.trainer.hf;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.io.Safetensors;
import dev.weft.core.model.Llama;
import dev.weft.core.model.LlamaConfig;
import dev.weft.trainer.Checkpoint;
import dev.weft.trainer.Generator;
import dev.weft.trainer.HfConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A Hugging Face directory whose weights are split over two safetensors files and a
 * model.safetensors.index.json loads into the same model as the single-file directory.
 */
class ShardedWeightsTest {
    private static final LlamaConfig CONFIG = new LlamaConfig(2, 32, 4, 2, 64, 96, 32, 10000f, 1e-5f, false, 0.02);
    private static final int[] IDS = {3, 17, 42, 5, 88, 1, 60, 9};

    @TempDir
    Path dir;

    @Test
    void twoShardsGiveTheLogitsAndTextOfOneFile() throws IOException {
        Path single = Files.createDirectories(dir.resolve("single"));
        Path sharded = Files.createDirectories(dir.resolve("sharded"));
        writeBoth(single, sharded);
        assertFalse(Files.exists(sharded.resolve("model.safetensors")));

        Llama a = loaded(single), b = loaded(sharded), other = new Llama(CONFIG, 99);
        try {
            float[] la = logits(a), lb = logits(b);
            assertArrayEquals(la, lb, "logits of the sharded directory");
            assertFalse(java.util.Arrays.equals(la, logits(other)), "the loaded weights are not what any fresh model computes");
            assertArrayEquals(new Generator(a, 7).generate(IDS, 12, 0.8, 10), new Generator(b, 7).generate(IDS, 12, 0.8, 10));
        } finally {
            a.close();
            b.close();
            other.close();
        }
    }

    @Test
    void aMissingShardIsAOneLineErrorNamingIt() throws IOException {
        Path single = Files.createDirectories(dir.resolve("single"));
        Path sharded = Files.createDirectories(dir.resolve("sharded"));
        writeBoth(single, sharded);
        Files.delete(sharded.resolve("model-00002-of-00002.safetensors"));
        Llama m = new Llama(CONFIG, 0);
        try {
            var e = assertThrows(IllegalArgumentException.class, () -> Checkpoint.loadModel(sharded, m));
            assertTrue(e.getMessage().contains("model-00002-of-00002.safetensors") && e.getMessage().contains("missing"), e.getMessage());
            assertFalse(e.getMessage().contains("\n"));
        } finally {
            m.close();
        }
    }

    /** The weights of one seeded model: whole in {@code single}, split in two plus an index in {@code sharded}. */
    private static void writeBoth(Path single, Path sharded) throws IOException {
        Llama model = new Llama(CONFIG, 1234);
        try {
            Map<String, Tensor> all = model.namedParameters();
            HfConfig.write(single.resolve("config.json"), CONFIG, "byte");
            HfConfig.write(sharded.resolve("config.json"), CONFIG, "byte");
            Safetensors.write(single.resolve("model.safetensors"), all, Map.of("format", "pt"));
            List<String> names = List.copyOf(all.keySet());
            Map<String, Tensor> first = new LinkedHashMap<>(), second = new LinkedHashMap<>();
            ObjectNode index = new ObjectMapper().createObjectNode();
            index.putObject("metadata").put("total_size", 0);
            ObjectNode map = index.putObject("weight_map");
            for (int i = 0; i < names.size(); i++) {
                boolean one = i % 2 == 0; // interleaved, so each file holds parts of every layer
                String file = one ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
                (one ? first : second).put(names.get(i), all.get(names.get(i)));
                map.put(names.get(i), file);
            }
            Safetensors.write(sharded.resolve("model-00001-of-00002.safetensors"), first, Map.of("format", "pt"));
            Safetensors.write(sharded.resolve("model-00002-of-00002.safetensors"), second, Map.of("format", "pt"));
            new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(sharded.resolve("model.safetensors.index.json").toFile(), index);
        } finally {
            model.close();
        }
    }

    private static Llama loaded(Path dir) {
        Llama m = new Llama(HfConfig.read(dir.resolve("config.json")).model(), 0);
        Checkpoint.loadModel(dir, m);
        return m;
    }

    private static float[] logits(Llama m) {
        try (Scope s = Scope.open()) {
            return m.forward(IDS, 1, IDS.length).toArray();
        }
    }
}
