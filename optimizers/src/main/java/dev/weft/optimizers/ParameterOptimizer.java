package dev.weft.optimizers;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The bookkeeping every per-parameter optimizer shares: parameters by name, named state tensors
 * ("FQN/STATE") registered as they are created, the step count, exact load with shape checks,
 * and per-parameter byte counts taken from the registered tensors (so the report is the memory
 * actually held, never a formula).
 */
abstract class ParameterOptimizer implements Optimizer {
    protected final Map<String, Tensor> params;
    private final Map<String, Tensor> state = new LinkedHashMap<>();
    private final Map<String, List<Tensor>> byParam = new LinkedHashMap<>();
    protected long steps;

    protected ParameterOptimizer(Map<String, Tensor> parameters) {
        this.params = new LinkedHashMap<>(parameters);
        for (String n : params.keySet()) byParam.put(n, new ArrayList<>());
    }

    /** A zero-filled state tensor of {@code param}, named "param/what", registered for checkpoints and accounting. */
    protected final Tensor newState(String param, String what, int... shape) {
        Tensor t = Scope.outside(() -> Tensor.empty(dev.weft.core.DType.F32, "optimizer state", shape).fill(0f).name(param + "/" + what));
        state.put(t.name(), t);
        byParam.get(param).add(t);
        return t;
    }

    @Override
    public long steps() {
        return steps;
    }

    @Override
    public Map<String, Tensor> stateTensors() {
        return new LinkedHashMap<>(state);
    }

    @Override
    public void loadState(Map<String, Tensor> tensors, Map<String, String> scalars, long steps) {
        for (Tensor t : state.values()) {
            Tensor src = tensors.get(t.name());
            if (src == null) throw new IllegalArgumentException("optimizer state '" + t.name() + "' missing from checkpoint");
            if (!Arrays.equals(src.shape(), t.shape()))
                throw new IllegalArgumentException("optimizer state '" + t.name() + "' has shape " + Arrays.toString(src.shape())
                        + " in the checkpoint, expected " + Arrays.toString(t.shape()));
            // Raw bytes: some state (8-bit codes) is packed into float slots and must not be converted.
            MemorySegment.copy(src.data(), 0, t.data(), 0, t.numel() * 4);
        }
        loadScalars(scalars);
        this.steps = steps;
    }

    /** Restores the scalars written by {@link #stateScalars()}; the default has none. */
    protected void loadScalars(Map<String, String> scalars) {}

    /** Reads a required scalar, naming it when it is missing. */
    protected static String scalar(Map<String, String> scalars, String key) {
        String v = scalars.get(key);
        if (v == null) throw new IllegalArgumentException("optimizer scalar state '" + key + "' missing from checkpoint");
        return v;
    }

    /** Floats are stored as their bit patterns so that a reload is exact. */
    protected static String bits(float f) {
        return Integer.toString(Float.floatToRawIntBits(f));
    }

    protected static float unbits(String s) {
        return Float.intBitsToFloat(Integer.parseInt(s));
    }

    @Override
    public Map<String, Long> stateBytesByParameter() {
        Map<String, Long> out = new LinkedHashMap<>();
        byParam.forEach((p, ts) -> {
            long b = 0;
            for (Tensor t : ts) b += t.numel() * t.dtype().bytes();
            out.put(p, b);
        });
        return out;
    }

    /** Frees every state tensor. */
    @Override
    public void close() {
        for (Tensor t : state.values()) t.close();
        state.clear();
        byParam.values().forEach(List::clear);
    }

    /** The parameter's shape as (rows, cols), rejecting anything that is not a matrix. */
    protected static int[] matrixShape(String optimizer, String name, Tensor p) {
        if (p.dim() != 2)
            throw new IllegalArgumentException(optimizer + " updates 2-D weight matrices only, but '" + name + "' has shape "
                    + Arrays.toString(p.shape()) + "; put it in an adamw group (optimizer.groups)");
        return new int[] {p.size(0), p.size(1)};
    }
}
