package dev.weft.parallel.tensor;

import dev.weft.core.Tensor;
import dev.weft.core.nn.Module;
import dev.weft.core.nn.Placement;
import dev.weft.parallel.ProcessGroup;

/**
 * How one module is split over the tensor-parallel group (torchtitan's ColwiseParallel and
 * RowwiseParallel): which dimension of its weight each rank holds a block of, and the collectives
 * its boundary adds. A column-parallel projection holds a block of output features (rows of W) and
 * needs the whole input; a row-parallel one holds a block of input features (columns of W), takes
 * the column-parallel layer's block as input, and sums partial outputs. A vocabulary-parallel
 * embedding holds a block of the table's rows and sums the looked-up blocks. Under sequence
 * parallelism the whole-input copy becomes an all-gather along the sequence, and the sum a
 * reduce-scatter along it.
 */
public enum ParallelStyle {
    COLWISE(0), ROWWISE(1), VOCAB_EMBEDDING(0);

    private final int dim;

    ParallelStyle(int dim) {
        this.dim = dim;
    }

    /** Places {@code module}'s weight for tensor-parallel rank {@code group.rank()} and installs its collectives. */
    public void apply(Module module, String fqn, ProcessGroup group, boolean sequenceParallel, long seed) {
        Placement whole = module.placement("weight");
        if (whole == null) throw new IllegalArgumentException(fqn + ": tensor-parallel style " + this + " needs a module with a weight");
        int[] shape = whole.globalShape();
        if (shape[dim] % group.size() != 0)
            throw new IllegalArgumentException(fqn + ".weight: dimension " + dim + " of " + java.util.Arrays.toString(shape) + " does not split into "
                    + group.size() + " tensor-parallel blocks");
        module.place("weight", Placement.sharded(shape, dim, "tp", group.rank(), group.size()), seed);
        module.boundary(switch (this) {
            case COLWISE -> new Module.Boundary() {
                @Override public Tensor input(Tensor x) {
                    return sequenceParallel ? TensorParallel.gatherSequence(x, group) : TensorParallel.copyToGroup(x, group);
                }
            };
            case ROWWISE, VOCAB_EMBEDDING -> new Module.Boundary() {
                @Override public Tensor output(Tensor y) {
                    return sequenceParallel ? TensorParallel.reduceScatterSequence(y, group) : TensorParallel.reduceFromGroup(y, group);
                }
            };
        });
    }
}
