package dev.weft.optimizers;

import dev.weft.core.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Predicate;
import java.util.regex.Pattern;

/**
 * Optimizers applied to groups of parameters chosen by name patterns, stepping together as one
 * {@link Optimizer}. A parameter belongs to the first group with a matching pattern; parameters
 * no group matches go to the default group. Each group has its own peak learning rate, expressed
 * as a multiple of the schedule's: the schedule's shape (warmup, decay) is shared.
 *
 * <p>Patterns are globs over Hugging Face names, where {@code *} matches any run of characters
 * (dots included) and {@code ?} one character, e.g. {@code model.layers.*.mlp.*_proj.weight} or
 * {@code *norm.weight}; a pattern starting with {@code re:} is a Java regular expression matched
 * against the whole name.
 */
public final class ParameterGroups implements Optimizer {
    /** One group as configured: optimizer name, patterns (empty for the default group), settings, lr multiplier. */
    public record Spec(String optimizer, List<String> patterns, Map<String, ?> settings, double lrScale) {
        public Spec {
            patterns = List.copyOf(patterns);
            settings = Map.copyOf(settings);
            if (!(lrScale >= 0)) throw new IllegalArgumentException("a group's lr scale must be >= 0, got " + lrScale);
        }
    }

    /** A built group: its label, the parameters it holds, and its optimizer. */
    public record Group(String label, List<String> parameters, Optimizer optimizer, double lrScale) {}

    private final List<Group> groups = new ArrayList<>();
    private long steps;

    /**
     * Splits {@code parameters} over {@code specs} (first match wins) and {@code fallback}. A pattern
     * that matches no parameter is an error (it is almost always a typo); an empty group is dropped.
     */
    public ParameterGroups(Map<String, Tensor> parameters, List<Spec> specs, Spec fallback) {
        this(parameters, null, specs, fallback);
    }

    /**
     * Groups over the part of the model this rank steps (ZeRO): {@code local} holds whole parameters
     * or flat shards of them, {@code globalShapes} every parameter of the model with its full shape.
     * Groups are formed, and patterns checked, over the whole model, so every rank has the same
     * groups (and the same {@link #name()}) even where it steps nothing of one.
     */
    public ParameterGroups(Map<String, Tensor> local, Map<String, int[]> globalShapes, List<Spec> specs, Spec fallback) {
        Map<String, int[]> shapes = globalShapes;
        if (shapes == null) {
            shapes = new LinkedHashMap<>();
            for (var e : local.entrySet()) shapes.put(e.getKey(), e.getValue().shape());
        }
        Map<String, Spec> assigned = assign(shapes.keySet(), specs, fallback);
        for (int g = 0; g <= specs.size(); g++) {
            int index = g < specs.size() ? g : -1;
            Spec spec = index < 0 ? fallback : specs.get(g);
            Map<String, Tensor> members = new LinkedHashMap<>();
            Map<String, int[]> memberShapes = new LinkedHashMap<>();
            boolean any = false;
            for (var e : assigned.entrySet()) {
                if (e.getValue() != spec) continue;
                any = true;
                memberShapes.put(e.getKey(), shapes.get(e.getKey()));
                if (local.containsKey(e.getKey())) members.put(e.getKey(), local.get(e.getKey()));
            }
            if (any) add(spec, members, memberShapes, index);
        }
    }

    /**
     * Which spec each parameter name falls to: the first group with a matching pattern, else the
     * fallback. A pattern that matches no name is an error.
     */
    public static Map<String, Spec> assign(java.util.Collection<String> names, List<Spec> specs, Spec fallback) {
        List<List<Predicate<String>>> matchers = new ArrayList<>();
        for (Spec s : specs) {
            Optimizers.settings(s.optimizer()); // unknown names fail here, listing the known ones
            if (s.patterns().isEmpty()) throw new IllegalArgumentException("a parameter group needs at least one name pattern (params)");
            List<Predicate<String>> ms = new ArrayList<>();
            for (String p : s.patterns()) {
                Predicate<String> m = matcher(p);
                if (names.stream().noneMatch(m))
                    throw new IllegalArgumentException("parameter pattern '" + p + "' (group " + s.optimizer() + ") matches no parameter; names look like "
                            + String.join(", ", names.stream().limit(4).toList()));
                ms.add(m);
            }
            matchers.add(ms);
        }
        Map<String, Spec> out = new LinkedHashMap<>();
        outer:
        for (String n : names) {
            for (int g = 0; g < specs.size(); g++) {
                for (Predicate<String> m : matchers.get(g)) {
                    if (m.test(n)) {
                        out.put(n, specs.get(g));
                        continue outer;
                    }
                }
            }
            out.put(n, fallback);
        }
        return out;
    }

    private void add(Spec s, Map<String, Tensor> params, Map<String, int[]> shapes, int index) {
        String label = (index < 0 ? "default" : "group " + index) + " (" + s.optimizer() + ")";
        groups.add(new Group(label, List.copyOf(params.keySet()), Optimizers.create(s.optimizer(), params, shapes, s.settings()), s.lrScale()));
    }

    /** A glob (or {@code re:} regex) over whole parameter names. */
    public static Predicate<String> matcher(String pattern) {
        if (pattern.startsWith("re:")) return Pattern.compile(pattern.substring(3)).asMatchPredicate();
        StringBuilder re = new StringBuilder();
        for (char c : pattern.toCharArray()) {
            if (c == '*') re.append(".*");
            else if (c == '?') re.append('.');
            else re.append(Pattern.quote(String.valueOf(c)));
        }
        return Pattern.compile(re.toString()).asMatchPredicate();
    }

    public List<Group> groups() {
        return List.copyOf(groups);
    }

    /** The optimizers' names joined by '+', in group order ("galore+adamw"); a single group's name alone. */
    @Override
    public String name() {
        return String.join("+", groups.stream().map(g -> g.optimizer().name()).toList());
    }

    @Override
    public void step(double lr) {
        steps++;
        for (Group g : groups) g.optimizer().step(lr * g.lrScale());
    }

    @Override
    public long steps() {
        return steps;
    }

    @Override
    public Map<String, Tensor> stateTensors() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Group g : groups) out.putAll(g.optimizer().stateTensors());
        return out;
    }

    @Override
    public Map<String, List<Tensor>> stateByParameter() {
        Map<String, List<Tensor>> out = new LinkedHashMap<>();
        for (Group g : groups) out.putAll(g.optimizer().stateByParameter());
        return out;
    }

    /** Sets {@code residency} on every group's optimizer; each group announces and acquires its own parameters. */
    @Override
    public void residency(StateResidency residency) {
        for (Group g : groups) g.optimizer().residency(residency);
    }

    @Override
    public void withState(String parameter, Consumer<List<Tensor>> use) {
        for (Group g : groups) {
            if (g.optimizer().stateByParameter().containsKey(parameter)) {
                g.optimizer().withState(parameter, use);
                return;
            }
        }
        throw new IllegalArgumentException("'" + parameter + "' is not a parameter any optimizer group of this rank steps");
    }

    @Override
    public Map<String, String> stateScalars() {
        Map<String, String> out = new LinkedHashMap<>();
        for (Group g : groups) out.putAll(g.optimizer().stateScalars());
        return out;
    }

    @Override
    public Map<String, Double> stepStats() {
        Map<String, Double> out = new LinkedHashMap<>();
        for (Group g : groups) out.putAll(g.optimizer().stepStats());
        return out;
    }

    @Override
    public void loadState(Map<String, Tensor> tensors, Map<String, String> scalars, long steps) {
        Map<String, Tensor> own = stateTensors();
        for (String n : tensors.keySet())
            if (!own.containsKey(n))
                throw new IllegalArgumentException("checkpoint has optimizer state '" + n + "' that this configuration does not use; were the parameter groups changed?");
        for (Group g : groups) g.optimizer().loadState(tensors, scalars, steps);
        this.steps = steps;
    }

    @Override
    public int stateStride(String stateName) {
        for (Group g : groups) if (g.optimizer().stateTensors().containsKey(stateName)) return g.optimizer().stateStride(stateName);
        return 1;
    }

    @Override
    public Map<String, Long> stateBytesByParameter() {
        Map<String, Long> out = new LinkedHashMap<>();
        for (Group g : groups) out.putAll(g.optimizer().stateBytesByParameter());
        return out;
    }

    /** State bytes per group label. */
    public Map<String, Long> stateBytesByGroup() {
        Map<String, Long> out = new LinkedHashMap<>();
        for (Group g : groups) out.put(g.label(), g.optimizer().stateBytes());
        return out;
    }

    @Override
    public void close() {
        for (Group g : groups) g.optimizer().close();
    }
}
