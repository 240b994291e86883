package dev.weft.trainer;

import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.optimizers.ParameterGroups;
import dev.weft.parallel.DataParallel;
import dev.weft.parallel.DeviceMesh;
import dev.weft.parallel.GradientSync;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.tensor.TensorParallelSync;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What a rank must keep to continue a run exactly, and how it saves and restores itself: the
 * weights it holds, its optimizer state, and the step, tokens seen and seed (the sampler's
 * position and the schedule are functions of the step). Each rank writes its part as
 * layout-independent chunks (see {@link Chunks}); any layout reads any other's.
 */
final class TrainingState {
    private final Llama model;
    private final DeviceMesh mesh; // null: one process
    private final GradientSync sync;
    private final ParameterGroups optimizer;
    private final int zero;
    private final Offloading offload; // null: nothing offloaded

    TrainingState(Llama model, DeviceMesh mesh, Parallelize.Layout layout, int zero, Offloading offload) {
        this.offload = offload;
        this.model = model;
        this.mesh = mesh;
        this.sync = layout.sync();
        this.optimizer = layout.optimizer();
        this.zero = zero;
    }

    /** Every rank calls this with the same arguments; rank 0 finishes the directory and moves it into place. */
    Path save(Path outDir, long step, long tokensSeen, long seed, String tokenizer, int keep) {
        try {
            return Checkpoint.save(outDir, new Checkpoint.State(step, tokensSeen, seed, optimizer.steps(), optimizer.name()), model, tokenizer, optimizer,
                    keep, writers());
        } finally {
            if (offload != null) offload.settle(); // what the writer paged in from host or disk goes back
        }
    }

    /** Loads this rank's part of checkpoint {@code dir} and returns its trainer state, refusing another seed. */
    Checkpoint.State restore(Path dir, long seed) {
        try {
            return load(dir, seed);
        } finally {
            if (offload != null) offload.settle(); // what the loader wrote into offloaded tensors goes back to their tier
        }
    }

    /** Loads this rank's part of the weights in model directory {@code dir} (a checkpoint or a Hugging Face directory), nothing else. */
    void initWeights(Path dir) {
        try {
            loadWeights(dir);
        } finally {
            if (offload != null) offload.settle();
        }
    }

    private void loadWeights(Path dir) {
        if (shardsWeights()) {
            Checkpoint.loadWeights(dir, heldWeights(true, true), this::weightRange);
        } else {
            if (splitsWeights()) Checkpoint.loadWeights(dir, model.namedParameters(), this::blockRange);
            else Checkpoint.loadModel(dir, model);
            if (mesh != null) DataParallel.verifyIdenticalWeights(mesh.dp(), model.namedParameters());
        }
    }

    private Checkpoint.State load(Path dir, long seed) {
        loadWeights(dir);
        Checkpoint.State st = Checkpoint.loadTraining(dir, optimizer, placement());
        if (st.seed() != seed)
            throw new IllegalArgumentException(dir + " was trained with train.seed = " + st.seed() + ", the config says " + seed
                    + "; resuming with another seed would not continue the same run");
        return st;
    }

    private Chunks.Placement placement() {
        Map<String, dev.weft.core.nn.Placement> boxes = model.namedPlacements();
        return new Chunks.Placement() {
            @Override public long[] shardOf(String name) { return sync.shardOf(name); }
            @Override public dev.weft.core.nn.Placement box(String name) {
                // a split matrix stepped whole keeps whole optimizer state (every tensor-parallel rank alike)
                if (sync instanceof TensorParallelSync tps && tps.stepsWhole(name)) return dev.weft.core.nn.Placement.replicated(boxes.get(name).globalShape());
                return boxes.get(name);
            }
        };
    }

    /** True when no rank holds every weight whole: tensor parallelism splits them, a pipeline spreads them over stages. */
    private boolean splitsWeights() {
        return mesh != null && (mesh.shape().tp() > 1 || mesh.shape().pp() > 1);
    }

    /** Parameter {@code name} as the block of the whole this rank holds. */
    private Chunks.Range blockRange(String name) {
        return Chunks.Range.of(model.namedPlacements().get(name), 0, model.namedParameters().get(name).numel());
    }

    /** The ranks that write a checkpoint together, and where each one's optimizer state and weights lie. */
    private Checkpoint.Writers writers() {
        if (mesh == null) return Checkpoint.Writers.single(model.namedParameters());
        boolean holdsAShare = zero > 0 || mesh.dpIndex() == 0; // DDP ranks hold replicas: one writes
        // replicated weights are written once: by the first rank of the data-parallel and tensor-parallel groups
        boolean writesReplicated = mesh.dpIndex() == 0 && mesh.tpIndex() == 0;
        ProcessGroup world = mesh.world();
        if (shardsWeights())
            return new Checkpoint.Writers(world.rank(), world.size(), world::barrier, true, placement(), heldWeights(writesReplicated, mesh.dpIndex() == 0),
                    this::weightRange);
        if (!splitsWeights()) return new Checkpoint.Writers(world.rank(), world.size(), world::barrier, holdsAShare, placement(), null, null);
        Map<String, Tensor> held = new LinkedHashMap<>();
        if (mesh.dpIndex() == 0) model.namedParameters().forEach((name, p) -> {
            if (writesReplicated || !model.namedPlacements().get(name).isReplicated()) held.put(name, p);
        });
        return new Checkpoint.Writers(world.rank(), world.size(), world::barrier, holdsAShare, placement(), held, this::blockRange);
    }

    /**
     * Under ZeRO-3, the weights this rank holds: its shards of the sharded parameters, and the
     * replicated ones whole when {@code withReplicated} (rank 0 writes them; every rank reads them).
     */
    /** ZeRO-3: no rank holds its weights whole. */
    private boolean shardsWeights() {
        for (String name : model.namedParameters().keySet()) if (sync.shardsWeight(name)) return true;
        return false;
    }

    private Map<String, Tensor> heldWeights(boolean withReplicated, boolean withTensorParallelBlocks) {
        Map<String, Tensor> held = new LinkedHashMap<>();
        Map<String, dev.weft.core.nn.Placement> boxes = model.namedPlacements();
        model.namedParameters().forEach((name, p) -> {
            if (!sync.shardsWeight(name)) {
                if (boxes.get(name).isReplicated() ? withReplicated : withTensorParallelBlocks) held.put(name, p);
            } else if (sync.optimizerParameters().containsKey(name)) {
                held.put(name, sync.optimizerParameters().get(name));
            }
        });
        return held;
    }

    private Chunks.Range weightRange(String name) {
        if (!sync.shardsWeight(name)) return blockRange(name);
        long[] shard = sync.shardOf(name);
        return Chunks.Range.of(model.namedPlacements().get(name), shard[0], shard[1]);
    }
}
