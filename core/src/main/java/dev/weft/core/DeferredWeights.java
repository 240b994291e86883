package dev.weft.core;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The weight half of a split backward pass, as zero-bubble pipeline schedules use it: the
 * backward passes run inside {@link Autograd#deferWeightGradients} computed the gradients that
 * flow on to earlier layers and stages (B), and left here, in the order they reached them, the
 * contributions to the weights' gradients (W). {@link #run()} adds them into each weight's
 * {@code .grad} exactly as the unsplit backward would have, in the same order and with the same
 * kernels, so the bits agree; a weight's grad-ready hooks fire there, once, after its last
 * contribution.
 *
 * <p>Ops that know how split their work: linear postpones its dW GEMM (it needs only the saved
 * input and the output gradient, not the weight) and embedding its scatter-add (which would
 * otherwise hold a vocabulary-sized gradient until W). Every other op computes a weight gradient
 * at once and only the hand-over waits here; for RMSNorm that is the better trade, since its
 * gradient is one row while deferring would keep its input alive until W.
 *
 * <p>What the weight pass reads stays alive until it runs: the saved tensors of every op with
 * postponed work are released by {@link #run()} (or {@link #discard()}). The activations and
 * gradients themselves belong to the scope that was current during backward, which must stay open
 * until then: a pipeline closes a micro-batch's scope after its W, not after its B. A handle
 * belongs to the thread that recorded it; an inner deferral records only its own weights.
 */
public final class DeferredWeights implements AutoCloseable {
    /** One contribution to a weight's gradient: work to run, or a gradient already computed. */
    private record Contribution(Tensor weight, GradFn node, Supplier<Tensor> work, Tensor computed) {}

    private final Set<Tensor> weights = Collections.newSetFromMap(new IdentityHashMap<>());
    private final DeferredWeights previous;
    private final List<Contribution> contributions = new ArrayList<>();
    private boolean recording = true, finished;

    DeferredWeights(Collection<Tensor> weights, DeferredWeights previous) {
        for (Tensor w : weights) {
            if (!w.isLeaf()) throw new IllegalArgumentException("deferWeightGradients: " + w + " is computed, not a weight (a leaf)");
            this.weights.add(w);
        }
        this.previous = previous;
    }

    boolean covers(Tensor leaf) {
        return recording && weights.contains(leaf);
    }

    boolean isRecording() {
        return recording;
    }

    void postpone(Tensor weight, GradFn node, Supplier<Tensor> work) {
        contributions.add(new Contribution(weight, node, work, null));
    }

    void hold(Tensor weight, Tensor computed) {
        contributions.add(new Contribution(weight, null, null, computed));
    }

    /** Contributions waiting for {@link #run()}: one per use of a weight in the recorded passes. */
    public int size() {
        return finished ? 0 : contributions.size();
    }

    /** Stops recording: later backward passes on this thread compute weight gradients at once again. */
    @Override
    public void close() {
        if (!recording) return;
        recording = false;
        Autograd.stopDeferring(this, previous);
    }

    /**
     * Computes the postponed weight gradients and adds them into the weights' {@code .grad}, firing
     * each weight's grad-ready hooks after its last contribution; then releases what they read.
     * Runs once; stops recording first if that is still on.
     */
    public void run() {
        close();
        if (finished) throw new IllegalStateException("the deferred weight gradients already ran (or were discarded)");
        Map<Tensor, Integer> pendingPerWeight = new IdentityHashMap<>();
        Map<GradFn, Integer> pendingPerNode = new IdentityHashMap<>();
        for (Contribution c : contributions) {
            pendingPerWeight.merge(c.weight, 1, Integer::sum);
            if (c.node != null) pendingPerNode.merge(c.node, 1, Integer::sum);
        }
        try (var ignored = Autograd.noGrad()) {
            for (int k = 0; k < contributions.size(); k++) {
                Contribution c = contributions.get(k);
                Tensor g = c.computed != null ? c.computed : c.work.get();
                if (g != c.weight.grad()) {
                    Autograd.accumulateLeaf(c.weight, g);
                    g.close();
                }
                contributions.set(k, null); // done: no longer for discard() to free
                if (c.node != null && pendingPerNode.merge(c.node, -1, Integer::sum) == 0) c.node.releaseSaved();
                if (pendingPerWeight.merge(c.weight, -1, Integer::sum) == 0) c.weight.fireGradReady();
            }
        } finally {
            discard();
        }
    }

    /** Drops the postponed work without running it (an aborted step), releasing what it held. */
    public void discard() {
        close();
        for (Contribution c : contributions) {
            if (c == null) continue;
            if (c.node != null) c.node.releaseSaved();
            if (c.computed != null && c.computed != c.weight.grad()) c.computed.close();
        }
        contributions.clear();
        finished = true;
    }
}
