package dev.weft.parallel;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.VectorMath;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.DoubleUnaryOperator;
import java.util.function.Predicate;
import java.util.zip.CRC32C;

/**
 * Data parallelism over a process group, with ZeRO's sharding of the training state as an option:
 * every rank computes gradients on its own slice of the global batch, and the gradients are
 * averaged across ranks, so every rank takes the step one process would take on the global batch.
 *
 * <table>
 *   <tr><th>stage</th><th>gradients</th><th>optimizer steps</th><th>after the step</th></tr>
 *   <tr><td>0 (DDP)</td><td>all-reduced, every rank keeps all</td><td>everything</td><td>-</td></tr>
 *   <tr><td>1</td><td>all-reduced, every rank keeps all</td><td>this rank's shard</td><td>weights all-gathered</td></tr>
 *   <tr><td>2</td><td>reduce-scattered each micro-step; the rank keeps its shard</td><td>this rank's shard</td><td>weights all-gathered</td></tr>
 * </table>
 *
 * <p><b>Flat buckets.</b> Parameters are laid out, in reverse registration order (the order
 * backward completes them), in flat buffers of about {@code bucketBytes}; each parameter starts on
 * a multiple of {@code alignment} elements and each bucket is padded to a multiple of
 * {@code ranks x alignment}, so it splits into equal shards whose edges fall on the optimizer's
 * blocks. A parameter's gradient is a view into its bucket: backward accumulates straight into
 * the buffer that is reduced, with no copy in or out. Under stage 2 the buffers exist only while
 * their bucket is in flight: autograd asks for them on a bucket's first gradient, and they go back
 * to the pool once reduced into the rank's shard.
 *
 * <p><b>Whole tensors.</b> Optimizers that need a whole matrix (an SVD, a projection, Newton–Schulz)
 * cannot step a flat slice. Under ZeRO such parameters are owned whole by one rank each, assigned
 * by size to balance the state; their gradients are all-reduced (stage 1) or reduced to the owner
 * on the last micro-step (stage 2: until then each rank accumulates its own, and non-owners drop
 * them once reduced), and the owner broadcasts the updated weights.
 *
 * <p><b>Order.</b> Buckets and whole tensors are launched in index order on every rank (a ready
 * one waits for its predecessors), so every rank issues the same collectives in the same order.
 * All of it is deterministic: the same inputs give the same bits, run after run.
 */
public final class DataParallel implements GradientSync {
    /** Default bucket size: large enough to amortise per-collective latency, small enough to overlap. */
    public static final long DEFAULT_BUCKET_BYTES = 4L << 20;
    /** At most this many stage-2 all-gather buffers are live at once after the step. */
    private static final int GATHER_WINDOW = 2;

    private final ProcessGroup group;
    private final int stage, ranks, rank;
    private final List<Unit> units = new ArrayList<>();
    private final Map<String, Tensor> optimizerParameters = new LinkedHashMap<>();
    private final List<Tensor> ownedViews = new ArrayList<>();
    private boolean armed, intermediate;
    private int nextToLaunch;
    private long launchedDuringBackward, collectives;

    /** A parameter's place in a flat bucket: element offset and count. */
    private record Slot(String name, Tensor param, long offset, long numel) {}

    /** A unit of reduction: a flat bucket, or one whole tensor. */
    private abstract static class Unit {
        final int index;
        int pending;
        boolean ready;
        Work work;
        /** The view a collective writes into (this rank's block), closed once it has landed. */
        Tensor target;

        void landed() {
            if (target != null) target.close();
            target = null;
        }

        Unit(int index) {
            this.index = index;
        }
    }

    private final class Bucket extends Unit {
        final List<Slot> slots = new ArrayList<>();
        long numel;
        /** The full gradient buffer: persistent under stages 0 and 1, in flight only under 2. */
        Tensor flat;
        /** Stage 2: this rank's reduced shard, accumulated over micro-steps. */
        Tensor shardGrad;

        Bucket(int index) {
            super(index);
        }

        long shardNumel() {
            return numel / ranks;
        }

        /** Stage 2: the in-flight buffer, allocated (zeroed) on the bucket's first gradient of a micro-step. */
        Tensor buffer() {
            if (flat == null) {
                flat = Scope.outside(() -> Tensor.empty(DType.F32, "gradient buckets", Math.toIntExact(numel)).fill(0f));
                for (Slot s : slots) s.param().useGrad(viewOf(flat, s.offset(), s.param().shape()));
            }
            return flat;
        }

        void release() {
            for (Slot s : slots) {
                Tensor g = s.param().grad();
                s.param().useGrad(null);
                if (g != null) g.close();
            }
            if (flat != null) flat.close();
            flat = null;
        }
    }

    private final class Whole extends Unit {
        final String name;
        final Tensor param;
        final int owner;

        Whole(int index, String name, Tensor param, int owner) {
            super(index);
            this.name = name;
            this.param = param;
            this.owner = owner;
            this.pending = 1;
        }
    }

    /** DDP: every rank keeps and steps the whole model. */
    public static DataParallel ddp(Map<String, Tensor> parameters, ProcessGroup group, long bucketBytes) {
        return new DataParallel(0, parameters, group, bucketBytes, name -> false, 1);
    }

    /**
     * ZeRO stage 1 or 2 over {@code group}. {@code wholeTensor} names the parameters whose
     * optimizer needs them whole; {@code alignment} is the element multiple every shard edge must
     * fall on within a parameter (1, or 8-bit AdamW's quantisation block).
     */
    public static DataParallel zero(int stage, Map<String, Tensor> parameters, ProcessGroup group, long bucketBytes,
                                    Predicate<String> wholeTensor, int alignment) {
        if (stage != 1 && stage != 2) throw new IllegalArgumentException("ZeRO stage must be 1 or 2 here, got " + stage);
        return new DataParallel(stage, parameters, group, bucketBytes, wholeTensor, alignment);
    }

    private DataParallel(int stage, Map<String, Tensor> parameters, ProcessGroup group, long bucketBytes, Predicate<String> wholeTensor,
                         int alignment) {
        if (bucketBytes < 4) throw new IllegalArgumentException("bucketBytes must be >= 4, got " + bucketBytes);
        if (alignment < 1) throw new IllegalArgumentException("alignment must be >= 1, got " + alignment);
        this.group = group;
        this.stage = stage;
        this.ranks = stage == 0 ? 1 : group.size();
        this.rank = group.rank();
        List<Map.Entry<String, Tensor>> order = new ArrayList<>(parameters.entrySet());
        Collections.reverse(order);
        long[] load = new long[group.size()];
        Bucket open = null;
        for (var e : order) {
            Tensor p = e.getValue();
            if (!p.requiresGrad()) continue;
            if (stage > 0 && wholeTensor.test(e.getKey())) {
                int owner = 0;
                for (int r = 1; r < load.length; r++) if (load[r] < load[owner]) owner = r;
                load[owner] += p.numel();
                units.add(new Whole(units.size(), e.getKey(), p, owner));
                continue;
            }
            long start = roundUp(open == null ? 0 : open.numel, alignment);
            if (open == null || open.numel > 0 && (start + p.numel()) * 4 > bucketBytes) {
                open = new Bucket(units.size());
                units.add(open);
                start = 0;
            }
            open.slots.add(new Slot(e.getKey(), p, start, p.numel()));
            open.numel = start + p.numel();
        }
        for (Unit u : units) {
            if (u instanceof Bucket b) {
                b.numel = roundUp(b.numel, (long) ranks * alignment);
                if (b.numel > Integer.MAX_VALUE) throw new IllegalArgumentException("bucket " + b.index + " holds " + b.numel
                        + " elements; at most " + Integer.MAX_VALUE + " per bucket (use a smaller bucket size)");
                if (stage < 2) {
                    b.flat = Scope.outside(() -> Tensor.empty(DType.F32, "gradients", (int) b.numel).fill(0f));
                    for (Slot s : b.slots) s.param().useGrad(viewOf(b.flat, s.offset(), s.param().shape()));
                } else {
                    b.shardGrad = Scope.outside(() -> Tensor.empty(DType.F32, "gradients", Math.toIntExact(b.shardNumel())).fill(0f));
                    for (Slot s : b.slots) s.param().gradSource(() -> {
                        b.buffer();
                        return s.param().grad();
                    });
                }
                for (Slot s : b.slots) s.param().onGradReady(t -> onGradReady(b));
            } else {
                Whole w = (Whole) u;
                w.param.onGradReady(t -> onGradReady(w));
            }
        }
        buildOptimizerParameters(parameters);
    }

    /** What this rank's optimizer steps: everything (DDP), or its shard of each bucket plus the whole tensors it owns. */
    private void buildOptimizerParameters(Map<String, Tensor> parameters) {
        if (stage == 0) {
            optimizerParameters.putAll(parameters);
            return;
        }
        Map<String, Tensor> byName = new LinkedHashMap<>();
        for (Unit u : units) {
            if (u instanceof Whole w) {
                if (w.owner == rank) byName.put(w.name, w.param);
                continue;
            }
            Bucket b = (Bucket) u;
            long lo = rank * b.shardNumel(), hi = lo + b.shardNumel();
            for (Slot s : b.slots) {
                long from = Math.max(lo, s.offset()), to = Math.min(hi, s.offset() + s.numel());
                if (from >= to) continue;
                Tensor view = flatView(s.param(), from - s.offset(), to - from).name(s.name());
                Tensor grad = stage == 1 ? flatView(b.flat, from, to - from) : flatView(b.shardGrad, from - lo, to - from);
                view.useGrad(reshapeLike(grad, view));
                ownedViews.add(view);
                byName.put(s.name(), view);
            }
        }
        // the optimizer sees parameters in registration order, whatever the bucket order
        for (String n : parameters.keySet()) if (byName.containsKey(n)) optimizerParameters.put(n, byName.get(n));
    }

    /**
     * Elements [from, from + length) of {@code t} as a vector, or as a [1, length] matrix when
     * {@code t} is a matrix, so an optimizer still tells weights (decayed) from gains (not).
     */
    private static Tensor flatView(Tensor t, long from, long length) {
        try (var ng = Autograd.noGrad(); Tensor d = t.detach(); Tensor flat = d.view(-1)) {
            Tensor slice = Scope.outside(() -> flat.narrow(0, Math.toIntExact(from), Math.toIntExact(length)));
            if (t.dim() < 2) return slice;
            try (slice) {
                return Scope.outside(() -> slice.view(1, Math.toIntExact(length)));
            }
        }
    }

    private static Tensor reshapeLike(Tensor grad, Tensor like) {
        if (grad.dim() == like.dim()) return grad;
        try (grad) {
            return Scope.outside(() -> grad.view(like.shape()));
        }
    }

    /** The elements of {@code flat} at {@code offset} viewed as {@code shape}. */
    private static Tensor viewOf(Tensor flat, long offset, int[] shape) {
        try (Tensor slice = flat.narrow(0, Math.toIntExact(offset), Math.toIntExact(Tensor.numel(shape)))) {
            return Scope.outside(() -> slice.view(shape));
        }
    }

    private static long roundUp(long n, long multiple) {
        return (n + multiple - 1) / multiple * multiple;
    }

    // ---- the step --------------------------------------------------------------------------------

    @Override
    public void beginStep() {
        for (Unit u : units) {
            if (u instanceof Bucket b) {
                if (b.flat != null && stage < 2) b.flat.fill(0f);
                if (b.shardGrad != null) b.shardGrad.fill(0f);
            } else {
                ((Whole) u).param.zeroGrad();
            }
        }
    }

    @Override
    public void beginMicroStep(boolean last) {
        if (armed) {
            if (!intermediate) throw new IllegalStateException("beginMicroStep after the synchronising micro-step, without finishGradients()");
            drain(); // stage 2: the previous micro-step's buckets, reduced into the shards
        }
        intermediate = stage == 2 && !last;
        armed = last || stage == 2;
        nextToLaunch = 0;
        for (Unit u : units) {
            u.pending = u instanceof Bucket b ? b.slots.size() : 1;
            u.ready = false;
            u.work = null;
        }
    }

    private void onGradReady(Unit u) {
        if (!armed) return;
        if (--u.pending > 0) return;
        u.ready = true;
        while (nextToLaunch < units.size() && units.get(nextToLaunch).ready) {
            launch(units.get(nextToLaunch++));
            launchedDuringBackward++;
        }
    }

    private void launch(Unit u) {
        boolean lastMicroStep = !intermediate;
        if (u instanceof Whole w) {
            // stage 2 reduces whole tensors once, on the last micro-step (each rank accumulated its own until then)
            if (stage == 2 && !lastMicroStep) {
                u.work = Work.done();
                return;
            }
            if (w.param.grad() == null) w.param.useGrad(Scope.outside(() -> Tensor.zeros(w.param.shape()).name(w.name + ".grad")));
            u.work = stage == 2 ? group.reduceAsync(w.param.grad(), w.owner, ReduceOp.AVG) : group.allReduceAsync(w.param.grad(), ReduceOp.AVG);
        } else {
            Bucket b = (Bucket) u;
            if (stage == 2) {
                Tensor flat = b.buffer(); // a bucket no gradient reached still takes part, with zeros
                u.target = Scope.outside(() -> flat.narrow(0, Math.toIntExact(rank * b.shardNumel()), Math.toIntExact(b.shardNumel())));
                u.work = group.reduceScatterAsync(flat, u.target, ReduceOp.AVG);
            } else {
                u.work = group.allReduceAsync(b.flat, ReduceOp.AVG);
            }
        }
        collectives++;
    }

    /** Launches what backward did not complete (parameters that got no gradient) and waits for every unit. */
    private void drain() {
        try {
            while (nextToLaunch < units.size()) launch(units.get(nextToLaunch++));
            for (Unit u : units) {
                u.work.await();
                if (stage == 2 && u instanceof Bucket b) {
                    VectorMath.addInPlace(b.shardGrad, b.target);
                    b.landed();
                    b.release();
                }
            }
        } finally {
            armed = false;
        }
    }

    @Override
    public void finishGradients() {
        if (!armed || intermediate) throw new IllegalStateException("finishGradients() without beginMicroStep(true)");
        drain();
        if (stage == 2) {
            for (Unit u : units) {
                if (u instanceof Whole w && w.owner != rank) w.param.clearGrad(); // only the owner keeps it
            }
        }
    }

    @Override
    public Map<String, Tensor> optimizerParameters() {
        return Collections.unmodifiableMap(optimizerParameters);
    }

    @Override
    public DoubleUnaryOperator groupSum() {
        if (stage == 0) return DoubleUnaryOperator.identity();
        return group::sum;
    }

    @Override
    public double mean(double value) {
        if (group.size() == 1) return value;
        try (Scope s = Scope.open()) {
            Tensor v = Tensor.of(new float[] {(float) value}, 1);
            group.allReduce(v, ReduceOp.AVG);
            return v.item();
        }
    }

    @Override
    public void afterOptimizerStep() {
        if (stage == 0) return;
        List<Work> broadcasts = new ArrayList<>();
        List<Bucket> window = new ArrayList<>();
        for (Unit u : units) {
            if (u instanceof Whole w) {
                broadcasts.add(group.broadcastAsync(w.param, w.owner));
                collectives++;
                continue;
            }
            Bucket b = (Bucket) u;
            Tensor flat = stage == 1 ? b.flat : Scope.outside(() -> Tensor.empty(DType.F32, "parameter gather", Math.toIntExact(b.numel)));
            if (stage == 2) b.flat = flat;
            long lo = rank * b.shardNumel();
            for (Slot s : b.slots) copyRange(s, flat, lo, lo + b.shardNumel(), true);
            b.target = Scope.outside(() -> flat.narrow(0, Math.toIntExact(lo), Math.toIntExact(b.shardNumel())));
            b.work = group.allGatherAsync(b.target, flat);
            collectives++;
            window.add(b);
            if (window.size() >= GATHER_WINDOW) land(window.removeFirst());
        }
        while (!window.isEmpty()) land(window.removeFirst());
        for (Work w : broadcasts) w.await();
    }

    /** Copies a gathered bucket into the weights; under stage 2 the buffer goes back to the pool. */
    private void land(Bucket b) {
        b.work.await();
        b.landed();
        for (Slot s : b.slots) copyRange(s, b.flat, 0, b.numel, false);
        if (stage == 2) {
            b.flat.close();
            b.flat = null;
        }
    }

    /** Copies the part of slot {@code s} that lies in [lo, hi) of its bucket between the weight and {@code flat}. */
    private static void copyRange(Slot s, Tensor flat, long lo, long hi, boolean intoFlat) {
        long from = Math.max(lo, s.offset()), to = Math.min(hi, s.offset() + s.numel());
        if (from >= to) return;
        MemorySegment w = s.param().data(), f = flat.data();
        long wOff = (from - s.offset()) * 4, fOff = from * 4, bytes = (to - from) * 4;
        if (intoFlat) MemorySegment.copy(w, wOff, f, fOff, bytes);
        else MemorySegment.copy(f, fOff, w, wOff, bytes);
    }

    // ---- introspection ----------------------------------------------------------------------------

    /** The parameter names of each bucket (a whole tensor is a bucket of one), in launch order. */
    public List<List<String>> buckets() {
        List<List<String>> out = new ArrayList<>();
        for (Unit u : units) out.add(u instanceof Bucket b ? b.slots.stream().map(Slot::name).toList() : List.of(((Whole) u).name));
        return out;
    }

    /**
     * Where this rank's share of parameter {@code name} lies: {offset, length} in its flattened
     * elements, or null when this rank holds none of its optimizer state.
     */
    @Override
    public long[] shardOf(String name) {
        Tensor v = optimizerParameters.get(name);
        if (v == null) return null;
        if (stage == 0) return new long[] {0, v.numel()};
        for (Unit u : units) {
            if (u instanceof Whole w && w.name.equals(name)) return new long[] {0, w.param.numel()};
            if (u instanceof Bucket b) {
                for (Slot s : b.slots) {
                    if (!s.name().equals(name)) continue;
                    long lo = rank * b.shardNumel();
                    return new long[] {Math.max(lo, s.offset()) - s.offset(), v.numel()};
                }
            }
        }
        throw new IllegalStateException("no slot for " + name);
    }

    /** Units (buckets and whole tensors) whose reduction was launched from a grad-ready hook, that is during backward. */
    public long launchedDuringBackward() {
        return launchedDuringBackward;
    }

    /** Collectives issued so far. */
    public long collectives() {
        return collectives;
    }

    public int stage() {
        return stage;
    }

    public ProcessGroup group() {
        return group;
    }

    /**
     * Fails fast unless every rank of {@code group} holds bit-identical {@code parameters}: the
     * CRC32C of each parameter is all-gathered and compared with rank 0's. The error names the
     * ranks that differ and the first parameter where each does.
     */
    public static void verifyIdenticalWeights(ProcessGroup group, Map<String, Tensor> parameters) {
        List<String> names = new ArrayList<>(parameters.keySet());
        int p = names.size(), world = group.size();
        if (world == 1 || p == 0) return;
        // each 32-bit CRC travels as two 16-bit halves, exact in float32 whatever the transport does to NaN bit patterns
        float[] mine = new float[2 * p];
        for (int i = 0; i < p; i++) {
            int crc = crc32c(parameters.get(names.get(i)));
            mine[2 * i] = crc >>> 16;
            mine[2 * i + 1] = crc & 0xFFFF;
        }
        float[] all;
        try (Scope s = Scope.open()) {
            Tensor in = Tensor.of(mine, 2 * p);
            Tensor out = Tensor.zeros(world * 2 * p);
            group.allGather(in, out);
            all = out.toArray();
        }
        Map<Integer, String> differing = new LinkedHashMap<>();
        for (int r = 1; r < world; r++) {
            for (int i = 0; i < p; i++) {
                int a = crcAt(all, 0, p, i), b = crcAt(all, r, p, i);
                if (a != b) {
                    differing.put(r, String.format("rank %d differs from rank 0 first at parameter '%s' (CRC32C %08x vs %08x)", r, names.get(i), b, a));
                    break;
                }
            }
        }
        if (!differing.isEmpty())
            throw new IllegalStateException("data-parallel ranks hold different weights at start-up: rank(s) " + differing.keySet()
                    + " differ from rank 0: " + String.join("; ", differing.values())
                    + ". Every rank must start from the same weights (same model config and train.seed, or the same checkpoint)");
    }

    private static int crcAt(float[] all, int rank, int p, int i) {
        int base = rank * 2 * p + 2 * i;
        return ((int) all[base] << 16) | (int) all[base + 1];
    }

    static int crc32c(Tensor t) {
        CRC32C crc = new CRC32C();
        if (!t.isContiguous()) throw new IllegalArgumentException("parameter " + t.name() + " is not contiguous");
        crc.update(t.data().asByteBuffer());
        crc.update(new byte[] {(byte) t.dtype().ordinal()});
        return (int) crc.getValue();
    }

    @Override
    public void close() {
        for (Tensor v : ownedViews) {
            Tensor g = v.grad();
            v.useGrad(null);
            if (g != null) g.close();
            v.close();
        }
        for (Unit u : units) {
            if (u instanceof Bucket b) {
                for (Slot s : b.slots) {
                    Tensor g = s.param().grad();
                    s.param().useGrad(null);
                    s.param().gradSource(null);
                    if (g != null) g.close();
                }
                if (b.flat != null) b.flat.close();
                if (b.shardGrad != null) b.shardGrad.close();
            }
        }
    }
}
