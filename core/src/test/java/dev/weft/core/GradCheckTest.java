package dev.weft.core;

import dev.weft.core.ops.Matmul;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The checker itself: it must pass a right backward and reject a wrong one. */
class GradCheckTest {
    /** x², with a backward that is right or (factor 1 instead of 2) wrong. */
    private static Tensor square(Tensor x, float factor) {
        float[] v = x.toArray();
        for (int i = 0; i < v.length; i++) v[i] *= v[i];
        Tensor out = Tensor.of(v, x.shape());
        if (Autograd.needsGrad(x)) {
            out.attach(new GradFn("square", x) {
                private final SavedTensor saved = save(x);

                @Override
                protected Tensor[] backward(Tensor g) {
                    float[] gv = g.toArray(), xv = saved.get().toArray();
                    for (int i = 0; i < gv.length; i++) gv[i] *= factor * xv[i];
                    return new Tensor[] {Tensor.of(gv, g.shape())};
                }
            });
        }
        return out;
    }

    @Test
    void acceptsACorrectBackward() {
        try (Scope s = Scope.open()) {
            GradCheck.check("square", in -> square(in[0], 2f), GradCheck.random(1, 3, 7));
        }
    }

    @Test
    void rejectsAWrongBackward() {
        try (Scope s = Scope.open()) {
            AssertionError e = assertThrows(AssertionError.class,
                    () -> GradCheck.check("square", in -> square(in[0], 1f), GradCheck.random(1, 3, 7)));
            assertTrue(e.getMessage().contains("square: gradient mismatch"), e.getMessage());
        }
    }

    @Test
    void rejectsAGradientOffByASmallRelativeError() {
        // 5% off is beyond the 1% relative tolerance: the checker is not so loose that near-misses pass.
        try (Scope s = Scope.open()) {
            assertThrows(AssertionError.class, () -> GradCheck.check("square", in -> square(in[0], 2.1f), GradCheck.random(2, 17)));
        }
    }

    @Test
    void viewTransposeAndContiguousGradients() {
        try (Scope s = Scope.open()) {
            GradCheck.check("view", in -> in[0].view(7, 3), GradCheck.random(3, 3, 7));
            GradCheck.check("transpose", in -> in[0].transpose(0, 1), GradCheck.random(4, 3, 7));
            GradCheck.check("transpose.contiguous", in -> in[0].transpose(0, 2).contiguous(), GradCheck.random(5, 2, 3, 5));
            GradCheck.check("transpose.reshape", in -> in[0].transpose(0, 1).reshape(-1), GradCheck.random(6, 17, 3));
        }
    }

    @Test
    void matmulAndLinearGradients() {
        try (Scope s = Scope.open()) {
            int[][] mkn = {{1, 1, 1}, {3, 7, 5}, {17, 3, 33}, {2, 33, 1}};
            for (int[] d : mkn) {
                GradCheck.check("matmul " + java.util.Arrays.toString(d), in -> Matmul.matmul(in[0], in[1]),
                        GradCheck.random(10, d[0], d[1]), GradCheck.random(11, d[1], d[2]));
                GradCheck.check("linear " + java.util.Arrays.toString(d), in -> Matmul.linear(in[0], in[1]),
                        GradCheck.random(12, 2, d[0], d[1]), GradCheck.random(13, d[2], d[1]));
            }
            GradCheck.check("batched matmul", in -> Matmul.matmul(in[0], in[1]),
                    GradCheck.random(14, 2, 3, 5, 7), GradCheck.random(15, 2, 3, 7, 3));
            GradCheck.check("matmul shared right operand", in -> Matmul.matmul(in[0], in[1]),
                    GradCheck.random(16, 3, 5, 7), GradCheck.random(17, 7, 4));
            GradCheck.check("matmul of transposed views", in -> Matmul.matmul(in[0].transpose(0, 1), in[1].transpose(0, 1)),
                    GradCheck.random(18, 7, 5), GradCheck.random(19, 3, 7));
        }
    }
}
