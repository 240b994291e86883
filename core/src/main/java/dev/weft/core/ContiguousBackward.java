package dev.weft.core;

/** Gradient of {@link Tensor#contiguous}: the identity (layout does not change values). */
final class ContiguousBackward extends GradFn {
    ContiguousBackward(Tensor input) {
        super("contiguous", input);
    }

    @Override
    protected Tensor[] backward(Tensor g) {
        return new Tensor[] {g};
    }
}
