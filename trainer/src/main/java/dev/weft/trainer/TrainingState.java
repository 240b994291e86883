package dev.weft.trainer;

import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.optimizers.ParameterGroups;
import dev.weft.parallel.DataParallel;
import dev.weft.parallel.DeviceMesh;
import dev.weft.parallel.FullyShardedDataParallel;
import dev.weft.parallel.GradientSync;

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

    TrainingState(Llama model, DeviceMesh mesh, Parallelize.Layout layout, int zero) {
        this.model = model;
        this.mesh = mesh;
        this.sync = layout.sync();
        this.optimizer = layout.optimizer();
        this.zero = zero;
    }

    /** Every rank calls this with the same arguments; rank 0 finishes the directory and moves it into place. */
    Path save(Path outDir, long step, long tokensSeen, long seed, String tokenizer, int keep) {
        return Checkpoint.save(outDir, new Checkpoint.State(step, tokensSeen, seed, optimizer.steps(), optimizer.name()), model, tokenizer, optimizer,
                keep, writers());
    }

    /** Loads this rank's part of checkpoint {@code dir} and returns its trainer state, refusing another seed. */
    Checkpoint.State restore(Path dir, long seed) {
        if (sync instanceof FullyShardedDataParallel fsdp) {
            Checkpoint.loadWeights(dir, heldWeights(fsdp, true), name -> weightRange(fsdp, name));
        } else {
            Checkpoint.loadModel(dir, model);
            if (mesh != null) DataParallel.verifyIdenticalWeights(mesh.dp(), model.namedParameters());
        }
        Checkpoint.State st = Checkpoint.loadTraining(dir, optimizer, placement());
        if (st.seed() != seed)
            throw new IllegalArgumentException(dir + " was trained with train.seed = " + st.seed() + ", the config says " + seed
                    + "; resuming with another seed would not continue the same run");
        return st;
    }

    private Chunks.Placement placement() {
        Map<String, Tensor> params = model.namedParameters();
        return new Chunks.Placement() {
            @Override public long[] shardOf(String name) { return sync.shardOf(name); }
            @Override public int[] globalShape(String name) { return params.get(name).shape(); }
        };
    }

    /** The ranks that write a checkpoint together, and where each one's optimizer state and weights lie. */
    private Checkpoint.Writers writers() {
        if (mesh == null) return Checkpoint.Writers.single(model.namedParameters());
        boolean holdsAShare = zero > 0 || mesh.dpIndex() == 0; // DDP ranks hold replicas: one writes
        if (!(sync instanceof FullyShardedDataParallel fsdp))
            return new Checkpoint.Writers(mesh.dpIndex(), mesh.dp().size(), () -> mesh.dp().barrier(), holdsAShare, placement(), null, null);
        return new Checkpoint.Writers(mesh.dpIndex(), mesh.dp().size(), () -> mesh.dp().barrier(), true, placement(),
                heldWeights(fsdp, mesh.dpIndex() == 0), name -> weightRange(fsdp, name));
    }

    /**
     * Under ZeRO-3, the weights this rank holds: its shards of the sharded parameters, and the
     * replicated ones whole when {@code withReplicated} (rank 0 writes them; every rank reads them).
     */
    private Map<String, Tensor> heldWeights(FullyShardedDataParallel fsdp, boolean withReplicated) {
        Map<String, Tensor> held = new LinkedHashMap<>();
        model.namedParameters().forEach((name, p) -> {
            if (!fsdp.isSharded(name)) {
                if (withReplicated) held.put(name, p);
            } else if (fsdp.optimizerParameters().containsKey(name)) {
                held.put(name, fsdp.optimizerParameters().get(name));
            }
        });
        return held;
    }

    private Chunks.Range weightRange(FullyShardedDataParallel fsdp, String name) {
        Tensor p = model.namedParameters().get(name);
        if (!fsdp.isSharded(name)) return Chunks.Range.whole(p);
        long[] shard = fsdp.shardOf(name);
        return new Chunks.Range(p.shape(), shard[0], shard[1]);
    }
}
