package dev.weft.offload;

import dev.weft.core.DType;
import dev.weft.core.MemoryPool;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;

/**
 * Host memory outside the compute budget: its own {@link MemoryPool}, so what is offloaded here
 * never counts against {@code train.memory_budget_mib}. On the CPU backend both pools are RAM and
 * the move is a copy; under a GPU backend this pool is pinned host memory and the copy a DMA.
 */
public final class HostTier extends PoolTier {
    public HostTier(long budgetBytes) {
        super(new MemoryPool("host", budgetBytes));
    }

    /** An uninitialised buffer of {@code bytes} here (rounded up to whole floats), owned by the caller. */
    public Tensor allocate(long bytes, String label) {
        int floats = Math.toIntExact((bytes + 3) / 4);
        return Scope.outside(() -> Tensor.allocate(pool, DType.F32, label, floats));
    }

    public MemoryPool pool() {
        return pool;
    }

    @Override
    public String name() {
        return "host";
    }
}
