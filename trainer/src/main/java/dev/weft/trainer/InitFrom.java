package dev.weft.trainer;

import dev.weft.core.model.LlamaConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code model.init_from}: the model directory a fine-tuning run takes its first weights from, a
 * weft checkpoint, a run (its newest checkpoint) or a Hugging Face Llama directory, one
 * model.safetensors or shards named by model.safetensors.index.json.
 */
final class InitFrom {
    private InitFrom() {}

    /**
     * The model directory {@code path} names (itself when it holds config.json, else a run's newest
     * checkpoint), checked to hold a model of shape {@code expected}.
     */
    static Path modelDir(Path path, LlamaConfig expected) {
        if (!Files.isDirectory(path)) throw new IllegalArgumentException("model.init_from: " + path + " is not a directory");
        Path dir = Files.exists(path.resolve("config.json")) ? path : Checkpoint.latest(path);
        if (dir == null) throw new IllegalArgumentException("model.init_from: " + path + " holds neither config.json nor checkpoints/latest");
        LlamaConfig found = HfConfig.read(dir.resolve("config.json")).model();
        List<String> differ = new ArrayList<>();
        if (found.layers() != expected.layers()) differ.add("layers " + found.layers() + " vs " + expected.layers());
        if (found.dModel() != expected.dModel()) differ.add("d_model " + found.dModel() + " vs " + expected.dModel());
        if (found.heads() != expected.heads()) differ.add("heads " + found.heads() + " vs " + expected.heads());
        if (found.kvHeads() != expected.kvHeads()) differ.add("kv_heads " + found.kvHeads() + " vs " + expected.kvHeads());
        if (found.ffnDim() != expected.ffnDim()) differ.add("ffn_dim " + found.ffnDim() + " vs " + expected.ffnDim());
        if (found.vocab() != expected.vocab()) differ.add("vocab " + found.vocab() + " vs " + expected.vocab());
        if (found.tiedEmbeddings() != expected.tiedEmbeddings()) differ.add("tied_embeddings " + found.tiedEmbeddings() + " vs " + expected.tiedEmbeddings());
        if (found.ropeTheta() != expected.ropeTheta()) differ.add("rope_theta " + found.ropeTheta() + " vs " + expected.ropeTheta());
        if (found.normEps() != expected.normEps()) differ.add("norm_eps " + found.normEps() + " vs " + expected.normEps());
        if (!differ.isEmpty())
            throw new IllegalArgumentException("model.init_from: " + dir + " holds another model than the config describes ("
                    + String.join(", ", differ) + ", there vs here)");
        return dir;
    }

}
