package dev.weft.trainer;

import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.optimizers.ParameterGroups;
import dev.weft.parallel.DataParallel;
import dev.weft.parallel.DeviceMesh;
import dev.weft.parallel.GradientSync;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.tensor.TensorParallelSync;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
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

    /**
     * This rank's whole state as the files of a checkpoint that holds this rank alone: its weights
     * and its optimizer state as chunks (a data-parallel replica writes its own copy, so that it
     * restores without its peers), {@code trainer.yaml} and {@code config.json}. Any number of
     * ranks' snapshots together are a loadable checkpoint of the run. The bytes go into
     * {@code buffer}, grown as needed; the snapshot's chunks are slices of it.
     */
    dev.weft.checkpoint.Snapshot snapshot(SnapshotBuffer buffer, long step, long tokensSeen, long seed, byte[] configJson) {
        int rank = mesh == null ? 0 : mesh.world().rank(), ranks = mesh == null ? 1 : mesh.world().size();
        String mine = String.format("rank-%05d.safetensors", rank);
        Checkpoint.State st = new Checkpoint.State(step, tokensSeen, seed, optimizer.steps(), optimizer.name());
        byte[] yaml = Checkpoint.trainerYaml(st, ranks).getBytes(java.nio.charset.StandardCharsets.UTF_8);
        try (dev.weft.core.Scope s = dev.weft.core.Scope.open(); var ng = dev.weft.core.Autograd.noGrad()) {
            boolean sharded = shardsWeights();
            var weights = Chunks.encode(sharded ? heldWeights(true, true) : model.namedParameters(), sharded ? this::weightRange : this::blockRange,
                    Map.of("weft.step", Long.toString(step)));
            var state = Chunks.encodeOptimizer(optimizer, placement());
            MemorySegment all = buffer.reserve(weights.byteSize() + state.byteSize() + yaml.length + configJson.length + 4 * 64); // each file 64-aligned
            List<dev.weft.checkpoint.Chunk> chunks = new java.util.ArrayList<>();
            long at = 0;
            at = SnapshotBuffer.put(chunks, "model/" + mine, all, at, weights.byteSize(), weights::writeTo);
            dev.weft.checkpoint.DistributedSnapshots.pause("copy", step); // a kill test's moment: weights copied, optimizer state not yet
            at = SnapshotBuffer.put(chunks, "optimizer/" + mine, all, at, state.byteSize(), state::writeTo);
            at = SnapshotBuffer.put(chunks, "trainer.yaml", all, at, yaml.length, m -> MemorySegment.copy(yaml, 0, m, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, yaml.length));
            SnapshotBuffer.put(chunks, "config.json", all, at, configJson.length,
                    m -> MemorySegment.copy(configJson, 0, m, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, configJson.length));
            var record = new dev.weft.checkpoint.SnapshotRecord(step, tokensSeen, new long[] {seed},
                    Map.of("optimizer", optimizer.name(), "optimizer_steps", Long.toString(optimizer.steps())));
            return new dev.weft.checkpoint.Snapshot(record, chunks);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("cannot lay out the snapshot of step " + step + ": " + e.getMessage(), e);
        } finally {
            if (offload != null) offload.settle(); // what the copy paged in from host or disk goes back
        }
    }

    /** Restores this rank from its own snapshot, through its files written under {@code scratch} (memory: the store's filesystem). */
    Checkpoint.State restore(dev.weft.checkpoint.Snapshot snapshot, Path scratch, long seed) {
        try {
            Checkpoint.deleteRecursively(scratch);
            for (dev.weft.checkpoint.Chunk c : snapshot.chunks()) {
                Path f = scratch.resolve(c.name());
                java.nio.file.Files.createDirectories(f.getParent());
                try (var ch = java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE)) {
                    var b = c.bytes().asByteBuffer();
                    while (b.hasRemaining()) ch.write(b);
                }
            }
            try {
                boolean sharded = shardsWeights();
                Checkpoint.loadWeights(scratch, sharded ? heldWeights(true, true) : model.namedParameters(), sharded ? this::weightRange : this::blockRange);
                Checkpoint.State st = Checkpoint.loadTraining(scratch, optimizer, placement());
                if (st.seed() != seed)
                    throw new IllegalArgumentException("the snapshot was taken with train.seed = " + st.seed() + ", the config says " + seed);
                return st;
            } finally {
                if (offload != null) offload.settle();
                Checkpoint.deleteRecursively(scratch);
            }
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("cannot restore the snapshot through " + scratch + ": " + e.getMessage(), e);
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

    /**
     * The ranks that write a checkpoint together, and where each one's optimizer state and weights
     * lie. With the out_dir on one shared filesystem, each piece of state is written once; with a
     * directory per node, each node writes everything its own ranks need to resume (the first of
     * its ranks that holds a replicated piece writes it), so a restart finds it on every node.
     */
    private Checkpoint.Writers writers() {
        if (mesh == null) return Checkpoint.Writers.single(model.namedParameters());
        ProcessGroup world = mesh.world();
        boolean leader = sharedOutDir ? world.rank() == 0 : world.rank() % ranksPerNode == 0;
        // a replica (the same coordinates but dp; and but tp, for what tensor-parallel peers also share) writes once, or once per node
        boolean firstReplica = sharedOutDir ? mesh.dpIndex() == 0 : firstOnNode(true);
        boolean writesReplicated = sharedOutDir ? mesh.dpIndex() == 0 && mesh.tpIndex() == 0 : firstOnNode(false);
        boolean holdsAShare = zero > 0 || firstReplica; // DDP ranks hold replicas: one writes
        if (shardsWeights())
            return new Checkpoint.Writers(world.rank(), world.size(), leader, world::barrier, true, placement(), heldWeights(writesReplicated, firstReplica),
                    this::weightRange);
        if (!splitsWeights()) return new Checkpoint.Writers(world.rank(), world.size(), leader, world::barrier, holdsAShare, placement(), null, null);
        Map<String, Tensor> held = new LinkedHashMap<>();
        if (firstReplica) model.namedParameters().forEach((name, p) -> {
            if (writesReplicated || !model.namedPlacements().get(name).isReplicated()) held.put(name, p);
        });
        return new Checkpoint.Writers(world.rank(), world.size(), leader, world::barrier, holdsAShare, placement(), held, this::blockRange);
    }

    /**
     * True when no lower rank on this node has this rank's pipeline stage (and, with
     * {@code sameTp}, its tensor-parallel index): the rank that writes, for this node, what those
     * ranks hold alike.
     */
    private boolean firstOnNode(boolean sameTp) {
        int r = mesh.world().rank(), tp = mesh.shape().tp(), dp = mesh.shape().dp();
        for (int q = r / ranksPerNode * ranksPerNode; q < r; q++)
            if (q / (tp * dp) == mesh.ppIndex() && (!sameTp || q % tp == mesh.tpIndex())) return false;
        return true;
    }

    /** How checkpoints are written: once on a shared out_dir, or per node (see {@link #writers()}). */
    void outDirPerNode(int ranksPerNode, boolean shared) {
        this.ranksPerNode = ranksPerNode;
        this.sharedOutDir = shared;
    }

    private int ranksPerNode = 1;
    private boolean sharedOutDir = true;

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
