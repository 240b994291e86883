package dev.weft.trainer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * A Hugging Face {@code model.safetensors.index.json}: the weights of a large model split over
 * several safetensors files, with a {@code weight_map} from each tensor name to the file holding it.
 */
final class ShardIndex {
    static final String FILE = "model.safetensors.index.json";

    private ShardIndex() {}

    /** The shard files {@code index} names, in the order they first appear; each must exist. */
    static List<Path> files(Path index) {
        JsonNode map;
        try {
            map = new ObjectMapper().readTree(index.toFile()).path("weight_map");
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException("malformed JSON in " + index + ": " + e.getOriginalMessage().lines().findFirst().orElse(""));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + index + ": " + e.getMessage(), e);
        }
        if (!map.isObject() || map.isEmpty()) throw new IllegalArgumentException(index + " has no weight_map from tensor names to shard files");
        Set<String> names = new LinkedHashSet<>();
        for (var e : map.properties()) {
            String shard = e.getValue().asText("");
            // a shard is a plain file beside the index: a path that leaves the directory is not one
            if (!e.getValue().isTextual() || shard.isEmpty() || shard.contains("/") || shard.contains("\\") || shard.equals(".."))
                throw new IllegalArgumentException(index + ": weight_map entry '" + e.getKey() + "' names no shard file beside it (" + e.getValue() + ")");
            names.add(shard);
        }
        Path dir = index.toAbsolutePath().getParent();
        List<Path> files = new ArrayList<>();
        for (String name : names) {
            Path f = dir.resolve(name);
            if (!Files.isRegularFile(f)) throw new IllegalArgumentException(index + " names shard " + name + ", which is missing from " + dir);
            files.add(f);
        }
        return files;
    }
}
