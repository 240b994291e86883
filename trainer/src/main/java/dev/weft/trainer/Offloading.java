package dev.weft.trainer;

import dev.weft.core.Bytes;
import dev.weft.core.MemoryPool;
import dev.weft.core.Tensor;
import dev.weft.offload.ActivationOffload;
import dev.weft.offload.DeviceTier;
import dev.weft.offload.DiskTier;
import dev.weft.offload.HostTier;
import dev.weft.offload.MemoryTier;
import dev.weft.offload.Offloader;
import dev.weft.offload.OptimizerOffload;
import dev.weft.optimizers.Optimizer;
import dev.weft.offload.Tier;
import dev.weft.parallel.FullyShardedDataParallel;
import dev.weft.parallel.GradientSync;
import dev.weft.trainer.config.TrainConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The offload part of a rank's layout: the memory tiers and what was moved to them. Parameters
 * (ZeRO-3 weight shards) and optimizer state are offloaded once, after the layout is built, and
 * come back ahead of need; {@link #settle()} ends whatever a checkpoint paged in.
 */
final class Offloading implements AutoCloseable {
    private final DeviceTier device;
    private final HostTier host;
    private final DiskTier disk; // null when nothing goes to disk
    private final Offloader offloader;
    private final ActivationOffload activations;
    private final List<String> moved = new ArrayList<>();

    private Offloading(TrainConfig.Offload o, boolean usesDisk) {
        MemoryPool pool = MemoryPool.host();
        this.device = new DeviceTier(pool);
        this.host = new HostTier(o.hostBudgetMiB() > 0 ? o.hostBudgetMiB() << 20 : Long.MAX_VALUE);
        this.disk = usesDisk ? DiskTier.open(o.diskDir(), diskBudget(o), DiskTier.Io.parse("offload.disk_io", o.diskIo()), o.ioThreads()) : null;
        this.offloader = new Offloader(pool, host, disk, o.prefetchMiB() << 20);
        this.activations = new ActivationOffload(offloader);
    }

    private static long diskBudget(TrainConfig.Offload o) {
        if (o.diskBudgetMiB() > 0) return o.diskBudgetMiB() << 20;
        try {
            Files.createDirectories(o.diskDir());
            return Math.max(1, Files.getFileStore(o.diskDir()).getUsableSpace());
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("offload.disk_dir " + o.diskDir() + ": " + e.getMessage(), e);
        }
    }

    /** The tiers {@code o} needs, or null when it moves nothing off the compute pool (recomputation alone needs none). */
    static Offloading create(TrainConfig.Offload o) {
        boolean any = !o.parameters().equals("none") || !o.optimizer().equals("none") || o.activations().stream().anyMatch(a -> !a.equals("none"));
        if (!any) return null;
        boolean usesDisk = o.parameters().equals("disk") || o.optimizer().equals("disk") || o.activations().contains("disk");
        return new Offloading(o, usesDisk);
    }

    /** Moves what the layout holds to where {@code o} says: the ZeRO-3 weight shards of {@code sync} and {@code optimizer}'s state. */
    void apply(TrainConfig.Offload o, GradientSync sync, Optimizer optimizer) {
        Tier params = Tier.parse("offload.parameters", o.parameters());
        if (params != Tier.DEVICE) parameters(fsdpOf(sync), params);
        Tier state = Tier.parse("offload.optimizer", o.optimizer());
        if (state != Tier.DEVICE) {
            OptimizerOffload streamed = new OptimizerOffload(offloader, optimizer, sync.optimizerParameters(), state);
            moved.add("optimizer state " + Bytes.human(streamed.bytes()) + " to " + state.configName() + ", streamed through each step");
        }
        for (int i = 0; i < o.activations().size(); i++) {
            if (!o.activations(i).equals("none")) {
                moved.add("activations of " + (o.activations().size() == 1 ? "every layer" : "layer " + i) + " to " + o.activations(i));
                if (o.activations().size() == 1) break;
            }
        }
    }

    private static FullyShardedDataParallel fsdpOf(GradientSync sync) {
        if (sync instanceof FullyShardedDataParallel f) return f;
        throw new IllegalArgumentException("offload.parameters needs ZeRO-3 over a data-parallel group of 2 or more ranks (parallel.zero = 3); "
                + "this layout holds its weights whole");
    }

    /** ZeRO-3: each unit's weight shard lives on {@code tier} and comes back for its all-gather and the optimizer step. */
    private void parameters(FullyShardedDataParallel fsdp, Tier tier) {
        long bytes = 0;
        for (Tensor shard : fsdp.weightShards()) {
            offloader.offload(shard, tier, "parameter shard");
            bytes += shard.storage().bytes();
        }
        offloader.flush();
        fsdp.residency(new FullyShardedDataParallel.ShardResidency() {
            @Override public void prefetch(Tensor shard) { offloader.prefetch(offloader.handleOf(shard)); }
            @Override public void acquire(Tensor shard) { offloader.acquire(offloader.handleOf(shard)); }
            @Override public void release(Tensor shard) { offloader.release(offloader.handleOf(shard), false); }
        });
        moved.add("parameter shards " + Bytes.human(bytes) + " to " + tier.configName());
    }

    /** The policy source for layers that offload their activations. */
    ActivationOffload activations() {
        return activations;
    }

    /** The offloader, for the optimizer's and activations' residency. */
    Offloader offloader() {
        return offloader;
    }

    /** Writes back and unbinds what a checkpoint save or load paged in. */
    void settle() {
        offloader.settle();
    }

    /** What was moved where, for the start-up line. */
    String describe() {
        return String.join(", ", moved);
    }

    /** Every tier's current and peak bytes, one line. */
    String tiers() {
        List<MemoryTier> all = new ArrayList<>(List.of(device, host));
        if (disk != null) all.add(disk);
        StringBuilder sb = new StringBuilder("memory tiers:");
        for (MemoryTier t : all) sb.append(String.format(" %s %s (peak %s)%s", t.name(), Bytes.human(t.currentBytes()), Bytes.human(t.peakBytes()),
                t == disk ? " in " + disk.directory() + " via " + disk.io().name().toLowerCase() : ""));
        sb.append(String.format("; %s moved; %d page-ins through host memory outside the prefetch stream (checkpoints)", Bytes.human(offloader.movedBytes()), offloader.pageIns()));
        return sb.toString();
    }

    @Override
    public void close() {
        try {
            offloader.close();
        } finally {
            if (disk != null) disk.close(); // the scratch file goes whatever happened before
        }
    }
}
