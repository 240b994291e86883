package dev.weft.core.nn;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A piece of a model with named parameters and named children. Fully qualified names join the
 * path from the root with dots ("model.layers.0.self_attn.q_proj.weight"), in registration order,
 * so they are stable across runs and match the checkpoint names.
 *
 * <p>Modules declare parameters in their constructors; the root's {@link #initialize(long)} then
 * names every parameter by its path and fills it from (seed, name, index).
 */
public abstract class Module {
    private final Map<String, Tensor> parameters = new LinkedHashMap<>();
    private final Map<String, Init.Scheme> schemes = new LinkedHashMap<>();
    private final Map<String, Placement> placements = new LinkedHashMap<>();
    private final Map<String, Module> children = new LinkedHashMap<>();
    private Hooks hooks;
    private Boundary boundary;
    private ActivationPolicy activations;

    /**
     * What a parallel layout does around a module's forward and backward: ZeRO-3 gathers the
     * module's parameters before each and frees them after. Model code calls {@link #around}; the
     * layout installs the hooks.
     */
    public interface Hooks {
        void beforeForward(Module m);

        void afterForward(Module m);

        void beforeBackward(Module m);

        void afterBackward(Module m);
    }

    /** Installs (or, with null, removes) this module's hooks. */
    public final void hooks(Hooks h) {
        this.hooks = h;
    }

    /**
     * What a parallel layout does to a module's input and output tensors: tensor parallelism makes
     * a column-parallel projection's input "copied to the group" (its gradient all-reduced) and a
     * row-parallel one's output all-reduced. Both default to the identity.
     */
    public interface Boundary {
        default Tensor input(Tensor x) {
            return x;
        }

        default Tensor output(Tensor y) {
            return y;
        }
    }

    /** Installs (or, with null, removes) this module's boundary. */
    public final void boundary(Boundary b) {
        this.boundary = b;
    }

    /**
     * Installs (or, with null, removes) the policy for what this module's forward keeps for
     * backward (activation checkpointing, offload). Without one, every op keeps what it saves.
     */
    public final void activations(ActivationPolicy p) {
        this.activations = p;
    }

    /** This module's activation policy; null when it has none. */
    public final ActivationPolicy activations() {
        return activations;
    }

    /**
     * Runs {@code body} on {@code x} (null where the input is not a tensor, such as token ids)
     * inside this module's boundary, hooks and activation policy, in that order from the outside:
     * boundary input, before-forward, the body under the policy, after-forward, boundary output.
     * In backward, before-backward runs when the gradient reaches the output (so a policy that
     * recomputes the body finds the parameters gathered) and after-backward when it has passed the
     * input (the root module, without a tensor input, has no after-backward).
     */
    protected final Tensor around(Tensor x, java.util.function.UnaryOperator<Tensor> body) {
        Boundary b = boundary;
        if (b == null) return hooked(x, body);
        return b.output(hooked(x == null ? null : b.input(x), body));
    }

    private Tensor hooked(Tensor x, java.util.function.UnaryOperator<Tensor> body) {
        Hooks h = hooks;
        if (h == null) return underPolicy(x, body);
        h.beforeForward(this);
        Tensor y;
        try {
            y = underPolicy(BackwardHook.on(x, () -> h.afterBackward(this)), body);
        } finally {
            h.afterForward(this);
        }
        return BackwardHook.on(y, () -> h.beforeBackward(this));
    }

    private Tensor underPolicy(Tensor x, java.util.function.UnaryOperator<Tensor> body) {
        ActivationPolicy p = activations;
        return p == null ? body.apply(x) : p.apply(this, x, body);
    }

    /**
     * Removes child {@code name} and frees its parameters: a pipeline stage drops the layers and
     * ends of the model that other stages hold.
     */
    protected final void drop(String name) {
        Module m = children.remove(name);
        if (m == null) throw new IllegalArgumentException("no child " + name + " in " + getClass().getSimpleName());
        m.close();
    }

    /** Registers a child module under {@code name}. */
    protected final <M extends Module> M child(String name, M module) {
        if (children.putIfAbsent(name, module) != null) throw new IllegalStateException("duplicate child " + name);
        return module;
    }

    /** Declares a parameter, whole on this rank; its values are set by {@link #initialize}. */
    protected final Tensor parameter(String name, Init.Scheme init, int... shape) {
        return parameter(name, init, Placement.replicated(shape));
    }

    /** Declares a parameter of which this rank holds the block {@code place} describes. */
    protected final Tensor parameter(String name, Init.Scheme init, Placement place) {
        Tensor p = Scope.outside(() -> Tensor.empty(dev.weft.core.DType.F32, "parameters", place.localShape()));
        p.requiresGrad(true).name(name);
        if (parameters.putIfAbsent(name, p) != null) throw new IllegalStateException("duplicate parameter " + name);
        schemes.put(name, init);
        placements.put(name, place);
        return p;
    }

    /**
     * Replaces parameter {@code name} of this module (after {@link #initialize}) by the block
     * {@code place} describes, filled from the same (seed, FQN, global index) as the whole was: the
     * tensor-parallel layout calls this, and every layout holds the same global weights. The old
     * tensor is freed; read parameters through {@link #parameter(String)}, not a cached field.
     */
    public final Tensor place(String name, Placement place, long seed) {
        Tensor old = parameters.get(name);
        if (old == null) throw new IllegalArgumentException("no parameter " + name + " in " + getClass().getSimpleName());
        if (!java.util.Arrays.equals(place.globalShape(), placements.get(name).globalShape()))
            throw new IllegalArgumentException(old.name() + ": placement " + place + " does not match its shape " + placements.get(name));
        Tensor p = Scope.outside(() -> Tensor.empty(dev.weft.core.DType.F32, "parameters", place.localShape()));
        p.requiresGrad(true).name(old.name());
        Init.fill(p, schemes.get(name), seed, old.name(), place);
        old.clearGrad();
        old.close();
        parameters.put(name, p);
        placements.put(name, place);
        return p;
    }

    /** This module's own parameter {@code name} (not a descendant's), as currently placed. */
    protected final Tensor parameter(String name) {
        Tensor p = parameters.get(name);
        if (p == null) throw new IllegalArgumentException("no parameter " + name + " in " + getClass().getSimpleName());
        return p;
    }

    /** Where this module's own parameter {@code name} sits in the whole. */
    public final Placement placement(String name) {
        return placements.get(name);
    }

    /** Names every parameter by its path from this module and initialises it from (seed, name, index). */
    public final void initialize(long seed) {
        initialize("", seed);
    }

    private void initialize(String prefix, long seed) {
        for (var e : parameters.entrySet()) {
            String fqn = prefix + e.getKey();
            Init.fill(e.getValue().name(fqn), schemes.get(e.getKey()), seed, fqn, placements.get(e.getKey()));
        }
        for (var c : children.entrySet()) c.getValue().initialize(prefix + c.getKey() + ".", seed);
    }

    /** Every parameter of this module and its descendants, by fully qualified name, in a fixed order. */
    public final Map<String, Tensor> namedParameters() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        collect(out);
        return Collections.unmodifiableMap(out);
    }

    private void collect(Map<String, Tensor> out) {
        for (Tensor p : parameters.values()) out.put(p.name(), p);
        for (Module c : children.values()) c.collect(out);
    }

    /** Where each parameter's local tensor sits in the whole, by fully qualified name (after {@link #initialize}). */
    public final Map<String, Placement> namedPlacements() {
        Map<String, Placement> out = new LinkedHashMap<>();
        collectPlacements(out);
        return Collections.unmodifiableMap(out);
    }

    private void collectPlacements(Map<String, Placement> out) {
        for (var e : parameters.entrySet()) out.put(e.getValue().name(), placements.get(e.getKey()));
        for (Module c : children.values()) c.collectPlacements(out);
    }

    /** This module and every descendant by path ("" for this one, "model.layers.0", ...), parents first. */
    public final Map<String, Module> namedModules() {
        Map<String, Module> out = new LinkedHashMap<>();
        collectModules("", out);
        return Collections.unmodifiableMap(out);
    }

    private void collectModules(String path, Map<String, Module> out) {
        out.put(path, this);
        for (var c : children.entrySet()) c.getValue().collectModules(path.isEmpty() ? c.getKey() : path + "." + c.getKey(), out);
    }

    public final long parameterCount() {
        long n = 0;
        for (Tensor p : namedParameters().values()) n += p.numel();
        return n;
    }

    /** Frees every parameter and its gradient. */
    public void close() {
        for (Tensor p : namedParameters().values()) {
            p.clearGrad();
            p.close();
        }
    }
}
