package dev.weft.parallel;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.VectorMath;
import dev.weft.core.nn.Module;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.DoubleUnaryOperator;
import java.util.function.Predicate;

/**
 * ZeRO stage 3: parameters sharded too. The model is cut into units, one per wrapped module (each
 * decoder layer, and the root for what is left: embedding, final norm, head). A unit's parameters
 * live in one flat buffer, split into equal shards; each rank keeps only its shard of the weights,
 * of the gradients and of the optimizer state, so model state per rank is 16Ψ/N for AdamW.
 *
 * <ul>
 *   <li>Just before a unit's forward its weights are all-gathered into a buffer the parameters'
 *       tensors are bound to, and freed after it; again before its backward (when the gradient
 *       reaches its output) and freed once the gradient has passed its input. The root stays
 *       gathered from its forward to the end of the micro-step's backward.</li>
 *   <li>The next unit's gather is launched while the current one computes: the following layer
 *       in forward, the preceding one in backward.</li>
 *   <li>Gradients are reduce-scattered unit by unit during backward, every micro-step, and
 *       accumulated into the rank's shard.</li>
 *   <li>Parameters below {@code minNumel} elements, and those whose optimizer needs them whole,
 *       stay replicated and go through ZeRO-2 ({@link DataParallel}): gathering a norm's gain
 *       costs more in latency than it saves.</li>
 * </ul>
 * The working set is the gathered units in flight: the root plus at most two layers.
 */
public final class FullyShardedDataParallel implements GradientSync, Module.Hooks {
    private final ProcessGroup group;
    private final int ranks, rank;
    private final List<Unit> units = new ArrayList<>();
    /** Units in the order backward completes them (the last layer first, the root last), which is the order they are reduced in. */
    private final List<Unit> reduceOrder = new ArrayList<>();
    private final Map<Module, Unit> byModule = new IdentityHashMap<>();
    private final DataParallel replicated;
    private final Map<String, Tensor> optimizerParameters = new LinkedHashMap<>();
    private final List<Tensor> views = new ArrayList<>();
    private ShardResidency residency = ShardResidency.RESIDENT;
    private boolean armed, intermediate, hold;
    private int nextToLaunch;
    private long collectives;

    private record Slot(String name, Tensor param, long offset, long numel) {}

    private final class Unit {
        final int index;
        final Module module;
        final boolean root;
        final List<Slot> slots = new ArrayList<>();
        long numel;
        Tensor weights, grads; // this rank's shards, persistent
        Tensor gathered;       // the whole unit's weights while bound
        Work gather;
        Tensor bucket;         // the whole unit's gradients while in flight
        Tensor target;         // this rank's block of the bucket
        Work reduce;
        int pending;
        boolean ready;

        Unit(int index, Module module, boolean root) {
            this.index = index;
            this.module = module;
            this.root = root;
        }

        long shard() {
            return numel / ranks;
        }
    }

    /**
     * Shards {@code model}'s parameters over {@code group}. {@code wrapped} are the modules that
     * become units in forward order (the decoder layers); the rest of the model is the root unit.
     * {@code keepReplicated} names parameters that stay whole on every rank (ZeRO-2 for them).
     */
    public FullyShardedDataParallel(Module model, List<Module> wrapped, ProcessGroup group, long bucketBytes, int minNumel,
                                    Predicate<String> keepReplicated, Predicate<String> wholeTensor, int alignment) {
        this.group = group;
        this.ranks = group.size();
        this.rank = group.rank();
        Map<String, Tensor> all = model.namedParameters();
        Map<String, Module> owner = new LinkedHashMap<>();
        for (Module m : wrapped) for (String n : m.namedParameters().keySet()) owner.put(n, m);
        Map<String, Tensor> small = new LinkedHashMap<>();
        Unit root = new Unit(0, model, true);
        units.add(root);
        byModule.put(model, root);
        for (Module m : wrapped) {
            Unit u = new Unit(units.size(), m, false);
            units.add(u);
            byModule.put(m, u);
        }
        for (var e : all.entrySet()) {
            String n = e.getKey();
            Tensor p = e.getValue();
            if (!p.requiresGrad()) continue;
            if (p.numel() < minNumel || keepReplicated.test(n) || wholeTensor.test(n)) {
                small.put(n, p);
                continue;
            }
            Unit u = owner.containsKey(n) ? byModule.get(owner.get(n)) : root;
            long start = (u.numel + alignment - 1) / alignment * alignment;
            u.slots.add(new Slot(n, p, start, p.numel()));
            u.numel = start + p.numel();
        }
        this.replicated = DataParallel.zero(2, small, group, bucketBytes, wholeTensor, alignment);
        Map<String, Tensor> byName = new LinkedHashMap<>();
        for (Unit u : units) {
            long multiple = (long) ranks * alignment;
            u.numel = Math.max(multiple, (u.numel + multiple - 1) / multiple * multiple);
            if (u.numel > Integer.MAX_VALUE) throw new IllegalArgumentException("unit " + u.index + " holds " + u.numel + " elements; at most " + Integer.MAX_VALUE);
            u.weights = Scope.outside(() -> Tensor.empty(DType.F32, "parameters", Math.toIntExact(u.shard())).fill(0f));
            u.grads = Scope.outside(() -> Tensor.empty(DType.F32, "gradients", Math.toIntExact(u.shard())).fill(0f));
            long lo = rank * u.shard(), hi = lo + u.shard();
            for (Slot s : u.slots) {
                long from = Math.max(lo, s.offset()), to = Math.min(hi, s.offset() + s.numel());
                if (from < to) {
                    // this rank's shard of the weights, from the whole tensor every rank initialised alike
                    java.lang.foreign.MemorySegment.copy(s.param().data(), (from - s.offset()) * 4, u.weights.data(), (from - lo) * 4, (to - from) * 4);
                    Tensor view = slice(u.weights, from - lo, to - from, s.param().dim()).name(s.name());
                    view.useGrad(slice(u.grads, from - lo, to - from, s.param().dim()));
                    views.add(view);
                    byName.put(s.name(), view);
                }
                s.param().storage().evict();
                s.param().gradSource(() -> {
                    bucketOf(u);
                    return s.param().grad();
                });
                s.param().onGradReady(t -> onGradReady(u));
            }
            u.module.hooks(this);
        }
        for (int i = units.size() - 1; i >= 1; i--) reduceOrder.add(units.get(i));
        reduceOrder.add(root);
        byName.putAll(replicated.optimizerParameters());
        for (String n : all.keySet()) if (byName.containsKey(n)) optimizerParameters.put(n, byName.get(n));
    }

    /** Elements [from, from + length) of a flat shard, as a [1, length] matrix where the parameter is one (see DataParallel). */
    private static Tensor slice(Tensor flat, long from, long length, int dim) {
        Tensor v = Scope.outside(() -> flat.narrow(0, Math.toIntExact(from), Math.toIntExact(length)));
        if (dim < 2) return v;
        try (v) {
            return Scope.outside(() -> v.view(1, Math.toIntExact(length)));
        }
    }

    // ---- gathering weights --------------------------------------------------------------------

    /**
     * Where each unit's weight shard lives between uses. Parameter offload keeps the shards on
     * host or disk: a shard is acquired for its all-gather and released once the gather has
     * landed, and the shard of the unit after next is prefetched when a gather launches.
     */
    public interface ShardResidency {
        ShardResidency RESIDENT = new ShardResidency() {
            @Override public void prefetch(Tensor shard) {}
            @Override public void acquire(Tensor shard) {}
            @Override public void release(Tensor shard) {}
        };

        void prefetch(Tensor shard);

        void acquire(Tensor shard);

        /** Ends an acquire for a gather, which only read the shard. */
        void release(Tensor shard);
    }

    /** Installs where the weight shards live between uses (the default: always resident). */
    public void residency(ShardResidency r) {
        this.residency = r == null ? ShardResidency.RESIDENT : r;
    }

    /** This rank's weight shard of every unit that has one, in unit order: what parameter offload moves. */
    public List<Tensor> weightShards() {
        List<Tensor> out = new ArrayList<>();
        for (Unit u : units) if (!u.slots.isEmpty()) out.add(u.weights);
        return out;
    }

    private void launchGather(Unit u) {
        if (u.gathered != null || u.slots.isEmpty()) return;
        u.gathered = Scope.outside(() -> Tensor.empty(DType.F32, "parameter gather", Math.toIntExact(u.numel)));
        residency.acquire(u.weights);
        u.gather = group.allGatherAsync(u.weights, u.gathered);
        collectives++;
    }

    /** The gather of {@code u} has landed: its shard may go back to where it lives. */
    private void landed(Unit u) {
        u.gather.await();
        u.gather = null;
        residency.release(u.weights);
    }

    private void prefetchShard(int index) {
        if (index > 0 && index < units.size() && !units.get(index).slots.isEmpty()) residency.prefetch(units.get(index).weights);
    }

    /** The unit's weights gathered and its parameters bound to them. */
    private void gathered(Unit u) {
        if (u.slots.isEmpty()) return;
        launchGather(u);
        if (u.gather != null) {
            landed(u);
            var mem = u.gathered.data();
            for (Slot s : u.slots) s.param().storage().bind(mem.asSlice(s.offset() * 4, s.numel() * 4));
        }
    }

    private void free(Unit u) {
        if (u.gathered == null) return;
        if (u.gather != null) landed(u); // a prefetch nobody used still lands before its buffer goes
        for (Slot s : u.slots) s.param().storage().unbind();
        u.gathered.close();
        u.gathered = null;
    }

    @Override
    public void beforeForward(Module m) {
        Unit u = byModule.get(m);
        gathered(u);
        if (u.index + 1 < units.size()) launchGather(units.get(u.index + 1));
        prefetchShard(u.index + 2);
    }

    /**
     * Keeps every unit gathered from its first use in a step until the step's gradients are
     * finished, instead of gathering around each forward and backward: a pipeline stage interleaves
     * the forwards and backwards of many micro-batches, and re-gathering for each would multiply
     * the all-gathers by the micro-batch count. It costs the stage's whole weights during the step
     * (its share of the model, unsharded) on top of the shards.
     */
    public void holdGatheredThroughStep() {
        hold = true;
    }

    @Override
    public void afterForward(Module m) {
        Unit u = byModule.get(m);
        if (hold || u.root && Autograd.isEnabled()) return; // the root stays gathered through this micro-step's backward
        free(u);
    }

    @Override
    public void beforeBackward(Module m) {
        Unit u = byModule.get(m);
        gathered(u);
        int previous = u.root ? units.size() - 1 : u.index - 1;
        if (previous > 0 && previous != u.index) launchGather(units.get(previous));
        if (previous > 1) prefetchShard(previous - 1);
    }

    @Override
    public void afterBackward(Module m) {
        Unit u = byModule.get(m);
        if (!u.root && !hold) free(u);
    }

    // ---- reducing gradients -------------------------------------------------------------------

    /** The unit's in-flight gradient buffer, zeroed, with its parameters' gradients viewing into it. */
    private void bucketOf(Unit u) {
        if (u.bucket != null) return;
        u.bucket = Scope.outside(() -> Tensor.empty(DType.F32, "gradient buckets", Math.toIntExact(u.numel)).fill(0f));
        for (Slot s : u.slots) {
            Tensor flat = u.bucket;
            Tensor v;
            try (Tensor n = flat.narrow(0, Math.toIntExact(s.offset()), Math.toIntExact(s.numel()))) {
                v = Scope.outside(() -> n.view(s.param().shape()));
            }
            s.param().useGrad(v);
        }
    }

    private void onGradReady(Unit u) {
        if (!armed || --u.pending > 0) return;
        u.ready = true;
        while (nextToLaunch < reduceOrder.size() && (reduceOrder.get(nextToLaunch).ready || reduceOrder.get(nextToLaunch).slots.isEmpty())) {
            Unit next = reduceOrder.get(nextToLaunch++);
            if (!next.slots.isEmpty()) launchReduce(next);
        }
    }

    private void launchReduce(Unit u) {
        bucketOf(u); // a unit no gradient reached still takes part, with zeros
        u.target = Scope.outside(() -> u.bucket.narrow(0, Math.toIntExact(rank * u.shard()), Math.toIntExact(u.shard())));
        u.reduce = group.reduceScatterAsync(u.bucket, u.target, ReduceOp.AVG);
        collectives++;
    }

    /** Launches what backward did not reach, lands every reduction into the shards, frees the buckets and the gathered units ({@code end}: of the step). */
    private void drain(boolean end) {
        try {
            while (nextToLaunch < reduceOrder.size()) {
                Unit u = reduceOrder.get(nextToLaunch++);
                if (!u.slots.isEmpty()) launchReduce(u);
            }
            for (Unit u : reduceOrder) {
                if (u.reduce == null) continue;
                u.reduce.await();
                VectorMath.addInPlace(u.grads, u.target);
                u.target.close();
                u.target = null;
                u.reduce = null;
                for (Slot s : u.slots) {
                    Tensor g = s.param().grad();
                    s.param().useGrad(null);
                    if (g != null) g.close();
                }
                u.bucket.close();
                u.bucket = null;
            }
            if (end || !hold) for (Unit u : units) free(u);
        } finally {
            armed = false;
        }
    }

    // ---- the step -----------------------------------------------------------------------------

    @Override
    public void beginStep() {
        replicated.beginStep();
        for (Unit u : units) u.grads.fill(0f);
    }

    @Override
    public void beginMicroStep(boolean last) {
        if (armed) drain(false);
        replicated.beginMicroStep(last);
        intermediate = !last;
        armed = true;
        nextToLaunch = 0;
        for (Unit u : units) {
            u.pending = u.slots.size();
            u.ready = false;
        }
    }

    @Override
    public void finishGradients() {
        if (!armed || intermediate) throw new IllegalStateException("finishGradients() without beginMicroStep(true)");
        replicated.finishGradients();
        drain(true);
    }

    @Override
    public Map<String, Tensor> optimizerParameters() {
        return Collections.unmodifiableMap(optimizerParameters);
    }

    @Override
    public long[] shardOf(String name) {
        for (Unit u : units) {
            for (Slot s : u.slots) {
                if (!s.name().equals(name)) continue;
                Tensor v = optimizerParameters.get(name);
                if (v == null) return new long[] {0, 0};
                long lo = rank * u.shard();
                return new long[] {Math.max(lo, s.offset()) - s.offset(), v.numel()};
            }
        }
        return replicated.shardOf(name);
    }

    @Override
    public boolean shardsWeight(String name) {
        for (Unit u : units) for (Slot s : u.slots) if (s.name().equals(name)) return true;
        return false;
    }

    @Override
    public DoubleUnaryOperator groupSum() {
        return replicated.groupSum();
    }

    @Override
    public void afterOptimizerStep() {
        replicated.afterOptimizerStep(); // the next forward gathers the sharded units
    }

    @Override
    public double mean(double value) {
        return replicated.mean(value);
    }

    /** Collectives issued so far (gathers and reductions of the sharded units). */
    public long collectives() {
        return collectives;
    }

    @Override
    public void close() {
        for (Unit u : units) {
            free(u);
            u.module.hooks(null);
            for (Slot s : u.slots) s.param().gradSource(null);
        }
        for (Tensor v : views) {
            Tensor g = v.grad();
            v.useGrad(null);
            if (g != null) g.close();
            v.close();
        }
        for (Unit u : units) {
            u.weights.close();
            u.grads.close();
        }
        replicated.close();
    }
}
