package dev.weft.core.nn;

import dev.weft.core.Autograd;
import dev.weft.core.GradFn;
import dev.weft.core.Tensor;

/**
 * The identity, with an action when backward passes through it: a way to run something at a
 * known point of the backward pass (just before a module's backward starts, or just after it ends)
 * without an op of its own. The gradient passes on as a view, not a copy.
 */
public final class BackwardHook extends GradFn {
    private final Runnable action;

    private BackwardHook(Tensor input, Runnable action) {
        super("backward-hook", input);
        this.action = action;
    }

    /** {@code x} itself where no gradient flows; else an alias of it whose backward runs {@code action} first. */
    public static Tensor on(Tensor x, Runnable action) {
        if (x == null || !Autograd.needsGrad(x)) return x;
        Tensor alias = x.detach();
        alias.attach(new BackwardHook(x, action));
        return alias;
    }

    @Override
    protected Tensor[] backward(Tensor gradOutput) {
        action.run();
        return new Tensor[] {gradOutput.detach()};
    }
}
