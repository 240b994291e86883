package dev.weft.checkpoint;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

/** Snapshots with recognisable contents, and helpers shared by the store tests. */
final class Fixtures {
    private Fixtures() {}

    static Snapshot snapshot(long step, int bytesPerChunk) {
        Random rnd = new Random(step * 7919 + bytesPerChunk);
        byte[] w = new byte[bytesPerChunk], v = new byte[bytesPerChunk / 3 + 5];
        rnd.nextBytes(w);
        rnd.nextBytes(v);
        return new Snapshot(new SnapshotRecord(step, step * 1000 + 17, new long[]{rnd.nextLong(), rnd.nextLong()},
                Map.of("lr", "3.0E-4", "lossScale", "65536")),
                List.of(Chunk.of("model.layers.0.weight", new long[]{64, bytesPerChunk}, new long[]{8, 0}, new long[]{1, bytesPerChunk}, w),
                        Chunk.whole("optimizer.adam.step", new long[]{v.length}, v)));
    }

    static void assertSame(Snapshot expected, Snapshot actual) {
        org.junit.jupiter.api.Assertions.assertEquals(expected.record(), actual.record());
        org.junit.jupiter.api.Assertions.assertEquals(expected.chunks().size(), actual.chunks().size());
        for (int i = 0; i < expected.chunks().size(); i++)
            org.junit.jupiter.api.Assertions.assertTrue(expected.chunks().get(i).sameAs(actual.chunks().get(i)),
                    "chunk " + expected.chunks().get(i) + " differs from " + actual.chunks().get(i));
    }

    static List<Path> domainDirs(Path root, int n) {
        List<Path> out = new ArrayList<>();
        for (int i = 0; i < n; i++) out.add(root.resolve("node" + i));
        return out;
    }

    static List<SnapshotStore> open(List<Path> dirs) throws IOException {
        List<SnapshotStore> out = new ArrayList<>();
        for (Path p : dirs) out.add(SnapshotStore.open(p));
        return out;
    }

    static void close(List<SnapshotStore> stores) {
        for (SnapshotStore s : stores) if (s != null) s.close();
    }

    static void wipe(Path dir) throws IOException {
        try (var w = java.nio.file.Files.walk(dir)) {
            for (Path p : w.sorted(java.util.Comparator.reverseOrder()).toList()) java.nio.file.Files.delete(p);
        }
    }
}
