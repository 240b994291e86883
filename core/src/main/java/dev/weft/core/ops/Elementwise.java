package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.GradFn;
import dev.weft.core.SavedTensor;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.ElementwiseKernels;
import dev.weft.core.kernels.Parallel;

import java.lang.foreign.MemorySegment;

import static dev.weft.core.kernels.ElementwiseKernels.ADD;
import static dev.weft.core.kernels.ElementwiseKernels.DIV;
import static dev.weft.core.kernels.ElementwiseKernels.MUL;
import static dev.weft.core.kernels.ElementwiseKernels.SUB;

/**
 * Differentiable elementwise arithmetic with numpy broadcasting (shapes align at the right, size-1
 * and missing leading dimensions repeat). The gradient of a repeated operand is summed back to its
 * own shape.
 */
public final class Elementwise {
    private static final int GRAIN = 1 << 14;
    private static final String[] NAMES = {"add", "sub", "mul", "div"};

    private Elementwise() {}

    public static Tensor add(Tensor a, Tensor b) {
        return binary(ADD, a, b);
    }

    public static Tensor sub(Tensor a, Tensor b) {
        return binary(SUB, a, b);
    }

    public static Tensor mul(Tensor a, Tensor b) {
        return binary(MUL, a, b);
    }

    public static Tensor div(Tensor a, Tensor b) {
        return binary(DIV, a, b);
    }

    /** {@code a * s}. */
    public static Tensor scale(Tensor a, float s) {
        Tensor out = affine("scale", a, s, 0f);
        if (Autograd.needsGrad(a)) out.attach(new ScaleBackward(a, s));
        return out;
    }

    /** {@code a + s}. */
    public static Tensor addScalar(Tensor a, float s) {
        Tensor out = affine("addScalar", a, 1f, s);
        if (Autograd.needsGrad(a)) out.attach(new ScaleBackward(a, 1f));
        return out;
    }

    private static Tensor binary(int op, Tensor a, Tensor b) {
        String name = NAMES[op];
        int[] shape = Broadcast.shape(name, a.shape(), b.shape());
        Tensor ac = Dense.of(a), bc = Dense.of(b);
        Tensor out = Tensor.empty(DType.F32, name, shape);
        Broadcast.apply(op, ac, bc, out);
        boolean grad = Autograd.needsGrad(a, b);
        // Backward of a product needs the other operand; of a quotient, both.
        boolean keepA = grad && (op == DIV || (op == MUL && b.requiresGrad()));
        boolean keepB = grad && (op == DIV || (op == MUL && a.requiresGrad()));
        if (grad) out.attach(new BinaryBackward(op, a, b, keepA ? ac : null, keepB ? bc : null));
        if (!keepA) Dense.release(ac, a);
        if (!keepB) Dense.release(bc, b);
        return out;
    }

    private static Tensor affine(String name, Tensor a, float s, float c) {
        Tensor ac = Dense.of(a);
        Tensor out = Tensor.empty(DType.F32, name, a.shape());
        int n = Dense.elements(a, name);
        MemorySegment x = ac.data(), y = out.data();
        Parallel.forRange(n, GRAIN, (from, to) -> ElementwiseKernels.affine(x, from, s, c, y, from, to - from));
        Dense.release(ac, a);
        return out;
    }

    private static final class ScaleBackward extends GradFn {
        private final float s;

        ScaleBackward(Tensor a, float s) {
            super(s == 1f ? "addScalar" : "scale", a);
            this.s = s;
        }

        @Override
        protected Tensor[] backward(Tensor g) {
            return new Tensor[] {s == 1f ? g : affine("scale.grad", g, s, 0f)};
        }
    }

    private static final class BinaryBackward extends GradFn {
        private final int op;
        private final int[] aShape, bShape;
        private final SavedTensor a, b;

        BinaryBackward(int op, Tensor aIn, Tensor bIn, Tensor ac, Tensor bc) {
            super(NAMES[op], aIn, bIn);
            this.op = op;
            this.aShape = aIn.shape();
            this.bShape = bIn.shape();
            this.a = ac == null ? null : save(ac);
            this.b = bc == null ? null : save(bc);
        }

        @Override
        protected Tensor[] backward(Tensor gIn) {
            Tensor g = Dense.of(gIn);
            Tensor ga = null, gb = null;
            switch (op) {
                case ADD -> {
                    if (needsGrad(0)) ga = Broadcast.sumTo(g, aShape);
                    if (needsGrad(1)) gb = Broadcast.sumTo(g, bShape);
                }
                case SUB -> {
                    if (needsGrad(0)) ga = Broadcast.sumTo(g, aShape);
                    if (needsGrad(1)) gb = negated(Broadcast.sumTo(g, bShape), g);
                }
                case MUL -> {
                    if (needsGrad(0)) ga = reduced(product(MUL, g, b.get()), aShape);
                    if (needsGrad(1)) gb = reduced(product(MUL, g, a.get()), bShape);
                }
                default -> {
                    // d(a/b)/da = 1/b; d(a/b)/db = -a/b² = -(1/b)(a/b)
                    Tensor av = a.get(), bv = b.get();
                    Tensor t = product(DIV, g, bv);
                    if (needsGrad(1)) {
                        Tensor q = product(DIV, av, bv);
                        Tensor tq = product(MUL, t, q);
                        q.close();
                        gb = negated(reduced(tq, bShape), null);
                    }
                    if (needsGrad(0)) ga = reduced(t, aShape);
                    else t.close();
                }
            }
            return new Tensor[] {ga, gb};
        }

        private static Tensor product(int op, Tensor x, Tensor y) {
            Tensor out = Tensor.empty(DType.F32, NAMES[op] + ".grad", Broadcast.shape(NAMES[op], x.shape(), y.shape()));
            Broadcast.apply(op, x, y, out);
            return out;
        }

        /** Sums t to shape, closing t when a new tensor replaces it. */
        private static Tensor reduced(Tensor t, int[] shape) {
            Tensor r = Broadcast.sumTo(t, shape);
            if (r != t) t.close();
            return r;
        }

        /** -t, in place unless t is {@code shared} (the incoming gradient, which is not ours to change). */
        private static Tensor negated(Tensor t, Tensor shared) {
            if (t == shared) return affine("sub.grad", t, -1f, 0f);
            MemorySegment m = t.data();
            int n = Math.toIntExact(t.numel());
            Parallel.forRange(n, GRAIN, (from, to) -> ElementwiseKernels.affine(m, from, -1f, 0f, m, from, to - from));
            return t;
        }
    }
}
