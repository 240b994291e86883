package dev.weft.core.nn;

import java.util.Arrays;

/**
 * Where a parameter's local tensor sits in the whole parameter: the whole's shape, and either all
 * of it (replicated) or one of {@code parts} equal blocks along dimension {@code dim}, split over
 * mesh axis {@code axis} ("tp", ...). Initialisation fills the local box from the global indices,
 * so every layout holds the same global weights without communicating.
 *
 * <p>ZeRO's flat shards are not placements: they cut the flattened buffers of the data-parallel
 * layer, below the model, and the model's tensors keep their placement.
 */
public record Placement(int[] globalShape, int dim, String axis, int index, int parts) {
    public Placement {
        globalShape = globalShape.clone();
        if (dim == -1) {
            if (parts != 1 || index != 0) throw new IllegalArgumentException("a replicated placement has one part");
        } else {
            if (dim < 0 || dim >= globalShape.length)
                throw new IllegalArgumentException("dimension " + dim + " out of range for shape " + Arrays.toString(globalShape));
            if (parts < 1 || globalShape[dim] % parts != 0)
                throw new IllegalArgumentException("cannot split dimension " + dim + " of " + Arrays.toString(globalShape) + " into " + parts + " equal parts");
            if (index < 0 || index >= parts) throw new IllegalArgumentException("part " + index + " of " + parts);
        }
    }

    public static Placement replicated(int... shape) {
        return new Placement(shape, -1, null, 0, 1);
    }

    /** Block {@code index} of {@code parts} along {@code dim}, over mesh axis {@code axis}. */
    public static Placement sharded(int[] shape, int dim, String axis, int index, int parts) {
        return new Placement(shape, dim, axis, index, parts);
    }

    public boolean isReplicated() {
        return dim == -1;
    }

    /** The shape of the block this rank holds. */
    public int[] localShape() {
        int[] s = globalShape.clone();
        if (!isReplicated()) s[dim] /= parts;
        return s;
    }

    /** Where the block starts in the whole, per dimension. */
    public int[] offsets() {
        int[] o = new int[globalShape.length];
        if (!isReplicated()) o[dim] = index * (globalShape[dim] / parts);
        return o;
    }

    @Override
    public int[] globalShape() {
        return globalShape.clone();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Placement p && Arrays.equals(globalShape, p.globalShape) && dim == p.dim && java.util.Objects.equals(axis, p.axis)
                && index == p.index && parts == p.parts;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(globalShape) * 31 + dim * 7 + index * 3 + parts;
    }

    @Override
    public String toString() {
        return isReplicated() ? "replicated " + Arrays.toString(globalShape)
                : "part " + index + "/" + parts + " of dim " + dim + " over " + axis + " of " + Arrays.toString(globalShape);
    }
}
