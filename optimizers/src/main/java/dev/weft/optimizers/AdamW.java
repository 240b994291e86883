package dev.weft.optimizers;

import dev.weft.core.Tensor;
import dev.weft.core.kernels.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;

/**
 * Adam with decoupled weight decay (Loshchilov &amp; Hutter), in PyTorch's order of operations:
 * decay the weight by (1 - lr·wd), update the moments, then step by lr·m̂/(√v̂ + ε) with bias
 * corrections. Weight decay applies to matrices only (not to norm gains), the usual choice for
 * transformers.
 */
public final class AdamW extends ParameterOptimizer {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** Hyperparameters with their usual defaults. */
    public record Settings(double beta1, double beta2, double eps, double weightDecay) {
        public Settings {
            if (!(beta1 >= 0 && beta1 < 1)) throw new IllegalArgumentException("optimizer.beta1 must be in [0, 1), got " + beta1);
            if (!(beta2 >= 0 && beta2 < 1)) throw new IllegalArgumentException("optimizer.beta2 must be in [0, 1), got " + beta2);
            if (!(eps > 0)) throw new IllegalArgumentException("optimizer.eps must be > 0, got " + eps);
            if (!(weightDecay >= 0)) throw new IllegalArgumentException("optimizer.weight_decay must be >= 0, got " + weightDecay);
        }

        public static Settings defaults() {
            return new Settings(0.9, 0.999, 1e-8, 0.01);
        }
    }

    private final Settings s;
    private final Map<String, Tensor[]> moments = new HashMap<>();
    // This step's bias-corrected factors, set by beginStep.
    private float stepSize, bc2Sqrt;

    public AdamW(Map<String, Tensor> parameters, Settings settings) {
        super(parameters);
        this.s = settings;
        params.forEach((n, p) -> moments.put(n, new Tensor[] {newState(n, "exp_avg", p.shape()), newState(n, "exp_avg_sq", p.shape())}));
    }

    @Override
    public String name() {
        return "adamw";
    }

    @Override
    protected void beginStep(double lr) {
        // StrictMath: Math.pow may differ by an ulp once JIT-compiled, which would break bit-exact resume.
        double bc1 = 1 - StrictMath.pow(s.beta1(), steps()), bc2 = 1 - StrictMath.pow(s.beta2(), steps());
        stepSize = (float) (lr / bc1);
        bc2Sqrt = (float) Math.sqrt(bc2);
    }

    @Override
    protected void stepParameter(String name, Tensor p, Tensor g, double lr) {
        Tensor[] mv = moments.get(name);
        float decay = p.dim() >= 2 ? (float) (1 - lr * s.weightDecay()) : 1f;
        update(p.data(), g.data(), mv[0].data(), mv[1].data(), Math.toIntExact(p.numel()), decay, (float) s.beta1(), (float) s.beta2(),
                stepSize, bc2Sqrt, (float) s.eps());
    }

    /** The fused per-element update; vectorised, and split over cores for large tensors. */
    static void update(MemorySegment p, MemorySegment g, MemorySegment m, MemorySegment v, int n, float decay,
                       float b1, float b2, float stepSize, float bc2Sqrt, float eps) {
        Parallel.forRange(n, 1 << 14, (from, to) -> {
            int i = from;
            ByteOrder o = ByteOrder.nativeOrder();
            for (int bound = from + SPECIES.loopBound(to - from); i < bound; i += SPECIES.length()) {
                long off = (long) i * 4;
                FloatVector gv = FloatVector.fromMemorySegment(SPECIES, g, off, o);
                FloatVector mv = FloatVector.fromMemorySegment(SPECIES, m, off, o).mul(b1).add(gv.mul(1 - b1));
                FloatVector vv = FloatVector.fromMemorySegment(SPECIES, v, off, o).mul(b2).add(gv.mul(gv).mul(1 - b2));
                FloatVector denom = vv.lanewise(VectorOperators.SQRT).div(bc2Sqrt).add(eps);
                FloatVector pv = FloatVector.fromMemorySegment(SPECIES, p, off, o).mul(decay).sub(mv.div(denom).mul(stepSize));
                mv.intoMemorySegment(m, off, o);
                vv.intoMemorySegment(v, off, o);
                pv.intoMemorySegment(p, off, o);
            }
            for (; i < to; i++) {
                float gi = g.getAtIndex(F, i);
                float mi = m.getAtIndex(F, i) * b1 + gi * (1 - b1);
                float vi = v.getAtIndex(F, i) * b2 + gi * gi * (1 - b2);
                float denom = (float) Math.sqrt(vi) / bc2Sqrt + eps;
                m.setAtIndex(F, i, mi);
                v.setAtIndex(F, i, vi);
                p.setAtIndex(F, i, p.getAtIndex(F, i) * decay - mi / denom * stepSize);
            }
        });
    }
}
