package dev.weft.checkpoint;

import dev.weft.parallel.InJvmTransport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SplittableRandom;
import java.util.function.Function;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ranks in one JVM (in-JVM process groups, every collective as real messages) save every step,
 * then a "restarted" job (new groups, stores reopened) restores: bit-exact, from local pieces
 * first, rebuilding lost or corrupt pieces from parity, and failing alike on every rank when more
 * than m domains are gone.
 */
class DistributedSnapshotsTest {
    private static final Duration TIMEOUT = Duration.ofSeconds(30);
    private static final String JOB = "test-job";

    @TempDir Path root;

    /** Rank r's state after step s: a few chunks of odd sizes, different per rank (rank 0 holds more, as with replicated weights). */
    static Snapshot state(int rank, long step) {
        SplittableRandom rnd = new SplittableRandom(rank * 1000L + step);
        int size = 10_000 + rank * 777 + (rank == 0 ? 50_000 : 0);
        byte[] a = new byte[size], b = new byte[333];
        for (int i = 0; i < a.length; i++) a[i] = (byte) rnd.nextInt();
        for (int i = 0; i < b.length; i++) b[i] = (byte) rnd.nextInt();
        return new Snapshot(new SnapshotRecord(step, step * 64, new long[] {rank, step}, Map.of("optimizer", "adamw")),
                List.of(Chunk.whole("weights.safetensors", new long[] {a.length}, a), Chunk.whole("optimizer.safetensors", new long[] {b.length}, b)));
    }

    private <T> List<T> onRanks(int world, Function<Integer, DistributedSnapshots.Domains> domains, int k, int m,
                                Function<DistributedSnapshots, T> body) {
        return InJvmTransport.run(world, TIMEOUT, 4096, g -> {
            try (DistributedSnapshots s = new DistributedSnapshots(g, root, SnapshotStore.Options.defaults(), JOB, domains.apply(world), k, m)) {
                return body.apply(s);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }

    private static void save(DistributedSnapshots s, int rank, long from, long to) {
        for (long step = from; step <= to; step++) {
            try {
                s.save(state(rank, step));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    private static Optional<DistributedSnapshots.Restored> restore(DistributedSnapshots s) {
        try {
            return s.restore();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void assertSame(Snapshot want, Snapshot got) {
        assertEquals(want.record(), got.record());
        assertEquals(want.chunks().size(), got.chunks().size());
        for (int i = 0; i < want.chunks().size(); i++) assertTrue(want.chunks().get(i).sameAs(got.chunks().get(i)), "chunk " + i);
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) Files.delete(q);
        }
    }

    @Test
    void aRestartRestoresTheNewestStepBitForBitFromLocalPieces() {
        int world = 4;
        InJvmTransport.run(world, TIMEOUT, 4096, g -> {
            try (DistributedSnapshots s = new DistributedSnapshots(g, root, SnapshotStore.Options.defaults(), JOB, DistributedSnapshots.Domains.perRank(world), 2, 1)) {
                save(s, g.rank(), 1, 3);
                return null;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
        List<DistributedSnapshots.Restored> got = onRanks(world, DistributedSnapshots.Domains::perRank, 2, 1, s -> restore(s).orElseThrow());
        for (int r = 0; r < world; r++) {
            DistributedSnapshots.Restored x = got.get(r);
            assertEquals(3, x.step());
            assertSame(state(r, 3), x.snapshot());
            assertEquals(1, x.localPieces(), "the data piece 0 is on the owner's own domain");
            assertEquals(1, x.fetchedPieces(), "the second data piece comes from the next domain");
            assertEquals(0, x.rebuiltPieces());
        }
        // the stores keep the two newest committed steps, and readers see the step marked globally committed
        try (SnapshotStore st = SnapshotStore.open(root.resolve("rank1"))) {
            assertEquals(List.of(3L, 2L), st.committedSteps(JOB, DistributedSnapshots.owner(1)));
            assertEquals(3, st.globallyCommitted(JOB).orElseThrow());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void aWipedDomainAndACorruptPieceAreRebuiltFromParity() throws IOException {
        int world = 4;
        InJvmTransport.run(world, TIMEOUT, 4096, g -> {
            try (DistributedSnapshots s = new DistributedSnapshots(g, root, SnapshotStore.Options.defaults(), JOB, DistributedSnapshots.Domains.perRank(world), 2, 1)) {
                save(s, g.rank(), 1, 2);
                return null;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
        deleteTree(root.resolve("rank2")); // a lost node: its memory is gone
        // and a flipped byte in piece 1 of rank 3's snapshot, stored on domain rank0
        Path piece = root.resolve("rank0/data/" + JOB + "/" + DistributedSnapshots.owner(3) + "/2/1.bin");
        byte[] bytes = Files.readAllBytes(piece);
        bytes[17] ^= 0x40;
        Files.write(piece, bytes, StandardOpenOption.TRUNCATE_EXISTING);

        List<DistributedSnapshots.Restored> got = onRanks(world, DistributedSnapshots.Domains::perRank, 2, 1, s -> restore(s).orElseThrow());
        for (int r = 0; r < world; r++) {
            assertEquals(2, got.get(r).step());
            assertSame(state(r, 2), got.get(r).snapshot());
        }
        assertEquals(1, got.get(3).rebuiltPieces(), "rank 3's corrupt piece 1 is rebuilt from its parity");
        assertTrue(got.get(0).problems().stream().anyMatch(p -> p.contains("corrupt")), String.valueOf(got.get(0).problems()));
        assertEquals(1, got.get(2).rebuiltPieces(), "rank 2 lost its own data piece with its domain");
        assertEquals(1, got.get(1).rebuiltPieces(), "rank 1's piece 1 lived on the wiped domain rank2");
        assertEquals(0, got.get(0).rebuiltPieces(), "rank 0 lost only its parity, on rank2");
    }

    @Test
    void moreThanMLostDomainsFailEveryRankAlike() throws IOException {
        int world = 4;
        InJvmTransport.run(world, TIMEOUT, 4096, g -> {
            try (DistributedSnapshots s = new DistributedSnapshots(g, root, SnapshotStore.Options.defaults(), JOB, DistributedSnapshots.Domains.perRank(world), 2, 1)) {
                save(s, g.rank(), 1, 1);
                return null;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
        deleteTree(root.resolve("rank1"));
        deleteTree(root.resolve("rank2"));
        List<String> errors = onRanks(world, DistributedSnapshots.Domains::perRank, 2, 1, s -> {
            IOException e = assertThrows(IOException.class, s::restore);
            assertInstanceOf(UnrecoverableSnapshotException.class, e);
            return e.getMessage();
        });
        for (String e : errors) assertEquals(errors.getFirst(), e, "every rank fails with the same words");
        assertTrue(errors.getFirst().contains("cannot be restored from memory") && errors.getFirst().contains("rank-00001"), errors.getFirst());
    }

    @Test
    void nodeDomainsWithReplicationSurviveALostNode() throws IOException {
        int world = 4;
        Function<Integer, DistributedSnapshots.Domains> nodes = w -> DistributedSnapshots.Domains.perNode(w, 2);
        InJvmTransport.run(world, TIMEOUT, 4096, g -> {
            try (DistributedSnapshots s = new DistributedSnapshots(g, root, SnapshotStore.Options.defaults(), JOB, nodes.apply(world), 1, 1)) {
                save(s, g.rank(), 1, 2);
                return null;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
        assertTrue(Files.isDirectory(root.resolve("node0")) && Files.isDirectory(root.resolve("node1")));
        deleteTree(root.resolve("node1"));
        List<DistributedSnapshots.Restored> got = onRanks(world, nodes, 1, 1, s -> restore(s).orElseThrow());
        for (int r = 0; r < world; r++) {
            assertEquals(2, got.get(r).step());
            assertSame(state(r, 2), got.get(r).snapshot());
        }
        assertEquals(1, got.get(0).localPieces());
        assertEquals(1, got.get(2).fetchedPieces(), "node 1's ranks fetch their parity from node 0");
        assertEquals(1, got.get(2).rebuiltPieces(), "and rebuild their data from it");
    }

    @Test
    void noSnapshotIsEmptyAndACodeWiderThanTheDomainsIsAClearError() {
        List<Boolean> empty = onRanks(2, DistributedSnapshots.Domains::perRank, 1, 1, s -> restore(s).isEmpty());
        assertEquals(List.of(true, true), empty);
        var e = assertThrows(RuntimeException.class, () -> onRanks(2, DistributedSnapshots.Domains::perRank, 2, 1, s -> null));
        Throwable cause = e;
        while (!(cause instanceof IllegalArgumentException) && cause.getCause() != null) cause = cause.getCause();
        assertTrue(cause.getMessage().contains("snapshot.ec = 2+1 places 3 pieces on distinct failure domains"), cause.getMessage());
        assertArrayEquals(new int[] {0, 0, 1, 1}, DistributedSnapshots.Domains.perNode(4, 2).ofRank());
    }
}
