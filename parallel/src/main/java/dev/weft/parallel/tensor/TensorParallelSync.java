package dev.weft.parallel.tensor;

import dev.weft.core.DType;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.parallel.GradientSync;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.ReduceOp;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
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
 *       and each block of a split one on the rank that holds it, summed over the group.</li>
 * </ul>
 */
public final class TensorParallelSync implements GradientSync {
    private final GradientSync inner;
    private final ProcessGroup tp;
    private final Set<String> partial, replicated;

    /**
     * @param partial    parameters whose gradients are partial sums over the group (empty without sequence parallelism)
     * @param replicated parameters every tensor-parallel rank holds whole
     */
    public TensorParallelSync(GradientSync inner, ProcessGroup tp, Set<String> partial, Set<String> replicated) {
        this.inner = inner;
        this.tp = tp;
        this.partial = Set.copyOf(partial);
        this.replicated = Set.copyOf(replicated);
    }

    @Override public void beginStep() { inner.beginStep(); }
    @Override public void beginMicroStep(boolean last) { inner.beginMicroStep(last); }
    @Override public Map<String, Tensor> optimizerParameters() { return inner.optimizerParameters(); }
    @Override public long[] shardOf(String name) { return inner.shardOf(name); }
    @Override public void afterOptimizerStep() { inner.afterOptimizerStep(); }
    @Override public double mean(double value) { return inner.mean(value); }
    @Override public void close() { inner.close(); }

    @Override
    public void finishGradients() {
        inner.finishGradients();
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
