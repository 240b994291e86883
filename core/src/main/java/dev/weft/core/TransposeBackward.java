package dev.weft.core;

/** Gradient of {@link Tensor#transpose}: transpose back. */
final class TransposeBackward extends GradFn {
    private final int a, b;

    TransposeBackward(Tensor input, int a, int b) {
        super("transpose", input);
        this.a = a;
        this.b = b;
    }

    @Override
    protected Tensor[] backward(Tensor g) {
        return new Tensor[] {g.transpose(a, b).contiguous()};
    }
}
