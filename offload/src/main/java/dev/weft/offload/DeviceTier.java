package dev.weft.offload;

import dev.weft.core.MemoryPool;

/** The compute pool seen as a tier: where tensors are computed on, under {@code train.memory_budget_mib}. */
public final class DeviceTier implements MemoryTier {
    private final MemoryPool pool;

    public DeviceTier(MemoryPool pool) {
        this.pool = pool;
    }

    @Override
    public String name() {
        return "device";
    }

    @Override
    public long budgetBytes() {
        return pool.budget();
    }

    @Override
    public long currentBytes() {
        return pool.liveBytes();
    }

    @Override
    public long peakBytes() {
        return pool.peakLiveBytes();
    }

    @Override
    public void resetPeak() {
        pool.resetPeaks();
    }
}
