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
    @ValueSource(ints = {2, 3, 4})
    void everyCollectiveOverFramesAloneMatchesTheReference(int n) {
        // as between hosts: no shared memory, so every operation runs the frame algorithms
        InJvmTransport.run(n, Duration.ofSeconds(20), InJvmTransport.DEFAULT_MAX_FRAME_BYTES, false, g -> CollectiveChecks.checkAll(g, SIZES));
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 3, 4})
    void asyncReduceScatterAndAllGatherGiveTheSynchronousBits(int n) {
        boolean was = FabricGroup.asyncShm;
        FabricGroup.asyncShm = true; // the shared-memory path for asynchronous calls, off by default (see FabricGroup)
        try {
            // the asynchronous forms take the same shared-memory path on the collective lane, so they
            // must reproduce the synchronous results exactly (ZeRO may mix them); sizes from one float
            // per rank to several ring wraps
            int[] blocks = {1, 1001, 70_001, (int) (ShmCollectives.DEPTH * ShmCollectives.PIECE / 4) + 3};
            InJvmTransport.run(n, Duration.ofSeconds(30), g -> {
                try (Scope scope = Scope.open()) {
                    for (int block : blocks) {
                        for (ReduceOp op : ReduceOp.values()) {
                            Tensor in = Tensor.of(CollectiveChecks.input(g.rank(), block * n, block), block * n);
                            Tensor sync = Tensor.zeros(block), async = Tensor.zeros(block);
                            g.reduceScatter(in, sync, op);
                            g.reduceScatterAsync(in, async, op).await();
                            assertArrayEquals(sync.toArray(), async.toArray(), "reduceScatter " + op + " block " + block + " rank " + g.rank());
                        }
                        Tensor in = Tensor.of(CollectiveChecks.input(g.rank(), block, block), block);
                        Tensor sync = Tensor.zeros(block * n), async = Tensor.zeros(block * n);
                        g.allGather(in, sync);
                        g.allGatherAsync(in, async).await();
                        assertArrayEquals(sync.toArray(), async.toArray(), "allGather block " + block + " rank " + g.rank());
                    }
                    return null;
                }
            });
        } finally {
            FabricGroup.asyncShm = was;
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 3})
    void asyncAndSyncCallsMixedOnOneGroupEachGetTheirOwnResult(int n) {
        boolean was = FabricGroup.asyncShm;
        FabricGroup.asyncShm = true; // the shared-memory path for asynchronous calls, off by default (see FabricGroup)
        try {
            // ZeRO-3's pattern: gathers of parameters queued ahead, reduce-scatters of gradients
            // queued behind, synchronous calls in between; the queue keeps issue order on every rank,
            // and a synchronous call waits its turn behind the queued ones
            int block = 90_001;
            InJvmTransport.run(n, Duration.ofSeconds(30), g -> {
                try (Scope scope = Scope.open()) {
                    int r = g.rank();
                    List<Tensor> gathered = new java.util.ArrayList<>(), scattered = new java.util.ArrayList<>();
                    List<Work> works = new java.util.ArrayList<>();
                    for (int k = 0; k < 4; k++) {
                        Tensor part = Tensor.of(CollectiveChecks.input(r, block, 10 + k), block), all = Tensor.zeros(block * n);
                        works.add(g.allGatherAsync(part, all));
                        gathered.add(all);
                        Tensor grads = Tensor.of(CollectiveChecks.input(r, block * n, 20 + k), block * n);
                        Tensor mine = grads.narrow(0, r * block, block); // in place, as ZeRO shards
                        works.add(g.reduceScatterAsync(grads, mine, ReduceOp.SUM));
                        scattered.add(mine);
                        Tensor t = Tensor.of(CollectiveChecks.input(r, 5000, 30 + k), 5000);
                        g.allReduce(t, ReduceOp.MAX);
                        float[] got = t.toArray();
                        for (int i = 0; i < got.length; i++)
                            assertEquals(CollectiveChecks.reduceRef(ReduceOp.MAX, n, i, 30 + k), got[i], "allReduce between async calls, k=" + k);
                    }
                    for (Work w : works) w.await();
                    for (int k = 0; k < 4; k++) {
                        float[] all = gathered.get(k).toArray(), mine = scattered.get(k).toArray();
                        for (int q = 0; q < n; q++)
                            for (int i = 0; i < block; i += 97)
                                assertEquals(CollectiveChecks.value(q, i, 10 + k), all[q * block + i], "allGather k=" + k + " block " + q);
                        for (int i = 0; i < block; i += 97) {
                            float want = CollectiveChecks.reduceRef(ReduceOp.SUM, n, (long) r * block + i, 20 + k);
                            assertEquals(want, mine[i], 1e-5f * Math.max(1f, Math.abs(want)) * 4, "reduceScatter k=" + k + " element " + i);
                        }
                    }
                    return null;
                }
            });
        } finally {
            FabricGroup.asyncShm = was;
        }
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
        List<String> errors = InJvmTransport.run(3, Duration.ofSeconds(2), g -> {
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
        List<CollectiveTimeoutException> errors = InJvmTransport.run(3, Duration.ofSeconds(2), g -> {
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
        List<CollectiveTimeoutException> errors = InJvmTransport.run(3, Duration.ofSeconds(2), g -> {
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
