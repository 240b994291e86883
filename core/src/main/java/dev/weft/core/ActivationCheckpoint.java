package dev.weft.core;

import java.util.function.UnaryOperator;

/**
 * Activation checkpointing: a forward that keeps little for backward and computes the rest again
 * there, trading FLOPs for memory.
 *
 * <p>{@link #full} runs the body without building a graph, in a scope of its own, keeps its output
 * and frees every other intermediate at once rather than at the end of the micro-batch. It saves
 * the input through {@link GradFn#save}, so saved-tensor hooks (activation offload) see it. Its
 * backward runs the body again with grad on, on a detached input, inside a nested scope;
 * backpropagates the incoming gradient through that graph (a backward nested in the running one,
 * so parameters accumulate into {@code .grad} as usual and their grad-ready hooks fire there),
 * hands on the input's gradient and frees the recomputed graph. The replay saves its tensors past
 * any saved-tensor hooks, since they live only as long as that node's backward.
 *
 * <p>{@link #selective} (Megatron-LM's selective recompute) keeps the linear projections' outputs
 * as well ({@link KeptProjections}): the replay takes them instead of running the GEMMs again and
 * recomputes only norms, activations, RoPE and attention.
 *
 * <p>Checkpoints nest: an inner checkpoint's projections belong to it, never to an enclosing
 * selective record, and the enclosing replay checkpoints the inner body again.
 *
 * <p>The replay must compute exactly what the forward computed. weft's kernels are deterministic,
 * so gradients and losses agree bit for bit with an unchecked run. A body that draws random
 * numbers (dropout) would need its generator's state replayed too; weft's layers draw none.
 *
 * <p>Under a split backward ({@link Autograd#deferWeightGradients}) the postponed weight work reads
 * tensors of the recomputed graph, so they stay in the scope current during backward, as
 * {@link DeferredWeights} requires, instead of being freed when the replay ends. A parameter used
 * both inside and outside one checkpointed body (or inside two) gets its grad-ready hooks once per
 * backward it takes part in, the nested ones included: checkpoint whole layers, which own their
 * parameters.
 */
public final class ActivationCheckpoint {
    private ActivationCheckpoint() {}

    /** {@code body(x)}, keeping only {@code x} for backward, which runs {@code body} again. */
    public static Tensor full(Tensor x, UnaryOperator<Tensor> body) {
        return checkpoint(x, body, null);
    }

    /** {@code body(x)}, keeping {@code x} and the outputs of the linear projections for backward, which recomputes the rest. */
    public static Tensor selective(Tensor x, UnaryOperator<Tensor> body) {
        return checkpoint(x, body, new KeptProjections());
    }

    private static Tensor checkpoint(Tensor x, UnaryOperator<Tensor> body, KeptProjections kept) {
        if (!Autograd.isEnabled()) {
            // Nothing is kept for backward. Inside an enclosing checkpoint's forward, its projections
            // stay hidden from the enclosing record, as they are when that checkpoint's replay runs this one with grad.
            try (var tape = KeptProjections.install(null)) {
                return body.apply(x);
            }
        }
        if (x == null) throw new IllegalArgumentException("activation checkpointing needs the module's input tensor to recompute from");
        Tensor y;
        try (Scope s = Scope.open(); var noGrad = Autograd.noGrad(); var tape = KeptProjections.install(kept)) {
            // A view: the output may be an intermediate of the scope (or x itself), which the view outlives.
            y = Scope.keep(body.apply(x).detach());
        } catch (RuntimeException | Error e) {
            if (kept != null) kept.free(); // taken out of the scope, so nothing else would
            throw e;
        }
        Scope.register(y);
        if (kept != null) kept.registerInCurrentScope();
        return y.attach(new Recomputation(x, body, kept));
    }

    private static final class Recomputation extends GradFn {
        private final UnaryOperator<Tensor> body;
        private final SavedTensor input;
        private final KeptProjections kept;

        Recomputation(Tensor x, UnaryOperator<Tensor> body, KeptProjections kept) {
            super(kept == null ? "recompute" : "selective-recompute", x);
            this.body = body;
            this.input = save(x);
            this.kept = kept;
            if (kept != null) kept.saveThrough(this::save);
        }

        @Override
        protected Tensor[] backward(Tensor g) {
            Tensor x = input.get();
            Scope scope = Autograd.isDeferring() ? null : Scope.open();
            Tensor gx = null;
            // The recomputed graph lives only until this node's backward ends: nothing in it for offload hooks to move.
            try (var grad = Autograd.enableGrad(); var hooks = SavedTensorHooks.install(null);
                 var tape = KeptProjections.install(kept == null ? null : kept.replaying())) {
                Tensor xd = x.detach().requiresGrad(needsGrad(0));
                Tensor y = body.apply(xd);
                if (kept != null) kept.checkReplayed();
                if (y.requiresGrad()) Autograd.backward(y, g);
                if (needsGrad(0)) {
                    gx = xd.grad(); // made outside any scope: autograd owns it from here
                    xd.useGrad(null);
                    if (gx == null) gx = Scope.outside(() -> Tensor.zeros(x.shape())); // the body ignores its input
                }
            } finally {
                if (scope != null) scope.close();
                if (kept != null) kept.free();
            }
            return new Tensor[] {gx};
        }
    }
}
