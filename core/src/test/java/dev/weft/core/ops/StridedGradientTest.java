package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.GradCheck;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.*;

/** Every op's backward must accept an incoming gradient that is a strided view, not only a dense tensor. */
class StridedGradientTest {
    /** Gradients of x under a transposed-view seed equal those under the same seed made dense. */
    private static void check(String what, int[] shape, Function<Tensor, Tensor> f) {
        try (Scope s = Scope.open()) {
            Tensor x = GradCheck.random(1, shape).requiresGrad(true);
            int[] out = f.apply(x).shape();
            int[] swapped = out.clone();
            swapped[0] = out[1];
            swapped[1] = out[0];
            Tensor seedT = GradCheck.random(2, swapped);
            Tensor strided = seedT.transpose(0, 1);
            assertFalse(strided.isContiguous());
            Tensor dense = GradCheck.random(2, swapped).transpose(0, 1).contiguous();
            Autograd.backward(f.apply(x), dense);
            float[] expect = x.grad().toArray();
            x.clearGrad();
            Autograd.backward(f.apply(x), strided);
            assertArrayEquals(expect, x.grad().toArray(), what);
            x.clearGrad();
        }
    }

    @Test
    void opsAcceptStridedGradients() {
        check("rmsnorm", new int[] {3, 5, 17}, x -> RmsNorm.apply(x, Tensor.ones(17), 1e-5f));
        check("silu", new int[] {3, 17}, Activations::silu);
        check("swiglu", new int[] {3, 17}, x -> Activations.swiglu(x, Tensor.full(0.5f, 3, 17)));
        check("rope", new int[] {2, 3, 2, 6}, x -> Rope.apply(x, 1, 10000f));
        check("add", new int[] {3, 7}, x -> Elementwise.add(x, Tensor.ones(7)));
        check("mul", new int[] {3, 7}, x -> Elementwise.mul(x, x));
        check("scale", new int[] {3, 7}, x -> Elementwise.scale(x, 2f));
        check("sum dim", new int[] {3, 4, 7}, x -> Reductions.sum(x, 2, false));
        check("embedding", new int[] {5, 7}, w -> Embedding.lookup(w, new int[] {1, 4, 1, 0, 2, 2}, 2, 3));
    }
}
