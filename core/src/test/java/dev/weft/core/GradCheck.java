package dev.weft.core;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;
import java.util.function.Function;

/**
 * Checks an op's autograd gradients against central finite differences.
 *
 * <p>The scalar being differentiated is {@code L = sum(f(inputs) * R)} for a fixed random R of the
 * output's shape, so every output element matters with a different weight and a gradient that is
 * right only "on average" still fails. Autograd gets R as the seed gradient of the output (this
 * uses no op under test). The numeric derivative of input element x is
 * {@code (L(x + h) - L(x - h)) / (x+h - (x-h))} with L summed in double and the denominator taken
 * from the float values actually stored, so fp32 rounding of the step does not bias it. With the
 * default step 1e-2 the truncation error is about 1e-5 times the third derivative, and the fp32
 * noise in L is about 1e-7 * |L| / 1e-2, both far below the default tolerance
 * {@code |analytic - numeric| <= 1e-3 + 1e-2 * max(|analytic|, |numeric|)}.
 */
public final class GradCheck {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** Step, relative and absolute tolerance, and how many elements per input to check at most. */
    public record Options(double eps, double rtol, double atol, int maxPerInput) {
        public static final Options DEFAULT = new Options(1e-2, 1e-2, 1e-3, 400);

        public Options tolerance(double rtol, double atol) {
            return new Options(eps, rtol, atol, maxPerInput);
        }

        public Options eps(double eps) {
            return new Options(eps, rtol, atol, maxPerInput);
        }
    }

    private GradCheck() {}

    /** Uniform values in [-1, 1), reproducible from the seed. */
    public static Tensor random(long seed, int... shape) {
        Random rnd = new Random(seed);
        float[] v = new float[Math.toIntExact(Tensor.numel(shape))];
        for (int i = 0; i < v.length; i++) v[i] = rnd.nextFloat() * 2f - 1f;
        return Tensor.of(v, shape);
    }

    public static void check(String what, Function<Tensor[], Tensor> f, Tensor... inputs) {
        check(what, Options.DEFAULT, f, inputs);
    }

    /**
     * Throws AssertionError naming the input, the element and both values at the worst mismatch.
     * Inputs must be contiguous float32 leaves; they are marked as requiring grad.
     */
    public static void check(String what, Options opt, Function<Tensor[], Tensor> f, Tensor... inputs) {
        try (Scope scope = Scope.open()) {
            for (Tensor t : inputs) {
                if (!t.isLeaf() || !t.isContiguous() || t.dtype() != DType.F32)
                    throw new IllegalArgumentException("GradCheck inputs must be contiguous float32 leaves, got " + t);
                t.clearGrad();
                t.requiresGrad(true);
            }
            Tensor out = f.apply(inputs);
            Random rnd = new Random(0x5eed ^ out.numel());
            float[] r = new float[Math.toIntExact(out.numel())];
            for (int i = 0; i < r.length; i++) r[i] = rnd.nextFloat() * 2f - 1f;
            Autograd.backward(out, Tensor.of(r, out.shape()));
            float[][] analytic = new float[inputs.length][];
            for (int k = 0; k < inputs.length; k++) {
                Tensor g = inputs[k].grad();
                if (g == null) throw new AssertionError(what + ": input " + k + " got no gradient");
                analytic[k] = g.toArray();
                inputs[k].clearGrad();
            }

            StringBuilder failures = new StringBuilder();
            double worst = 0;
            int checked = 0;
            for (int k = 0; k < inputs.length; k++) {
                MemorySegment m = inputs[k].data();
                int n = Math.toIntExact(inputs[k].numel());
                int stride = Math.max(1, (n + opt.maxPerInput - 1) / opt.maxPerInput);
                for (int j = (k * 7) % stride; j < n; j += stride) {
                    float x = m.getAtIndex(F, j);
                    float xp = (float) (x + opt.eps), xm = (float) (x - opt.eps);
                    m.setAtIndex(F, j, xp);
                    double lp = loss(f, inputs, r);
                    m.setAtIndex(F, j, xm);
                    double lm = loss(f, inputs, r);
                    m.setAtIndex(F, j, x);
                    double numeric = (lp - lm) / ((double) xp - xm);
                    double a = analytic[k][j];
                    double err = Math.abs(a - numeric);
                    double allowed = opt.atol + opt.rtol * Math.max(Math.abs(a), Math.abs(numeric));
                    checked++;
                    if (!(err <= allowed)) {
                        double excess = Double.isNaN(err) ? Double.POSITIVE_INFINITY : err / allowed;
                        if (failures.length() < 2000)
                            failures.append(String.format("%n  input %d %s element %d: analytic %.6g, numeric %.6g", k,
                                    Arrays.toString(inputs[k].shape()), j, a, numeric));
                        worst = Math.max(worst, excess);
                    }
                }
            }
            if (!failures.isEmpty())
                throw new AssertionError(what + ": gradient mismatch (worst " + String.format("%.3g", worst) + "x the tolerance "
                        + opt.atol + " + " + opt.rtol + "*|g|, " + checked + " elements checked):" + failures);
        } finally {
            for (Tensor t : inputs) t.clearGrad();
        }
    }

    /** sum(f(inputs) * r) in double, with nothing recorded and every temporary freed. */
    private static double loss(Function<Tensor[], Tensor> f, Tensor[] inputs, float[] r) {
        try (Scope s = Scope.open(); var ng = Autograd.noGrad()) {
            float[] out = f.apply(inputs).toArray();
            double l = 0;
            for (int i = 0; i < out.length; i++) l += (double) out[i] * r[i];
            return l;
        }
    }
}
