package dev.weft.parallel.tensor;

import dev.weft.core.DType;
import dev.weft.core.Tensor;
import dev.weft.core.nn.Placement;
import dev.weft.parallel.ProcessGroup;

import java.lang.foreign.MemorySegment;

/**
 * Moving a tensor-parallel block to and from its whole. A block along dimension d of a whole of
 * shape G is [outer, e, inner] where outer is the product of G's dimensions before d and inner of
 * those after it; in the whole, each of the outer rows holds the group's blocks side by side.
 */
final class Blocks {
    private Blocks() {}

    /** {@code whole} (of the placement's global shape) receives every rank's block of {@code block}. */
    static void gather(Tensor block, Placement place, ProcessGroup group, Tensor whole) {
        int p = place.parts();
        long[] geometry = geometry(place);
        long outer = geometry[0], run = geometry[1] * 4; // bytes of one block row
        Tensor all = Tensor.empty(DType.F32, "tp gather", p, Math.toIntExact(block.numel()));
        try (all) {
            group.allGather(block, all);
            MemorySegment from = all.data(), to = whole.data();
            for (int r = 0; r < p; r++)
                for (long o = 0; o < outer; o++) MemorySegment.copy(from, (r * outer + o) * run, to, (o * p + r) * run, run);
        }
    }

    /** Copies this rank's block of {@code whole} into {@code block}. */
    static void copyBlock(Tensor whole, Placement place, Tensor block) {
        int p = place.parts(), r = place.index();
        long[] geometry = geometry(place);
        long outer = geometry[0], run = geometry[1] * 4;
        for (long o = 0; o < outer; o++) MemorySegment.copy(whole.data(), (o * p + r) * run, block.data(), o * run, run);
    }

    /** {outer rows, elements of one block row}. */
    private static long[] geometry(Placement place) {
        int[] g = place.globalShape();
        long outer = 1, inner = 1;
        for (int i = 0; i < place.dim(); i++) outer *= g[i];
        for (int i = place.dim() + 1; i < g.length; i++) inner *= g[i];
        return new long[] {outer, (long) g[place.dim()] / place.parts() * inner};
    }
}
