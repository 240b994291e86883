package dev.weft.parallel.tensor;

import dev.weft.core.DType;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.nn.Placement;
import dev.weft.parallel.GradientSync;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.ReduceOp;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.DoubleUnaryOperator;

/**
 * The data-parallel gradient sync of a tensor-parallel rank, plus what tensor parallelism adds:
 * <ul>
 *   <li>under sequence parallelism, a replicated parameter that sees only this rank's positions
 *       (the norms' gains) has a partial gradient, summed over the group once the data-parallel
 *       reduction has landed (one all-reduce for all of them);</li>
 *   <li>the global gradient norm counts each replicated parameter once (on tensor-parallel rank 0)
 *       and each block of a split one on the rank that holds it, summed over the group;</li>
 *   <li>a split matrix whose optimizer needs it whole (GaLore's and APOLLO's projections, Muon's
 *       orthogonalisation) is gathered for it: after the reductions its gradient and weight blocks
 *       are all-gathered into a whole matrix, every rank of the group steps that whole matrix alike
 *       (the same inputs, the same bits), and each keeps its block of the result. The update is
 *       exactly one process's; the cost is the whole matrix and its optimizer state on every rank
 *       of the group, small for the low-rank optimizers whose state is the point of them.</li>
 * </ul>
 */
public final class TensorParallelSync implements GradientSync {
    private final GradientSync inner;
    private final ProcessGroup tp;
    private final Set<String> partial, replicated;
    /** Split matrices stepped whole: this rank's block (the model's parameter) and the whole it is gathered into. */
    private final Map<String, Gathered> gathered = new LinkedHashMap<>();
    private final Map<String, Tensor> optimizerParameters = new LinkedHashMap<>();

    private record Gathered(Tensor block, Placement place, Tensor whole) {}

    /**
     * @param partial    parameters whose gradients are partial sums over the group (empty without sequence parallelism)
     * @param replicated parameters every tensor-parallel rank holds whole
     * @param wholeForOptimizer split parameters whose optimizer steps the whole matrix, with their placements
     */
    public TensorParallelSync(GradientSync inner, ProcessGroup tp, Set<String> partial, Set<String> replicated, Map<String, Placement> wholeForOptimizer) {
        this.inner = inner;
        this.tp = tp;
        this.partial = Set.copyOf(partial);
        this.replicated = Set.copyOf(replicated);
        inner.optimizerParameters().forEach((name, block) -> {
            Placement place = wholeForOptimizer.get(name);
            if (place == null) {
                optimizerParameters.put(name, block);
                return;
            }
            Tensor whole = Scope.outside(() -> Tensor.empty(DType.F32, "parameters", place.globalShape()));
            whole.requiresGrad(true).name(name);
            whole.useGrad(Scope.outside(() -> Tensor.empty(DType.F32, "gradients", place.globalShape()).fill(0f)));
            gathered.put(name, new Gathered(block, place, whole));
            optimizerParameters.put(name, whole);
        });
    }

    /** True when this rank's optimizer steps parameter {@code name} whole (gathered over the group), not its block. */
    public boolean stepsWhole(String name) {
        return gathered.containsKey(name);
    }

    @Override public void beginStep() { inner.beginStep(); }
    @Override public void beginMicroStep(boolean last) { inner.beginMicroStep(last); }
    @Override public Map<String, Tensor> optimizerParameters() { return Collections.unmodifiableMap(optimizerParameters); }
    @Override public long[] shardOf(String name) { return stepsWhole(name) ? null : inner.shardOf(name); }
    @Override public double mean(double value) { return inner.mean(value); }
    @Override public boolean shardsWeight(String name) { return !stepsWhole(name) && inner.shardsWeight(name); }

    @Override
    public void afterOptimizerStep() {
        for (Gathered g : gathered.values()) Blocks.copyBlock(g.whole, g.place, g.block);
        inner.afterOptimizerStep();
    }

    @Override
    public void close() {
        for (Gathered g : gathered.values()) {
            g.whole.clearGrad();
            g.whole.close();
        }
        inner.close();
    }

    @Override
    public void finishGradients() {
        inner.finishGradients();
        allReducePartial();
        for (Gathered g : gathered.values()) {
            Blocks.gather(g.block.grad(), g.place, tp, g.whole.grad());
            Blocks.gather(g.block, g.place, tp, g.whole);
        }
    }

    private void allReducePartial() {
        List<Tensor> grads = new ArrayList<>();
        inner.optimizerParameters().forEach((name, p) -> {
            if (partial.contains(name) && p.grad() != null) grads.add(p.grad());
        });
        if (grads.isEmpty()) return;
        long n = 0;
        for (Tensor g : grads) n += g.numel();
        try (Scope s = Scope.open()) {
            Tensor flat = Tensor.empty(DType.F32, "gradients", Math.toIntExact(n));
            long at = 0;
            for (Tensor g : grads) {
                MemorySegment.copy(g.data(), 0, flat.data(), at * 4, g.numel() * 4);
                at += g.numel();
            }
            tp.allReduce(flat, ReduceOp.SUM);
            at = 0;
            for (Tensor g : grads) {
                MemorySegment.copy(flat.data(), at * 4, g.data(), 0, g.numel() * 4);
                at += g.numel();
            }
        }
    }

    @Override
    public Map<String, Tensor> normParameters() {
        if (tp.rank() == 0) return inner.normParameters();
        Map<String, Tensor> counted = new LinkedHashMap<>(inner.normParameters());
        counted.keySet().removeAll(replicated);
        return counted;
    }

    @Override
    public DoubleUnaryOperator groupSum() {
        DoubleUnaryOperator dp = inner.groupSum();
        return v -> dp.applyAsDouble(tp.sum(v));
    }
}
