package dev.weft.trainer;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.io.SafetensorsFile;
import dev.weft.core.io.Safetensors;
import dev.weft.core.model.Llama;
import dev.weft.optimizers.Optimizer;
import org.yaml.snakeyaml.DumperOptions;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * A saved training state on disk: one directory per step under {@code OUT/checkpoints/}.
 * <pre>
 *   step-00000100/model.safetensors      weights, Hugging Face names (ZeRO-3: model/rank-*.safetensors, chunks)
 *   step-00000100/config.json            Hugging Face LlamaConfig (the directory loads in transformers)
 *   step-00000100/optimizer/rank-00000.safetensors
 *                                        each rank's optimizer state, as layout-independent chunks
 *                                        (see Chunks); scalar state in the metadata
 *   step-00000100/trainer.yaml           step, tokens seen, data position, seeds, optimizer steps
 *   latest                               the name of the newest complete step directory
 * </pre>
 * A checkpoint is written into a temporary directory and renamed into place, and {@code latest}
 * is replaced atomically afterwards, so a crash at any moment leaves the previous checkpoint whole.
 */
public final class Checkpoint {
    private Checkpoint() {}

    /** What the loop needs besides tensors to continue exactly. */
    public record State(long step, long tokensSeen, long seed, long optimizerSteps, String optimizer) {}

    /**
     * The ranks that write one checkpoint together: each writes its own optimizer chunks (unless its
     * state replicates another rank's, as under DDP), the leader (rank 0; on every node, when the
     * nodes share no filesystem, the node's first rank) the config and trainer state, and
     * {@code barrier} holds them together around it. {@code weights} are the weights this rank
     * writes as chunks, placed by {@code weightRange}; null: rank 0 writes model.safetensors whole.
     */
    public record Writers(int rank, int count, boolean leader, Runnable barrier, boolean writesOptimizer, Chunks.Placement placement,
                          Map<String, Tensor> weights, java.util.function.Function<String, Chunks.Range> weightRange) {
        /** One process, holding everything. */
        public static Writers single(Map<String, Tensor> parameters) {
            return new Writers(0, 1, true, () -> {}, true, new Chunks.Placement() {
                @Override public long[] shardOf(String name) { return null; }
                @Override public dev.weft.core.nn.Placement box(String name) { return dev.weft.core.nn.Placement.replicated(parameters.get(name).shape()); }
            }, null, null);
        }
    }

    public static Path save(Path outDir, State state, Llama model, String tokenizer, Optimizer optimizer, int keep) {
        return save(outDir, state, model, tokenizer, optimizer, keep, Writers.single(model.namedParameters()));
    }

    /** Every rank of {@code writers} calls this with the same state; rank 0 returns the directory. */
    public static Path save(Path outDir, State state, Llama model, String tokenizer, Optimizer optimizer, int keep, Writers writers) {
        Path root = outDir.resolve("checkpoints");
        String name = String.format("step-%08d", state.step());
        Path tmp = root.resolve(name + ".tmp");
        Path dir = root.resolve(name);
        boolean leader = writers.leader();
        try {
            if (leader) {
                Files.createDirectories(root);
                deleteRecursively(tmp);
                Files.createDirectories(tmp.resolve("optimizer"));
                if (writers.weights() != null) Files.createDirectories(tmp.resolve("model"));
            }
            writers.barrier().run();
            String mine = String.format("rank-%05d.safetensors", writers.rank());
            if (writers.writesOptimizer()) Chunks.writeOptimizer(tmp.resolve("optimizer").resolve(mine), optimizer, writers.placement());
            if (writers.weights() != null) {
                Chunks.write(tmp.resolve("model").resolve(mine), writers.weights(), writers.weightRange(), Map.of("weft.step", Long.toString(state.step())));
            }
            if (leader) {
                if (writers.weights() == null)
                    Safetensors.write(tmp.resolve("model.safetensors"), model.namedParameters(), Map.of("format", "pt", "weft.step", Long.toString(state.step())));
                HfConfig.write(tmp.resolve("config.json"), model.config(), tokenizer);
                dev.weft.trainer.data.Tokenizer.writeFiles(tokenizer, tmp); // a tokenizer.json travels with the weights
                Files.writeString(tmp.resolve("trainer.yaml"), trainerYaml(state, writers.count()));
            }
            writers.barrier().run();
            if (!leader) return dir;
            deleteRecursively(dir);
            Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
            Path latestTmp = root.resolve("latest.tmp");
            Files.writeString(latestTmp, name + "\n");
            try {
                Files.move(latestTmp, root.resolve("latest"), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(latestTmp, root.resolve("latest"), StandardCopyOption.REPLACE_EXISTING);
            }
            prune(root, keep, name);
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException("could not save checkpoint to " + dir + ": " + e.getMessage(), e);
        }
    }

    /** The file {@code trainer.yaml}: the loop's counters, and how many ranks wrote optimizer files. */
    static String trainerYaml(State state, int ranks) {
        Map<String, Object> y = new LinkedHashMap<>();
        y.put("step", state.step());
        y.put("tokens_seen", state.tokensSeen());
        y.put("seed", state.seed());
        y.put("optimizer", state.optimizer());
        y.put("optimizer_steps", state.optimizerSteps());
        y.put("optimizer_ranks", ranks);
        DumperOptions opts = new DumperOptions();
        opts.setDefaultFlowStyle(DumperOptions.FlowStyle.BLOCK);
        return new Yaml(opts).dump(y);
    }

    /** Every chunk of checkpoint {@code dir} (its model and optimizer files), each read and checked against its stored CRC32C. */
    public static List<Chunks.Check> verify(Path dir) {
        List<Chunks.Check> out = new ArrayList<>();
        for (String part : List.of("model", "optimizer")) {
            if (!Files.isDirectory(dir.resolve(part)) && !Files.exists(dir.resolve(part + ".safetensors"))) continue;
            for (Path f : Chunks.files(dir, part)) out.addAll(Chunks.verify(f));
        }
        if (out.isEmpty()) throw new IllegalArgumentException(dir + " holds no model or optimizer files: not a weft checkpoint");
        return out;
    }

    /** The step directories under {@code outDir}/checkpoints (or under {@code dir} itself when it is a checkpoints directory), oldest first. */
    public static List<Path> all(Path dir) {
        Path root = Files.isDirectory(dir.resolve("checkpoints")) ? dir.resolve("checkpoints") : dir;
        try (Stream<Path> s = Files.list(root)) {
            return s.filter(p -> Files.isDirectory(p) && p.getFileName().toString().matches("step-\\d{8}")).sorted().toList();
        } catch (java.nio.file.NoSuchFileException e) {
            throw new IllegalArgumentException("no such directory: " + root);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + root + ": " + e.getMessage(), e);
        }
    }

    /** The newest complete checkpoint under {@code outDir}, or null when there is none. */
    public static Path latest(Path outDir) {
        Path root = outDir.resolve("checkpoints");
        Path pointer = root.resolve("latest");
        try {
            if (!Files.exists(pointer)) return null;
            Path dir = root.resolve(Files.readString(pointer).trim());
            if (!Files.isDirectory(dir)) throw new IllegalArgumentException(pointer + " names " + dir + ", which does not exist");
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + pointer + ": " + e.getMessage(), e);
        }
    }

    /**
     * Loads weights into {@code model}; names and shapes must match exactly. A checkpoint written
     * with sharded weights (model/rank-*.safetensors, ZeRO-3) is assembled from its chunks, and a
     * Hugging Face directory with sharded weights from the files its model.safetensors.index.json names.
     */
    public static void loadModel(Path dir, Llama model) {
        if ((Files.isDirectory(dir.resolve("model")) || Files.exists(dir.resolve(ShardIndex.FILE))) && !Files.exists(dir.resolve("model.safetensors"))) {
            Map<String, Tensor> params = model.namedParameters();
            Chunks.read(Chunks.files(dir, "model"), params, name -> Chunks.Range.whole(params.get(name)), "weight");
            return;
        }
        Path file = dir.resolve("model.safetensors");
        try (SafetensorsFile f = open(file); Scope s = Scope.open()) {
            for (var e : model.namedParameters().entrySet()) {
                String name = e.getKey();
                Tensor p = e.getValue();
                if (!f.names().contains(name)) {
                    if (name.equals("lm_head.weight")) throw new IllegalArgumentException(file + " has no lm_head.weight; is the model tied (model.tied_embeddings: true)?");
                    throw new IllegalArgumentException(file + " has no tensor '" + name + "' that the model needs");
                }
                if (!Arrays.equals(f.shape(name), p.shape()))
                    throw new IllegalArgumentException(file + ": '" + name + "' has shape " + Arrays.toString(f.shape(name))
                            + " but the model expects " + Arrays.toString(p.shape()) + "; does the model config match the checkpoint?");
                f.loadInto(name, p);
            }
        }
    }

    /** Restores optimizer state (one process holding everything) and returns the trainer state. */
    public static State loadTraining(Path dir, Optimizer optimizer) {
        return loadTraining(dir, optimizer, Writers.single(java.util.Collections.emptyMap()).placement());
    }

    /**
     * Restores the optimizer state this rank holds under {@code placement}, whatever layout wrote
     * it, and returns the trainer state.
     */
    /**
     * Loads the weights this rank holds, each placed in its whole parameter by {@code range}, from
     * model.safetensors or the chunks of a sharded checkpoint.
     */
    public static void loadWeights(Path dir, Map<String, Tensor> held, java.util.function.Function<String, Chunks.Range> range) {
        Chunks.read(Chunks.files(dir, "model"), held, range, "weight");
    }

    public static State loadTraining(Path dir, Optimizer optimizer, Chunks.Placement placement) {
        State st = readState(dir);
        if (!st.optimizer().equals(optimizer.name()))
            throw new IllegalArgumentException(dir + " was saved with optimizer '" + st.optimizer() + "', the config asks for '" + optimizer.name() + "'");
        Chunks.readOptimizer(Chunks.files(dir, "optimizer"), optimizer, placement, st.optimizerSteps());
        return st;
    }

    private static SafetensorsFile open(Path file) {
        try {
            return Safetensors.open(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    public static State readState(Path dir) {
        Path file = dir.resolve("trainer.yaml");
        try {
            Map<?, ?> y = new Yaml(new SafeConstructor(new LoaderOptions())).load(Files.readString(file));
            return new State(num(y, "step", file), num(y, "tokens_seen", file), num(y, "seed", file), num(y, "optimizer_steps", file),
                    String.valueOf(y.get("optimizer")));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    private static long num(Map<?, ?> y, String key, Path file) {
        Object v = y.get(key);
        if (!(v instanceof Number n)) throw new IllegalArgumentException(file + ": '" + key + "' is missing or not a number");
        return n.longValue();
    }

    /**
     * Keeps the newest {@code keep} checkpoints up to {@code newest}, the one just written. Later
     * steps belong to a run this one does not continue (a fresh start in the same out_dir, or a
     * resume from further back), so they go: left, they would outrank this run's own checkpoints.
     */
    private static void prune(Path root, int keep, String newest) throws IOException {
        List<Path> dirs = new ArrayList<>();
        try (Stream<Path> s = Files.list(root)) {
            s.filter(p -> Files.isDirectory(p) && p.getFileName().toString().matches("step-\\d{8}")).forEach(dirs::add);
        }
        dirs.sort(Comparator.comparing(p -> p.getFileName().toString()));
        List<Path> mine = new ArrayList<>();
        for (Path d : dirs) {
            if (d.getFileName().toString().compareTo(newest) > 0) deleteRecursively(d);
            else mine.add(d);
        }
        for (int i = 0; i < mine.size() - keep; i++) deleteRecursively(mine.get(i));
    }

    static void deleteRecursively(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }
}
