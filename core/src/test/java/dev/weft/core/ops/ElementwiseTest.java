package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.GradCheck;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.function.BinaryOperator;

import static org.junit.jupiter.api.Assertions.*;

class ElementwiseTest {
    private interface Op {
        Tensor apply(Tensor a, Tensor b);
    }

    private static final Op[] OPS = {Elementwise::add, Elementwise::sub, Elementwise::mul, Elementwise::div};
    private static final String[] NAMES = {"add", "sub", "mul", "div"};
    private static final BinaryOperator<Float>[] REF = refs();

    @SuppressWarnings("unchecked")
    private static BinaryOperator<Float>[] refs() {
        return new BinaryOperator[] {(BinaryOperator<Float>) (x, y) -> x + y, (BinaryOperator<Float>) (x, y) -> x - y,
                (BinaryOperator<Float>) (x, y) -> x * y, (BinaryOperator<Float>) (x, y) -> x / y};
    }

    /** Shape pairs: equal, trailing-vector, size-1 inner, both sides broadcast, scalar, leading ones. */
    private static final int[][][] PAIRS = {
            {{1}, {1}}, {{3}, {3}}, {{17}, {17}}, {{2, 33}, {2, 33}}, {{2, 3, 7}, {7}}, {{2, 3, 17}, {2, 3, 1}},
            {{1, 3}, {2, 1}}, {{3, 1, 5}, {4, 1}}, {{2, 7}, {}}, {{}, {3, 2}}, {{7}, {1, 1, 7}}, {{4, 1, 3}, {1, 5, 3}},
            {{33, 17}, {33, 1}}, {{2, 3, 4}, {3, 1}}};

    /** A tensor whose values stay away from 0 (so division is well conditioned). */
    private static Tensor nonZero(long seed, int... shape) {
        float[] v = GradCheck.random(seed, shape).toArray();
        for (int i = 0; i < v.length; i++) v[i] = v[i] >= 0 ? 0.5f + v[i] : -0.5f + v[i];
        return Tensor.of(v, shape);
    }

    /** The broadcast reference: index each operand with its right-aligned, size-1-repeating index. */
    private static float[] reference(BinaryOperator<Float> f, Tensor a, Tensor b, int[] out) {
        float[] r = new float[(int) Tensor.numel(out)];
        int[] idx = new int[out.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = f.apply(a.get(project(idx, a.shape())), b.get(project(idx, b.shape())));
            for (int d = out.length - 1; d >= 0; d--) {
                if (++idx[d] < out[d]) break;
                idx[d] = 0;
            }
        }
        return r;
    }

    private static int[] project(int[] idx, int[] shape) {
        int[] p = new int[shape.length];
        for (int d = 0; d < shape.length; d++) {
            int k = d + idx.length - shape.length;
            p[d] = shape[d] == 1 ? 0 : idx[k];
        }
        return p;
    }

    @Test
    void forwardMatchesLoopsWithBroadcasting() {
        try (Scope s = Scope.open()) {
            for (int[][] p : PAIRS) {
                Tensor a = nonZero(1, p[0]), b = nonZero(2, p[1]);
                for (int o = 0; o < OPS.length; o++) {
                    Tensor y = OPS[o].apply(a, b);
                    int[] expectShape = broadcast(p[0], p[1]);
                    assertArrayEquals(expectShape, y.shape(), NAMES[o] + " shape");
                    assertArrayEquals(reference(REF[o], a, b, expectShape), y.toArray(), 1e-6f,
                            NAMES[o] + " " + Arrays.toString(p[0]) + " " + Arrays.toString(p[1]));
                }
            }
        }
    }

    private static int[] broadcast(int[] a, int[] b) {
        int r = Math.max(a.length, b.length);
        int[] out = new int[r];
        for (int k = 0; k < r; k++) {
            int da = k - (r - a.length), db = k - (r - b.length);
            out[k] = Math.max(da < 0 ? 1 : a[da], db < 0 ? 1 : b[db]);
        }
        return out;
    }

    @Test
    void largeRowsMatchLoops() {
        // Big enough to be split over threads, with a vector tail: [3, 70001] op [70001] and op [3, 1].
        try (Scope s = Scope.open()) {
            Tensor a = nonZero(3, 3, 70001), b = nonZero(4, 70001), c = nonZero(5, 3, 1);
            float[] av = a.toArray(), bv = b.toArray(), cv = c.toArray();
            float[] y1 = Elementwise.mul(a, b).toArray(), y2 = Elementwise.sub(a, c).toArray(), y3 = Elementwise.add(a, a).toArray();
            for (int i = 0; i < av.length; i++) {
                assertEquals(av[i] * bv[i % 70001], y1[i]);
                assertEquals(av[i] - cv[i / 70001], y2[i]);
                assertEquals(av[i] + av[i], y3[i]);
            }
            assertEquals(3 * 1.5f, Reductions.sum(Elementwise.mul(Tensor.ones(3, 1), Tensor.full(1.5f, 1))).item());
        }
    }

    @Test
    void gradientsOfBroadcastOperandsAreSummedBack() {
        try (Scope s = Scope.open()) {
            for (int[][] p : PAIRS) {
                for (int o = 0; o < OPS.length; o++) {
                    Op op = OPS[o];
                    GradCheck.check(NAMES[o] + " " + Arrays.toString(p[0]) + " " + Arrays.toString(p[1]),
                            in -> op.apply(in[0], in[1]), nonZero(6, p[0]), nonZero(7, p[1]));
                }
            }
        }
    }

    @Test
    void broadcastGradientIsTheExactSumOverRepeats() {
        try (Scope s = Scope.open()) {
            Tensor x = GradCheck.random(8, 2, 3, 5).requiresGrad(true);
            Tensor bias = Tensor.zeros(5).requiresGrad(true);
            Tensor g = GradCheck.random(9, 2, 3, 5);
            float[] gv = g.toArray(), expect = new float[5];
            Autograd.backward(Elementwise.add(x, bias), g); // consumes g
            for (int i = 0; i < gv.length; i++) expect[i % 5] += gv[i];
            assertArrayEquals(expect, bias.grad().toArray(), 1e-6f);
            assertArrayEquals(gv, x.grad().toArray());
            x.clearGrad();
            bias.clearGrad();
        }
    }

    @Test
    void sameTensorOnBothSides() {
        try (Scope s = Scope.open()) {
            GradCheck.check("x*x", in -> Elementwise.mul(in[0], in[0]), GradCheck.random(10, 3, 7));
            GradCheck.check("x-x+x", in -> Elementwise.add(Elementwise.sub(in[0], in[0]), in[0]), GradCheck.random(11, 17));
        }
    }

    @Test
    void scaleAndAddScalar() {
        try (Scope s = Scope.open()) {
            Tensor a = GradCheck.random(12, 3, 17);
            float[] av = a.toArray(), sv = Elementwise.scale(a, -2.5f).toArray(), pv = Elementwise.addScalar(a, 0.75f).toArray();
            for (int i = 0; i < av.length; i++) {
                assertEquals(av[i] * -2.5f, sv[i]);
                assertEquals(av[i] + 0.75f, pv[i]);
            }
            for (int[] shape : new int[][] {{1}, {7}, {33, 3}}) {
                GradCheck.check("scale", in -> Elementwise.scale(in[0], -2.5f), GradCheck.random(13, shape));
                GradCheck.check("addScalar", in -> Elementwise.addScalar(in[0], 3f), GradCheck.random(14, shape));
            }
            GradCheck.check("scale of a transposed view", in -> Elementwise.scale(in[0].transpose(0, 1), 3f), GradCheck.random(15, 3, 5));
        }
    }

    @Test
    void nonContiguousOperands() {
        try (Scope s = Scope.open()) {
            Tensor a = GradCheck.random(16, 5, 3);
            Tensor b = GradCheck.random(17, 3, 5);
            Tensor y = Elementwise.add(a.transpose(0, 1), b);
            float[] av = a.toArray(), bv = b.toArray(), yv = y.toArray();
            for (int i = 0; i < 3; i++) for (int j = 0; j < 5; j++) assertEquals(av[j * 3 + i] + bv[i * 5 + j], yv[i * 5 + j]);
            GradCheck.check("mul of transposed views", in -> Elementwise.mul(in[0].transpose(0, 1), in[1]), GradCheck.random(18, 5, 3), nonZero(19, 3, 1));
        }
    }

    @Test
    void incompatibleShapesAreRejectedWithTheShapes() {
        try (Scope s = Scope.open()) {
            var e = assertThrows(IllegalArgumentException.class, () -> Elementwise.add(Tensor.zeros(2, 3), Tensor.zeros(4)));
            assertTrue(e.getMessage().contains("add") && e.getMessage().contains("[2, 3]") && e.getMessage().contains("[4]"), e.getMessage());
            var e2 = assertThrows(IllegalArgumentException.class, () -> Elementwise.div(Tensor.zeros(2, 3), Tensor.zeros(3, 3)));
            assertTrue(e2.getMessage().contains("div") && e2.getMessage().contains("3 vs 2") || e2.getMessage().contains("2 vs 3"), e2.getMessage());
        }
    }
}
