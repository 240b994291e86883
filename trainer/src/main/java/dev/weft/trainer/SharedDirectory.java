package dev.weft.trainer;

import dev.weft.core.Tensor;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.ReduceOp;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Whether every node of a job sees the same out_dir (a shared filesystem) or its own. Each node's
 * first rank writes a marker carrying a token of this run; if every node's marker is visible to
 * every node, the directory is shared. Checkpoints are then written once, otherwise once per node.
 */
final class SharedDirectory {
    private SharedDirectory() {}

    /** Every rank of {@code world} calls this alike; the answer is the same on every rank. */
    static boolean probe(Path dir, ProcessGroup world, int ranksPerNode) {
        int nodes = world.size() / ranksPerNode, node = world.rank() / ranksPerNode;
        if (nodes == 1) return true;
        boolean first = world.rank() % ranksPerNode == 0;
        float token;
        try (Tensor t = Tensor.of(new float[] {world.rank() == 0 ? ThreadLocalRandom.current().nextInt(1, 1 << 24) : 0}, 1)) {
            world.broadcast(t, 0);
            token = t.toArray()[0];
        }
        String mark = Integer.toString((int) token);
        try {
            if (first) Files.writeString(dir.resolve(".weft-node-" + node), mark);
            world.barrier();
            float seesAll = 1;
            if (first)
                for (int n = 0; n < nodes; n++) {
                    Path f = dir.resolve(".weft-node-" + n);
                    if (!Files.exists(f) || !Files.readString(f).equals(mark)) seesAll = 0;
                }
            try (Tensor t = Tensor.of(new float[] {seesAll}, 1)) {
                world.allReduce(t, ReduceOp.MIN);
                world.barrier();
                if (first) Files.deleteIfExists(dir.resolve(".weft-node-" + node));
                return t.toArray()[0] == 1;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot probe whether the nodes share " + dir + ": " + e.getMessage(), e);
        }
    }
}
