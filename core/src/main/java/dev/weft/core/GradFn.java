package dev.weft.core;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * The backward half of one differentiable operation: a node of the autograd graph. An op computes
 * its output, then attaches a GradFn that remembers its inputs and whatever it saved for backward.
 *
 * <p>Everything an op keeps for backward goes through {@link #save(Tensor)}, which routes it through
 * the {@link SavedTensorHooks} installed at that moment (offload plugs in there).
 */
public abstract class GradFn {
    private final String name;
    private final Tensor[] inputs;
    private final List<SavedTensor> saved = new ArrayList<>(2);
    private Supplier<Tensor>[] deferred; // per input: weight-gradient work postponed by this node's backward

    protected GradFn(String name, Tensor... inputs) {
        this.name = name;
        this.inputs = inputs.clone();
    }

    /** Given the gradient of the output, returns one gradient per input (null where none is needed). */
    protected abstract Tensor[] backward(Tensor gradOutput);

    public final String name() {
        return name;
    }

    final Tensor[] inputs() {
        return inputs;
    }

    /** Keeps {@code t} for backward, through the current saved-tensor hooks. */
    protected final SavedTensor save(Tensor t) {
        SavedTensor s = SavedTensor.of(t);
        saved.add(s);
        return s;
    }

    /**
     * The gradient buffer of input {@code i} when it is a leaf (a parameter): a kernel may add its
     * result straight into it (a GEMM with beta 1) and return this very tensor, which autograd then
     * takes as accumulated. Null when input {@code i} is not a leaf that needs a gradient.
     */
    protected final Tensor leafGradient(int i) {
        Tensor in = inputs[i];
        if (in == null || !in.requiresGrad() || !in.isLeaf()) return null;
        return Autograd.leafGradient(in);
    }

    /** True when input {@code i} needs a gradient. */
    protected final boolean needsGrad(int i) {
        return inputs[i] != null && inputs[i].requiresGrad();
    }

    /**
     * True when backward runs inside {@link Autograd#deferWeightGradients} and input {@code i} is one
     * of the weights whose gradient is postponed: the op may then hand that gradient's computation
     * to {@link #deferGradient} instead of computing it now (a zero-bubble pipeline runs it later,
     * in a bubble). Ops that do not ask still work: autograd postpones only the hand-over.
     */
    protected final boolean defersGradient(int i) {
        Tensor in = inputs[i];
        return in != null && in.requiresGrad() && in.isLeaf() && Autograd.defersGradientOf(in);
    }

    /**
     * Postpones input {@code i}'s gradient to the weight pass: {@code gradient} runs then and returns
     * the gradient, or the leaf's own buffer from {@link #leafGradient} after adding into it. Backward
     * returns null for input {@code i}. The saved tensors stay until the weight pass has run, so the
     * work may read them; anything else it needs (the output gradient) it must keep alive itself.
     */
    @SuppressWarnings("unchecked")
    protected final void deferGradient(int i, Supplier<Tensor> gradient) {
        if (!defersGradient(i)) throw new IllegalStateException(name + ": input " + i + " is not a weight whose gradient is being deferred");
        if (deferred == null) deferred = new Supplier[inputs.length];
        deferred[i] = gradient;
    }

    /** The work postponed for input {@code i}, now owned by the caller; null when there is none. */
    final Supplier<Tensor> takeDeferred(int i) {
        if (deferred == null) return null;
        Supplier<Tensor> work = deferred[i];
        deferred[i] = null;
        return work;
    }

    final boolean hasDeferred() {
        if (deferred != null) for (Supplier<Tensor> d : deferred) if (d != null) return true;
        return false;
    }

    final void dropDeferred() {
        deferred = null;
    }

    final void releaseSaved() {
        for (SavedTensor s : saved) s.release();
        saved.clear();
    }

    @Override
    public String toString() {
        return name;
    }
}
