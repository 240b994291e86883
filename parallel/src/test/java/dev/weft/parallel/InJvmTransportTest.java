package dev.weft.parallel;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class InJvmTransportTest {
    /**
     * Empty, tiny, odd, just past the direct/ring switch (16384 floats), multi-chunk, and several
     * shared-memory pieces (262144 floats each). The piece count runs on across calls, so these
     * calls wrap the 4-deep ring many times; one call that wraps it on its own is checked below.
     */
    static final int[] SIZES = {0, 1, 3, 7, 1001, 16411, 50_003, 300_007};

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4})
    void everyCollectiveMatchesTheReference(int n) {
        List<Long> hashes = InJvmTransport.run(n, Duration.ofSeconds(20), g -> CollectiveChecks.checkAll(g, SIZES));
        assertEquals(n, hashes.size());
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 3})
    void tinyFramesChunkEveryPayload(int n) {
        // 12-byte frames: every payload of more than three floats travels in many chunks
        InJvmTransport.run(n, Duration.ofSeconds(20), 12, g -> CollectiveChecks.checkAll(g, new int[]{0, 1, 5, 37, 16411}));
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 3, 4})
    void allReduceIsBitIdenticalAcrossRanksAndReruns(int n) {
        int[] sizes = {13, 20_000, 70_001};
        List<List<float[]>> first = allReduceResults(n, sizes);
        List<List<float[]>> second = allReduceResults(n, sizes);
        for (int s = 0; s < sizes.length; s++) {
            for (int r = 0; r < n; r++) {
                assertArrayEquals(first.get(0).get(s), first.get(r).get(s), "rank " + r + " differs from rank 0, numel " + sizes[s]);
                assertArrayEquals(first.get(r).get(s), second.get(r).get(s), "rerun differs on rank " + r + ", numel " + sizes[s]);
            }
        }
    }

    private static List<List<float[]>> allReduceResults(int n, int[] sizes) {
        return InJvmTransport.run(n, Duration.ofSeconds(20), g -> {
            try (Scope scope = Scope.open()) {
                List<float[]> out = new java.util.ArrayList<>();
                for (int numel : sizes) {
                    Tensor t = Tensor.of(CollectiveChecks.input(g.rank(), numel, 99), numel);
                    g.allReduce(t, ReduceOp.SUM);
                    out.add(t.toArray());
                }
                return out;
            }
        });
    }

    @Test
    void recvWhosePeerNeverSendsTimesOutNamingThePeer() {
        List<String> errors = InJvmTransport.run(3, Duration.ofMillis(300), g -> {
            try (Scope scope = Scope.open()) {
                if (g.rank() != 0) return "";
                long start = System.nanoTime();
                CollectiveTimeoutException e = assertThrows(CollectiveTimeoutException.class, () -> g.recv(Tensor.zeros(4), 2, 5));
                assertTrue(System.nanoTime() - start < 5_000_000_000L, "timed out late");
                assertEquals(List.of(2), e.missingRanks());
                assertEquals("world", e.group());
                return e.getMessage();
            }
        });
        assertTrue(errors.get(0).contains("recv(tag=5)"), errors.get(0));
        assertTrue(errors.get(0).contains("rank(s) [2] never arrived"), errors.get(0));
    }

    @Test
    void barrierWithAnAbsentRankNamesOpSequenceGroupAndTheRank() {
        List<CollectiveTimeoutException> errors = InJvmTransport.run(3, Duration.ofMillis(300), g -> {
            g.barrier(); // #0: everyone
            if (g.rank() == 1) return null; // rank 1 skips #1
            return assertThrows(CollectiveTimeoutException.class, g::barrier);
        });
        for (int r : new int[]{0, 2}) {
            CollectiveTimeoutException e = errors.get(r);
            assertEquals("barrier", e.operation());
            assertEquals(1, e.sequence());
            assertEquals(List.of(1), e.missingRanks());
            assertTrue(e.getMessage().contains("barrier #1 in group 'world'"), e.getMessage());
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 3})
    void oneSharedMemoryAllReduceWrapsItsRing(int n) {
        // more pieces than the ring holds in a single call, starting at piece 0, so every buffer is
        // reused within the call and the last piece is a single float. Small integers: exact sums.
        int numel = (int) ((ShmCollectives.DEPTH + 1) * ShmCollectives.PIECE / 4 + 1);
        List<float[]> got = InJvmTransport.run(n, Duration.ofSeconds(30), g -> {
            try (Scope scope = Scope.open()) {
                float[] mine = new float[numel];
                for (int i = 0; i < numel; i++) mine[i] = (g.rank() + 1) * (i % 97);
                Tensor t = Tensor.of(mine, numel);
                g.allReduce(t, ReduceOp.SUM);
                return t.toArray();
            }
        });
        for (int r = 0; r < n; r++)
            for (int i = 0; i < numel; i++)
                if (got.get(r)[i] != (float) (i % 97) * n * (n + 1) / 2) fail("rank " + r + ", element " + i + ": " + got.get(r)[i]);
    }

    @Test
    void sharedMemoryAllReduceWithAnAbsentRankNamesIt() {
        // synchronous all-reduces take the shared-memory path; its waits have the same deadline
        List<CollectiveTimeoutException> errors = InJvmTransport.run(3, Duration.ofMillis(300), g -> {
            try (Scope scope = Scope.open()) {
                g.allReduce(Tensor.ones(300_000), ReduceOp.SUM); // #0: everyone, several pieces
                if (g.rank() == 2) return null; // rank 2 skips #1
                return assertThrows(CollectiveTimeoutException.class, () -> g.allReduce(Tensor.ones(300_000), ReduceOp.SUM));
            }
        });
        for (int r : new int[]{0, 1}) {
            CollectiveTimeoutException e = errors.get(r);
            assertEquals("allReduce", e.operation());
            assertEquals(1, e.sequence());
            assertEquals(List.of(2), e.missingRanks());
        }
    }

    @Test
    void subgroupsRunTheirOwnCollectives() {
        List<float[]> got = InJvmTransport.run(4, Duration.ofSeconds(10), g -> {
            try (Scope scope = Scope.open()) {
                ProcessGroup odd = g.subgroup("odd", 1, 3);
                ProcessGroup even = g.subgroup("even", 2, 0); // rank order as listed: world 2 is rank 0
                ProcessGroup mine = odd != null ? odd : even;
                assertNotNull(mine);
                assertEquals(2, mine.size());
                if (g.rank() == 2) assertEquals(0, even.rank());
                Tensor t = Tensor.of(new float[]{g.rank(), 10 * g.rank()}, 2);
                mine.allReduce(t, ReduceOp.SUM);
                g.allReduce(Tensor.zeros(3), ReduceOp.SUM); // the world group still works alongside
                mine.close();
                return t.toArray();
            }
        });
        assertArrayEquals(new float[]{2, 20}, got.get(0));
        assertArrayEquals(new float[]{4, 40}, got.get(1));
        assertArrayEquals(new float[]{2, 20}, got.get(2));
        assertArrayEquals(new float[]{4, 40}, got.get(3));
    }

    @Test
    void asyncCollectivesCompleteInIssueOrder() {
        InJvmTransport.run(2, Duration.ofSeconds(10), g -> {
            try (Scope scope = Scope.open()) {
                Tensor a = Tensor.full(1f + g.rank(), 100_000);
                Tensor b = Tensor.full(5f, 7);
                Work wa = g.allReduceAsync(a, ReduceOp.SUM);
                Work wb = g.allReduceAsync(b, ReduceOp.MAX);
                wb.await();
                assertTrue(wa.isDone(), "an earlier collective finishes first");
                assertEquals(3f, a.toArray()[99_999]);
                assertEquals(5f, b.toArray()[0]);
                return null;
            }
        });
    }

    @Test
    void badArgumentsAreNamed() {
        InJvmTransport.run(2, Duration.ofSeconds(10), g -> {
            try (Scope scope = Scope.open()) {
                var e = assertThrows(IllegalArgumentException.class, () -> g.reduceScatter(Tensor.zeros(5), Tensor.zeros(2), ReduceOp.SUM));
                assertTrue(e.getMessage().contains("input has 5 elements"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> g.broadcast(Tensor.zeros(1), 2));
                assertTrue(e.getMessage().contains("root=2"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> g.subgroup("x", 0, 0));
                assertTrue(e.getMessage().contains("listed twice"), e.getMessage());
                return null;
            }
        });
    }
}
