package dev.weft.core;

import java.util.ArrayList;
import java.util.List;

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

    final void releaseSaved() {
        for (SavedTensor s : saved) s.release();
        saved.clear();
    }

    @Override
    public String toString() {
        return name;
    }
}
