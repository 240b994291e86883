package dev.weft.optimizers;

/**
 * What a ZeRO-style sharder may do with an optimizer's parameters.
 *
 * <ul>
 *   <li>{@link Kind#ELEMENTWISE}: every element's update depends only on that element's gradient
 *       and state (SGD, AdamW). Any flat slice of a parameter can live on any rank, as long as
 *       slice boundaries fall on multiples of {@link #alignment()} elements (1, or the
 *       quantisation block of 8-bit AdamW, whose scale is per block).</li>
 *   <li>{@link Kind#WHOLE_MATRIX}: the update of a matrix needs the whole matrix gradient (an SVD,
 *       a random projection with channel norms, Newton–Schulz). Each matrix is owned by exactly one
 *       rank: the gradient is reduce-scattered by matrix, the owner updates it, and the new weights
 *       are all-gathered; matrices are assigned to ranks whole (by size, to balance state).</li>
 * </ul>
 */
public record Sharding(Kind kind, int alignment) {
    public enum Kind { ELEMENTWISE, WHOLE_MATRIX }

    public static final Sharding ELEMENTWISE = new Sharding(Kind.ELEMENTWISE, 1);
    public static final Sharding WHOLE_MATRIX = new Sharding(Kind.WHOLE_MATRIX, 0);

    public Sharding {
        if (kind == Kind.ELEMENTWISE && alignment < 1) throw new IllegalArgumentException("alignment must be >= 1, got " + alignment);
    }

    public static Sharding blocks(int alignment) {
        return new Sharding(Kind.ELEMENTWISE, alignment);
    }
}
