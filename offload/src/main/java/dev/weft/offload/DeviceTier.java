package dev.weft.offload;

import dev.weft.core.MemoryPool;

/** The compute pool seen as a tier: where tensors are computed on, under {@code train.memory_budget_mib}. */
public final class DeviceTier extends PoolTier {
    public DeviceTier(MemoryPool pool) {
        super(pool);
    }

    @Override
    public String name() {
        return "device";
    }
}
