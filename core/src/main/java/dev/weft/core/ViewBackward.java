package dev.weft.core;

/** Gradient of {@link Tensor#view}: the same elements under the input's shape. */
final class ViewBackward extends GradFn {
    private final int[] inputShape;

    ViewBackward(Tensor input) {
        super("view", input);
        this.inputShape = input.shape();
    }

    @Override
    protected Tensor[] backward(Tensor g) {
        return new Tensor[] {g.contiguous().view(inputShape)};
    }
}
