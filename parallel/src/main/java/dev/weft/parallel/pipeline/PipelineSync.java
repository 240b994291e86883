package dev.weft.parallel.pipeline;

import dev.weft.core.Tensor;
import dev.weft.parallel.GradientSync;
import dev.weft.parallel.ProcessGroup;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.DoubleUnaryOperator;

/**
 * The gradient sync of a pipeline rank: one data-parallel sync per stage it holds (interleaved
 * schedules give a rank several), because each stage's backward passes run on their own and a
 * stage's reductions start when its own last micro-batch's gradients land. The runtime drives
 * {@link #stage(int)}'s micro-steps; the step as a whole (begin, finish, clip, optimizer) goes
 * through this. The global gradient norm sums over the pipeline group as well: stages hold
 * disjoint parameters.
 */
public final class PipelineSync implements GradientSync {
    private final Map<Integer, GradientSync> stages;
    private final ProcessGroup pipeline;
    private final Map<String, GradientSync> byParameter = new LinkedHashMap<>();
    private final Map<String, Tensor> optimizerParameters = new LinkedHashMap<>();

    /** {@code stages}: this rank's stages, by stage index, each with the sync over that stage's parameters. */
    public PipelineSync(Map<Integer, GradientSync> stages, ProcessGroup pipeline) {
        if (stages.isEmpty()) throw new IllegalArgumentException("a pipeline rank holds at least one stage");
        this.stages = Collections.unmodifiableMap(new LinkedHashMap<>(stages));
        this.pipeline = pipeline;
        for (GradientSync s : stages.values()) {
            s.optimizerParameters().forEach((name, p) -> {
                optimizerParameters.put(name, p);
                byParameter.put(name, s);
            });
        }
    }

    /** The sync of stage {@code stage} (held by this rank). */
    public GradientSync stage(int stage) {
        GradientSync s = stages.get(stage);
        if (s == null) throw new IllegalArgumentException("stage " + stage + " is not held by this rank (it holds " + stages.keySet() + ")");
        return s;
    }

    @Override
    public void beginStep() {
        for (GradientSync s : stages.values()) s.beginStep();
    }

    /** The runtime begins each stage's micro-steps through {@link #stage(int)}: a pipeline has no step-wide micro-step. */
    @Override
    public void beginMicroStep(boolean last) {
        throw new UnsupportedOperationException("a pipeline begins micro-steps per stage: stage(s).beginMicroStep(last)");
    }

    @Override
    public void finishGradients() {
        for (GradientSync s : stages.values()) s.finishGradients();
    }

    @Override
    public Map<String, Tensor> optimizerParameters() {
        return Collections.unmodifiableMap(optimizerParameters);
    }

    @Override
    public Map<String, Tensor> normParameters() {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (GradientSync s : stages.values()) out.putAll(s.normParameters());
        return out;
    }

    @Override
    public long[] shardOf(String name) {
        GradientSync s = byParameter.get(name);
        return s == null ? null : s.shardOf(name);
    }

    @Override
    public boolean shardsWeight(String name) {
        for (GradientSync s : stages.values()) if (s.shardsWeight(name)) return true;
        return false;
    }

    @Override
    public DoubleUnaryOperator groupSum() {
        DoubleUnaryOperator dp = stages.values().iterator().next().groupSum();
        return v -> pipeline.sum(dp.applyAsDouble(v));
    }

    @Override
    public void afterOptimizerStep() {
        for (GradientSync s : stages.values()) s.afterOptimizerStep();
    }

    @Override
    public double mean(double value) {
        return stages.values().iterator().next().mean(value);
    }

    @Override
    public void close() {
        List<RuntimeException> errors = new ArrayList<>();
        for (GradientSync s : stages.values()) {
            try {
                s.close();
            } catch (RuntimeException e) {
                errors.add(e);
            }
        }
        if (!errors.isEmpty()) throw errors.getFirst();
    }
}
