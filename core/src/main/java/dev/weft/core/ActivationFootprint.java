package dev.weft.core;

import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import java.util.function.Supplier;

/**
 * What a forward keeps between forward and backward, measured by running it once, for a planner
 * that chooses per layer between keeping, offloading and recomputing activations.
 *
 * @param savedBytes the distinct memory of every tensor saved for backward ({@link GradFn#save}, so
 *                   what saved-tensor hooks, and offload, would see), the forward's input included,
 *                   the parameters not
 * @param liveBytes  the memory the forward left allocated in the host pool when it returned: the
 *                   saved tensors, the output and every other intermediate its scope holds until
 *                   it closes (at the pool's accounting granularity)
 */
public record ActivationFootprint(long savedBytes, long liveBytes) {
    /**
     * Runs {@code forward} once with grad on, inside a scope of its own that frees what it made,
     * and counts what it kept; tensors sharing a storage count once. {@code parameters} are not
     * activations and are left out.
     */
    public static ActivationFootprint measure(Supplier<Tensor> forward, Collection<Tensor> parameters) {
        Set<Storage> excluded = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Tensor p : parameters) excluded.add(p.storage());
        Set<Storage> saved = Collections.newSetFromMap(new IdentityHashMap<>());
        SavedTensorHooks counting = new SavedTensorHooks() {
            @Override
            public Object pack(Tensor t) {
                saved.add(t.storage());
                return t;
            }

            @Override
            public Tensor unpack(Object packed) {
                return (Tensor) packed;
            }
        };
        MemoryPool pool = MemoryPool.host();
        long live;
        try (Scope s = Scope.open(); var grad = Autograd.enableGrad(); var hooks = SavedTensorHooks.install(counting)) {
            long before = pool.liveBytes();
            forward.get();
            live = pool.liveBytes() - before;
        }
        long bytes = 0;
        for (Storage st : saved) if (!excluded.contains(st)) bytes += st.bytes();
        return new ActivationFootprint(bytes, live);
    }
}
