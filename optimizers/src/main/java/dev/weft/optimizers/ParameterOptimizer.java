package dev.weft.optimizers;

import dev.weft.core.DType;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * The bookkeeping and the step loop every optimizer shares: parameters by name, named state
 * tensors ("FQN/STATE") registered as they are created, the step count, exact load with shape
 * checks, per-parameter byte counts taken from the registered tensors (so the report is the memory
 * actually held, never a formula), and {@link #step} itself.
 *
 * <p>A step is the same for every optimizer: count it, {@link #beginStep} (what depends on the
 * step alone, such as AdamW's bias corrections), then for each parameter that has a gradient, in
 * the fixed order the parameters were given, acquire its state from the {@link StateResidency},
 * {@link #stepParameter update it}, and release it. So an update may read and write only its own
 * parameter's state; that is what lets the state of all but one parameter live elsewhere.
 */
abstract class ParameterOptimizer implements Optimizer {
    protected final Map<String, Tensor> params;
    private final Map<String, Tensor> state = new LinkedHashMap<>();
    private final Map<String, List<Tensor>> byParam = new LinkedHashMap<>();
    private final Map<String, List<Tensor>> byParamView = new LinkedHashMap<>();
    // The step loop's view of params and byParam by position, and its scratch (no allocation per step).
    private final String[] names;
    private final Tensor[] tensors;
    private final List<Tensor>[] held;
    private final int[] due;
    private StateResidency residency = StateResidency.RESIDENT;
    private long steps;

    @SuppressWarnings("unchecked")
    protected ParameterOptimizer(Map<String, Tensor> parameters) {
        this.params = new LinkedHashMap<>(parameters);
        int n = params.size(), i = 0;
        names = new String[n];
        tensors = new Tensor[n];
        held = new List[n];
        due = new int[n];
        for (var e : params.entrySet()) {
            List<Tensor> list = new ArrayList<>();
            byParam.put(e.getKey(), list);
            List<Tensor> view = Collections.unmodifiableList(list);
            byParamView.put(e.getKey(), view);
            names[i] = e.getKey();
            tensors[i] = e.getValue();
            held[i++] = view;
        }
    }

    /** A zero-filled state tensor of {@code param}, named "param/what", registered for checkpoints and accounting. */
    protected final Tensor newState(String param, String what, int... shape) {
        Tensor t = Scope.outside(() -> Tensor.empty(DType.F32, "optimizer state", shape).fill(0f).name(param + "/" + what));
        state.put(t.name(), t);
        byParam.get(param).add(t);
        return t;
    }

    @Override
    public final void step(double lr) {
        steps++;
        beginStep(lr);
        int k = 0;
        for (int i = 0; i < tensors.length; i++) if (tensors[i].grad() != null) due[k++] = i;
        StateResidency r = residency;
        if (k > 0) r.upcoming(names[due[0]], held[due[0]]);
        for (int j = 0; j < k; j++) {
            int i = due[j];
            r.acquire(names[i], held[i]);
            try {
                if (j + 1 < k) r.upcoming(names[due[j + 1]], held[due[j + 1]]);
                stepParameter(names[i], tensors[i], tensors[i].grad(), lr);
            } finally {
                r.release(names[i], held[i]);
            }
        }
    }

    /** Work of a step that depends on the step alone, before any parameter is updated; {@link #steps()} already counts it. */
    protected void beginStep(double lr) {}

    /**
     * Updates {@code param} from {@code grad} at learning rate {@code lr}, reading and writing only
     * this parameter's state (which is resident now and may not be between calls: never keep its
     * memory segments).
     */
    protected abstract void stepParameter(String name, Tensor param, Tensor grad, double lr);

    @Override
    public long steps() {
        return steps;
    }

    @Override
    public Map<String, Tensor> stateTensors() {
        return new LinkedHashMap<>(state);
    }

    @Override
    public Map<String, List<Tensor>> stateByParameter() {
        return Collections.unmodifiableMap(byParamView);
    }

    @Override
    public void residency(StateResidency residency) {
        this.residency = Objects.requireNonNull(residency, "residency");
    }

    @Override
    public void withState(String parameter, Consumer<List<Tensor>> use) {
        List<Tensor> ts = byParamView.get(parameter);
        if (ts == null) throw new IllegalArgumentException("'" + parameter + "' is not a parameter of this " + name() + " optimizer");
        residency.acquire(parameter, ts);
        try {
            use.accept(ts);
        } finally {
            residency.release(parameter, ts);
        }
    }

    @Override
    public void loadState(Map<String, Tensor> tensors, Map<String, String> scalars, long steps) {
        for (Tensor t : state.values()) {
            Tensor src = tensors.get(t.name());
            if (src == null) throw new IllegalArgumentException("optimizer state '" + t.name() + "' missing from checkpoint");
            if (!Arrays.equals(src.shape(), t.shape()))
                throw new IllegalArgumentException("optimizer state '" + t.name() + "' has shape " + Arrays.toString(src.shape())
                        + " in the checkpoint, expected " + Arrays.toString(t.shape()));
        }
        for (String p : byParamView.keySet()) {
            withState(p, ts -> {
                for (Tensor t : ts) {
                    Tensor src = tensors.get(t.name());
                    // Raw bytes: some state (8-bit codes) is packed into float slots and must not be converted.
                    if (src.dtype() == t.dtype() && src.isContiguous()) MemorySegment.copy(src.data(), 0, t.data(), 0, t.numel() * t.dtype().bytes());
                    else t.copyFrom(src);
                }
            });
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
