package dev.weft.core;

import dev.weft.core.kernels.VectorMath;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * Reverse-mode automatic differentiation over the graph of {@link GradFn}s that forward built.
 *
 * <p>Nodes run in reverse topological order, so every node sees the sum of all gradients that
 * reach its output before it runs. Leaves (parameters) accumulate into {@link Tensor#grad()}
 * across backward passes (gradient accumulation), and each leaf's grad-ready hooks fire as soon as
 * its last contribution of the pass has been added: data parallelism starts reducing there.
 */
public final class Autograd {
    private static final ThreadLocal<Boolean> DISABLED = ThreadLocal.withInitial(() -> false);
    private static final ThreadLocal<DeferredWeights> DEFERRING = new ThreadLocal<>();

    /** With -Dweft.profile=true, backward time is summed per op name (see {@link #backwardProfile()}). */
    private static final boolean PROFILE = Boolean.getBoolean("weft.profile");
    private static final Map<String, Long> BACKWARD_NANOS = new java.util.concurrent.ConcurrentHashMap<>();

    private Autograd() {}

    /** Nanoseconds spent in each op's backward since the last call (empty unless -Dweft.profile=true). */
    public static Map<String, Long> backwardProfile() {
        Map<String, Long> copy = new java.util.TreeMap<>(BACKWARD_NANOS);
        BACKWARD_NANOS.clear();
        return copy;
    }

    /** A scope in which ops record nothing for backward (evaluation, generation, optimizer updates). */
    public static SavedTensorHooks.Installed noGrad() {
        boolean previous = DISABLED.get();
        DISABLED.set(true);
        return () -> DISABLED.set(previous);
    }

    /**
     * Grad mode on again inside a no-grad region until the returned handle is closed: backward
     * runs with grad off, and a checkpointed forward that backward runs again builds its graph here.
     */
    static SavedTensorHooks.Installed enableGrad() {
        boolean previous = DISABLED.get();
        DISABLED.set(false);
        return () -> DISABLED.set(previous);
    }

    public static boolean isEnabled() {
        return !DISABLED.get();
    }

    /** True when grad mode is on and any input needs a gradient: the op must attach a GradFn. */
    public static boolean needsGrad(Tensor... inputs) {
        if (DISABLED.get()) return false;
        for (Tensor t : inputs) if (t != null && t.requiresGrad()) return true;
        return false;
    }

    /**
     * Splits the following backward passes on this thread for zero-bubble pipeline schedules: they
     * compute every gradient except those of {@code weights} (the stage's parameters), which wait in
     * the returned handle until {@link DeferredWeights#run()}. Leaves that are not in {@code weights}
     * (a pipeline stage's received activation) get their gradient now, as the previous stage needs
     * it next. Use as {@code try (var w = Autograd.deferWeightGradients(params)) { backward(y, dy); }}
     * then, later, {@code w.run()}.
     */
    public static DeferredWeights deferWeightGradients(Collection<Tensor> weights) {
        DeferredWeights w = new DeferredWeights(weights, DEFERRING.get());
        DEFERRING.set(w);
        return w;
    }

    /** True when backward passes on this thread postpone weight gradients (inside {@link #deferWeightGradients}). */
    static boolean isDeferring() {
        DeferredWeights w = DEFERRING.get();
        return w != null && w.isRecording();
    }

    /** True when the current backward postpones {@code leaf}'s gradient. */
    static boolean defersGradientOf(Tensor leaf) {
        DeferredWeights w = DEFERRING.get();
        return w != null && w.covers(leaf);
    }

    /** Ends deferral by {@code w} on this thread, handing back to the deferral that was active before it. */
    static void stopDeferring(DeferredWeights w, DeferredWeights previous) {
        if (DEFERRING.get() != w) return;
        if (previous == null) DEFERRING.remove();
        else DEFERRING.set(previous);
    }

    /** Backpropagates from a one-element tensor with seed gradient 1. */
    public static void backward(Tensor root) {
        if (root.numel() != 1) throw new IllegalArgumentException("backward() needs a scalar loss, got shape " + Arrays.toString(root.shape()));
        backward(root, Tensor.full(1f, root.shape()));
    }

    /** Backpropagates {@code seed} (the gradient of some scalar with respect to {@code root}). */
    public static void backward(Tensor root, Tensor seed) {
        if (!root.requiresGrad()) throw new IllegalStateException("backward() on a tensor that does not require grad");
        DeferredWeights deferring = DEFERRING.get();
        if (root.isLeaf()) {
            if (deferring != null && deferring.covers(root)) {
                deferring.hold(root, Tensor.empty(DType.F32, "grad", seed.shape()).copyFrom(seed));
                return;
            }
            accumulateLeaf(root, seed);
            root.fireGradReady();
            return;
        }
        List<GradFn> order = topologicalOrder(root.gradFn());
        Map<Tensor, Integer> leafEdges = new IdentityHashMap<>();
        for (GradFn fn : order) {
            for (Tensor in : fn.inputs()) {
                if (in != null && in.requiresGrad() && in.isLeaf()) leafEdges.merge(in, 1, Integer::sum);
            }
        }
        Map<GradFn, Tensor> grads = new IdentityHashMap<>();
        grads.put(root.gradFn(), seed);
        try (var ignored = noGrad()) {
            for (GradFn fn : order) {
                Tensor g = grads.remove(fn);
                if (g == null) continue; // nothing flowed here (unused branch)
                Tensor[] inGrads;
                long t0 = PROFILE ? System.nanoTime() : 0;
                boolean ran = false;
                try {
                    inGrads = fn.backward(g);
                    ran = true;
                } finally {
                    if (!ran) fn.dropDeferred();
                    // Postponed weight work reads the saved tensors: the weight pass releases them.
                    if (!fn.hasDeferred()) fn.releaseSaved();
                }
                if (PROFILE) BACKWARD_NANOS.merge(fn.name(), System.nanoTime() - t0, Long::sum);
                route(fn, g, inGrads, grads, leafEdges, deferring);
            }
        } finally {
            for (Tensor t : grads.values()) t.close();
        }
    }

    /** Hands each input's gradient on: into a leaf's .grad, or summed into its producer's pending gradient. */
    private static void route(GradFn fn, Tensor g, Tensor[] inGrads, Map<GradFn, Tensor> grads, Map<Tensor, Integer> leafEdges,
                              DeferredWeights deferring) {
        Tensor[] inputs = fn.inputs();
        if (inGrads.length != inputs.length)
            throw new IllegalStateException(fn.name() + " returned " + inGrads.length + " gradients for " + inputs.length + " inputs");
        Set<Tensor> kept = Collections.newSetFromMap(new IdentityHashMap<>());
        for (int i = 0; i < inputs.length; i++) {
            Tensor in = inputs[i];
            Tensor gi = inGrads[i];
            if (in == null || !in.requiresGrad()) continue;
            if (in.isLeaf() && deferring != null && deferring.covers(in)) {
                Supplier<Tensor> work = fn.takeDeferred(i);
                if (work != null) {
                    deferring.postpone(in, fn, work);
                    continue;
                }
                if (gi == null) throw new IllegalStateException(fn.name() + " gave no gradient for input " + i + " that requires one");
                checkShape(fn, i, gi, in);
                // The op computed it now; only the hand-over waits. Hold a tensor nobody else will
                // write: the pending gradients of other inputs are summed into in place.
                if (gi == in.grad() || (exclusive(gi, i, g, inGrads) && !kept.contains(gi))) {
                    kept.add(gi);
                    deferring.hold(in, gi);
                } else {
                    deferring.hold(in, Tensor.empty(DType.F32, "grad", gi.shape()).copyFrom(gi));
                }
                continue;
            }
            if (gi == null) throw new IllegalStateException(fn.name() + " gave no gradient for input " + i + " that requires one");
            checkShape(fn, i, gi, in);
            if (in.isLeaf()) {
                if (gi == in.grad()) kept.add(gi); // the op added into the leaf's gradient itself (GradFn.leafGradient)
                else accumulateLeaf(in, gi);
                if (leafEdges.merge(in, -1, Integer::sum) == 0) in.fireGradReady();
                continue;
            }
            Tensor prev = grads.get(in.gradFn());
            if (prev != null) {
                addInto(prev, gi);
            } else if (gi != g && gi.isContiguous() && kept.add(gi)) {
                grads.put(in.gradFn(), gi); // take ownership, no copy
            } else {
                // g itself, a view, or a tensor handed to two inputs: keep a private copy, since
                // pending gradients are summed into in place.
                Tensor copy = Tensor.empty(DType.F32, "grad", gi.shape()).copyFrom(gi);
                grads.put(in.gradFn(), copy);
                kept.add(copy);
            }
        }
        for (Tensor gi : inGrads) if (gi != null && !kept.contains(gi)) gi.close();
        if (!kept.contains(g)) g.close();
    }

    private static void checkShape(GradFn fn, int i, Tensor gi, Tensor in) {
        if (!Arrays.equals(gi.shape(), in.shape()))
            throw new IllegalStateException(fn.name() + " gave a gradient of shape " + Arrays.toString(gi.shape())
                    + " for input " + i + " of shape " + Arrays.toString(in.shape()));
    }

    /** True when {@code gi} shares its memory with neither the output gradient nor another input's gradient. */
    private static boolean exclusive(Tensor gi, int i, Tensor g, Tensor[] inGrads) {
        if (gi.storage() == g.storage()) return false;
        for (int j = 0; j < inGrads.length; j++) if (j != i && inGrads[j] != null && inGrads[j].storage() == gi.storage()) return false;
        return true;
    }

    /** A leaf's gradient buffer, made (zero-filled) when it has none yet. */
    static Tensor leafGradient(Tensor leaf) {
        Tensor current = leaf.grad();
        if (current == null && leaf.gradSource() != null) {
            current = leaf.gradSource().get();
            leaf.setGrad(current);
        }
        if (current == null) {
            current = Scope.outside(() -> Tensor.empty(DType.F32, "gradients", leaf.shape()).fill(0f));
            leaf.setGrad(current.name(leaf.name() == null ? null : leaf.name() + ".grad"));
        }
        return current;
    }

    static void accumulateLeaf(Tensor leaf, Tensor g) {
        Tensor current = leaf.grad();
        if (current == null && leaf.gradSource() != null) {
            current = leaf.gradSource().get(); // zeroed: 0 + g is g, bit for bit
            leaf.setGrad(current);
        }
        if (current == null) {
            Tensor fresh = Scope.outside(() -> Tensor.empty(DType.F32, "gradients", leaf.shape()));
            fresh.copyFrom(g);
            leaf.setGrad(fresh.name(leaf.name() == null ? null : leaf.name() + ".grad"));
        } else {
            addInto(current, g);
        }
    }

    private static void addInto(Tensor dst, Tensor src) {
        if (src.isContiguous()) {
            VectorMath.addInPlace(dst, src);
        } else {
            try (Tensor c = src.contiguous()) {
                VectorMath.addInPlace(dst, c);
            }
        }
    }

    /** Nodes reachable from {@code root}, each before every node that produced one of its inputs. */
    private static List<GradFn> topologicalOrder(GradFn root) {
        List<GradFn> post = new ArrayList<>();
        Set<GradFn> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        ArrayDeque<Object[]> stack = new ArrayDeque<>();
        stack.push(new Object[] {root, 0});
        seen.add(root);
        while (!stack.isEmpty()) {
            Object[] top = stack.peek();
            GradFn fn = (GradFn) top[0];
            int i = (Integer) top[1];
            Tensor[] ins = fn.inputs();
            if (i < ins.length) {
                top[1] = i + 1;
                Tensor in = ins[i];
                if (in != null && in.requiresGrad() && !in.isLeaf() && seen.add(in.gradFn())) stack.push(new Object[] {in.gradFn(), 0});
            } else {
                stack.pop();
                post.add(fn);
            }
        }
        Collections.reverse(post);
        return post;
    }
}
