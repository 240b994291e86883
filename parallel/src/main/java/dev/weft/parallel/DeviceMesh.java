package dev.weft.parallel;

import java.util.ArrayList;
import java.util.List;

/**
 * The world carved into a pp x dp x tp grid of ranks, with one process group per axis, as
 * torchtitan's ParallelDims does it. Tensor parallelism is innermost, so the ranks of one
 * tensor-parallel group are adjacent (the same node, where the fastest links are); pipeline
 * parallelism is outermost:
 * <pre>
 *   rank = (pp_index * dp + dp_index) * tp + tp_index
 * </pre>
 * Every rank builds the same mesh from the same shape; the subgroups cost no communication.
 */
public final class DeviceMesh {
    /** The sizes of the three axes; their product is the world size. */
    public record Shape(int pp, int dp, int tp) {
        public Shape {
            if (pp < 1 || dp < 1 || tp < 1) throw new IllegalArgumentException("mesh axes must be >= 1, got pp " + pp + ", dp " + dp + ", tp " + tp);
        }

        public int size() {
            return pp * dp * tp;
        }

        /**
         * The shape that {@code dp}, {@code tp} and {@code pp} describe on {@code world} ranks: at
         * most one of them may be -1, inferred from the world size. The error names the config keys
         * and their values.
         */
        public static Shape resolve(int world, int dp, int tp, int pp) {
            if (world < 1) throw new IllegalArgumentException("world size must be >= 1, got " + world);
            int[] v = {dp, tp, pp};
            String[] key = {"parallel.dp", "parallel.tp", "parallel.pp"};
            int infer = -1;
            long known = 1;
            for (int i = 0; i < 3; i++) {
                if (v[i] == -1) {
                    if (infer >= 0) throw new IllegalArgumentException(key[infer] + " and " + key[i]
                            + " are both -1; at most one mesh axis can be inferred from the world size");
                    infer = i;
                } else if (v[i] < 1) {
                    throw new IllegalArgumentException(key[i] + " = " + v[i] + " is invalid: expected a positive integer, or -1 to infer it");
                } else {
                    known *= v[i];
                }
            }
            if (infer >= 0) {
                if (world % known != 0)
                    throw new IllegalArgumentException("cannot infer " + key[infer] + ": the world size " + world + " is not divisible by "
                            + describe(v, key, infer) + " = " + known);
                v[infer] = (int) (world / known);
            } else if (known != world) {
                throw new IllegalArgumentException(describe(v, key, -1) + " = " + known + " does not equal the world size " + world
                        + "; set one axis to -1 to infer it");
            }
            return new Shape(v[2], v[0], v[1]);
        }

        private static String describe(int[] v, String[] key, int skip) {
            List<String> parts = new ArrayList<>();
            for (int i = 0; i < 3; i++) if (i != skip) parts.add(key[i] + " " + v[i]);
            return String.join(" x ", parts);
        }
    }

    private final Shape shape;
    private final ProcessGroup world;
    private final int ppIndex, dpIndex, tpIndex;
    private final ProcessGroup pp, dp, tp;

    /**
     * Builds the mesh over {@code world}; every rank of it calls this with the same shape. An axis
     * that spans the whole world reuses the world group itself (and its same-host fast paths).
     */
    public DeviceMesh(ProcessGroup world, Shape shape) {
        if (shape.size() != world.size())
            throw new IllegalArgumentException("mesh " + shape + " holds " + shape.size() + " ranks, the world has " + world.size());
        this.shape = shape;
        this.world = world;
        int r = world.rank();
        this.tpIndex = r % shape.tp();
        this.dpIndex = (r / shape.tp()) % shape.dp();
        this.ppIndex = r / (shape.tp() * shape.dp());
        this.pp = axisGroup("pp", shape.pp(), shape.tp() * shape.dp(), ppIndex);
        this.dp = axisGroup("dp", shape.dp(), shape.tp(), dpIndex);
        this.tp = axisGroup("tp", shape.tp(), 1, tpIndex);
    }

    /**
     * This rank's group along one axis. The groups of an axis are enumerated from the ranks whose
     * coordinate on it is 0, in rank order, and every rank creates all of them in that order
     * (subgroup creation is collective in order, not in content).
     */
    private ProcessGroup axisGroup(String name, int size, int stride, int index) {
        if (size == world.size()) return world;
        ProcessGroup mine = null;
        int n = 0;
        for (int first = 0; first < world.size(); first++) {
            if ((first / stride) % size != 0) continue;
            int[] ranks = new int[size];
            for (int j = 0; j < size; j++) ranks[j] = first + j * stride;
            ProcessGroup g = world.subgroup(name + ":" + n++, ranks);
            if (g != null) mine = g;
        }
        if (mine == null || mine.rank() != index) throw new IllegalStateException("mesh axis " + name + ": rank " + world.rank() + " found no group of its own");
        return mine;
    }

    public int rankOf(int ppIndex, int dpIndex, int tpIndex) {
        return (ppIndex * shape.dp() + dpIndex) * shape.tp() + tpIndex;
    }

    public Shape shape() {
        return shape;
    }

    public ProcessGroup world() {
        return world;
    }

    /** This rank's group along the data-parallel axis (gradients are reduced and ZeRO shards over it). */
    public ProcessGroup dp() {
        return dp;
    }

    public ProcessGroup tp() {
        return tp;
    }

    public ProcessGroup pp() {
        return pp;
    }

    public int dpIndex() {
        return dpIndex;
    }

    public int tpIndex() {
        return tpIndex;
    }

    public int ppIndex() {
        return ppIndex;
    }

    /**
     * The mesh as a small table, one row per rank: its coordinates on each axis. Printed at
     * start-up so a user sees which ranks share a gradient reduction or a tensor-parallel layer.
     */
    public static String table(Shape shape) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("mesh: pp %d x dp %d x tp %d = %d ranks (tp innermost)%n", shape.pp(), shape.dp(), shape.tp(), shape.size()));
        sb.append("  rank | pp | dp | tp\n");
        int shown = Math.min(shape.size(), 16);
        for (int r = 0; r < shown; r++) {
            int t = r % shape.tp(), d = (r / shape.tp()) % shape.dp(), p = r / (shape.tp() * shape.dp());
            sb.append(String.format("  %4d | %2d | %2d | %2d%n", r, p, d, t));
        }
        if (shown < shape.size()) sb.append("  ... ").append(shape.size() - shown).append(" more ranks\n");
        return sb.toString();
    }
}
