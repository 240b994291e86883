package dev.weft.optimizers;

import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * SGD with momentum and Nesterov, as torch.optim.SGD: g ← g + wd·p (coupled, L2-style decay, on
 * matrices only like every weft optimizer); buf ← g on a parameter's first step, else
 * buf ← μ·buf + (1 − dampening)·g; the step is g + μ·buf with Nesterov, buf without; p ← p − lr·step.
 * State: one buffer (m·n floats) when momentum &gt; 0, none otherwise.
 */
public final class Sgd extends ParameterOptimizer {
    public record Settings(double momentum, double dampening, boolean nesterov, double weightDecay) {
        public Settings {
            if (!(momentum >= 0 && momentum < 1)) throw new IllegalArgumentException("sgd: momentum must be in [0, 1), got " + momentum);
            if (!(dampening >= 0 && dampening <= 1)) throw new IllegalArgumentException("sgd: dampening must be in [0, 1], got " + dampening);
            if (!(weightDecay >= 0)) throw new IllegalArgumentException("sgd: weight_decay must be >= 0, got " + weightDecay);
            if (nesterov && (momentum == 0 || dampening != 0))
                throw new IllegalArgumentException("sgd: nesterov needs momentum > 0 and dampening 0, got momentum " + momentum + ", dampening " + dampening);
        }
    }

    private final Settings s;
    private final Map<String, Tensor> buffers = new LinkedHashMap<>();
    private final Map<String, long[]> counts = new LinkedHashMap<>();

    public Sgd(Map<String, Tensor> parameters, Settings settings) {
        super(parameters);
        this.s = settings;
        params.forEach((n, p) -> {
            if (s.momentum() > 0) buffers.put(n, newState(n, "momentum_buffer", p.shape()));
            counts.put(n, new long[1]);
        });
    }

    @Override
    public String name() {
        return "sgd";
    }

    @Override
    protected void stepParameter(String name, Tensor p, Tensor grad, double lr) {
        float mu = (float) s.momentum(), damp = (float) (1 - s.dampening()), step = (float) lr;
        long[] t = counts.get(name);
        boolean first = t[0]++ == 0;
        float wd = p.dim() >= 2 ? (float) s.weightDecay() : 0f;
        MemorySegment w = p.data(), g = grad.data();
        Tensor bt = buffers.get(name);
        MemorySegment buf = bt == null ? null : bt.data();
        for (long i = 0, n = p.numel(); i < n; i++) {
            float wi = w.getAtIndex(Mat.F, i);
            float gi = g.getAtIndex(Mat.F, i) + wd * wi;
            if (buf != null) {
                float bi = first ? gi : mu * buf.getAtIndex(Mat.F, i) + damp * gi;
                buf.setAtIndex(Mat.F, i, bi);
                gi = s.nesterov() ? gi + mu * bi : bi;
            }
            w.setAtIndex(Mat.F, i, wi - step * gi);
        }
    }

    @Override
    public Map<String, String> stateScalars() {
        Map<String, String> out = new LinkedHashMap<>();
        counts.forEach((n, c) -> out.put(n + "/step", Long.toString(c[0])));
        return out;
    }

    @Override
    protected void loadScalars(Map<String, String> scalars) {
        counts.forEach((n, c) -> c[0] = Long.parseLong(scalar(scalars, n + "/step")));
    }
}
