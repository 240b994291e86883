package dev.weft.offload;

import dev.weft.core.MemoryPool;

/** A tier that is a {@link MemoryPool}: its budget, and its live bytes now and at their peak. */
abstract class PoolTier implements MemoryTier {
    protected final MemoryPool pool;

    PoolTier(MemoryPool pool) {
        this.pool = pool;
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
