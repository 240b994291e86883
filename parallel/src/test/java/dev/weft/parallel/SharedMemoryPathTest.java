package dev.weft.parallel;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The same-host shared-memory path beyond what {@link CollectiveChecks} covers on it: the one-shot
 * all-reduce against the three-stage one bit for bit, asynchronous all-reduces on it, sends and
 * receives (tags out of order, messages larger than the ring, both ranks sending first), deadlines
 * naming the absent rank, subgroups, and no allocation per call.
 */
class SharedMemoryPathTest {
    /** One float, odd counts, a piece boundary of each form and several ring wraps. */
    static final int[] SIZES = {1, 3, 1001, 16_411, 65_537, 300_007, (int) ((ShmCollectives.DEPTH + 1) * ShmCollectives.PIECE / 4) + 5};

    @ParameterizedTest
    @ValueSource(ints = {2, 3, 4})
    void allReduceAgreesWithTheReferenceAndIsTheSameOnEveryRank(int n) {
        List<List<float[]>> got = InJvmTransport.run(n, Duration.ofSeconds(30), g -> {
            try (Scope scope = Scope.open()) {
                List<float[]> out = new ArrayList<>();
                for (int numel : SIZES)
                    for (ReduceOp op : ReduceOp.values()) {
                        Tensor t = Tensor.of(CollectiveChecks.input(g.rank(), numel, numel + op.ordinal()), numel);
                        g.allReduce(t, op);
                        float[] a = t.toArray();
                        for (int i = 0; i < numel; i += 1 + numel / 5000) {
                            float want = CollectiveChecks.reduceRef(op, n, i, numel + op.ordinal());
                            assertEquals(want, a[i], op == ReduceOp.MAX || op == ReduceOp.MIN ? 0 : 4e-5f * Math.max(1f, Math.abs(want)),
                                    op + " numel=" + numel + " element " + i);
                        }
                        out.add(a);
                    }
                return out;
            }
        });
        for (int r = 1; r < n; r++)
            for (int c = 0; c < got.get(0).size(); c++) assertArrayEquals(got.get(0).get(c), got.get(r).get(c), "rank " + r + " case " + c);
    }

    @ParameterizedTest
    @ValueSource(ints = {3, 4})
    void oneShotAndThreeStageAllReducesGiveTheSameBits(int n) {
        // both sum in rank order 0..n-1, so the form chosen by size changes no bit: run sizes on
        // both sides of the one-shot limit and compare with a rank-order sum written here
        int[] sizes = {1001, (int) (ShmCollectives.ONE_SHOT_BYTES / 4), (int) (ShmCollectives.ONE_SHOT_BYTES / 4) + 1, 300_007};
        InJvmTransport.run(n, Duration.ofSeconds(30), g -> {
            try (Scope scope = Scope.open()) {
                for (int numel : sizes) {
                    Tensor t = Tensor.of(CollectiveChecks.input(g.rank(), numel, 3), numel);
                    g.allReduce(t, ReduceOp.SUM);
                    float[] a = t.toArray();
                    for (int i = 0; i < numel; i++) {
                        float want = CollectiveChecks.value(0, i, 3);
                        for (int q = 1; q < n; q++) want += CollectiveChecks.value(q, i, 3);
                        if (Float.floatToIntBits(want) != Float.floatToIntBits(a[i])) fail("numel " + numel + " element " + i + ": " + a[i] + " != " + want);
                    }
                }
                return null;
            }
        });
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 3})
    void asynchronousAllReducesOnTheSharedPathCompleteInOrderWithTheSynchronousBits(int n) {
        boolean was = FabricGroup.asyncShm;
        FabricGroup.asyncShm = true;
        try {
            InJvmTransport.run(n, Duration.ofSeconds(30), g -> {
                try (Scope scope = Scope.open()) {
                    int r = g.rank();
                    int[] sizes = {300_007, 7, 65_537, 1001};
                    List<Tensor> async = new ArrayList<>();
                    List<Work> works = new ArrayList<>();
                    for (int k = 0; k < sizes.length; k++) {
                        Tensor t = Tensor.of(CollectiveChecks.input(r, sizes[k], 40 + k), sizes[k]);
                        works.add(g.allReduceAsync(t, ReduceOp.SUM));
                        async.add(t);
                    }
                    works.getLast().await();
                    for (Work w : works) assertTrue(w.isDone(), "an earlier all-reduce finishes before a later one");
                    for (int k = 0; k < sizes.length; k++) {
                        Tensor sync = Tensor.of(CollectiveChecks.input(r, sizes[k], 40 + k), sizes[k]);
                        g.allReduce(sync, ReduceOp.SUM);
                        assertArrayEquals(sync.toArray(), async.get(k).toArray(), "all-reduce " + k + " of " + sizes[k]);
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
    void collectivesDeferredToTheirAwaitRunInIssueOrder(int n) {
        boolean wasShm = FabricGroup.asyncShm, wasDeferred = FabricGroup.runOnAwait;
        FabricGroup.asyncShm = true;
        FabricGroup.runOnAwait = true; // weft.shm.async=await
        try {
            InJvmTransport.run(n, Duration.ofSeconds(30), g -> {
                try (Scope scope = Scope.open()) {
                    int r = g.rank(), block = 70_001;
                    Tensor a = Tensor.of(CollectiveChecks.input(r, 300_007, 1), 300_007);
                    Tensor grads = Tensor.of(CollectiveChecks.input(r, block * n, 2), block * n), mine = Tensor.zeros(block);
                    Tensor part = Tensor.of(CollectiveChecks.input(r, block, 3), block), all = Tensor.zeros(block * n);
                    Work wa = g.allReduceAsync(a, ReduceOp.SUM), wr = g.reduceScatterAsync(grads, mine, ReduceOp.SUM), wg = g.allGatherAsync(part, all);
                    assertFalse(wa.isDone(), "a deferred collective runs when awaited, not before");
                    Tensor t = Tensor.of(CollectiveChecks.input(r, 5000, 4), 5000);
                    g.allReduce(t, ReduceOp.MAX); // a synchronous call runs the queued ones first, in order
                    assertTrue(wa.isDone() && wr.isDone() && wg.isDone(), "the synchronous call ran the earlier ones");
                    wg.await();
                    wr.await();
                    wa.await();
                    Tensor sync = Tensor.of(CollectiveChecks.input(r, 300_007, 1), 300_007);
                    g.allReduce(sync, ReduceOp.SUM);
                    assertArrayEquals(sync.toArray(), a.toArray(), "deferred all-reduce against the synchronous bits");
                    float[] got = mine.toArray(), gathered = all.toArray(), max = t.toArray();
                    for (int i = 0; i < block; i += 101) {
                        float want = CollectiveChecks.reduceRef(ReduceOp.SUM, n, (long) r * block + i, 2);
                        assertEquals(want, got[i], 1e-5f * Math.max(1f, Math.abs(want)) * 4, "reduce-scatter element " + i);
                        for (int q = 0; q < n; q++) assertEquals(CollectiveChecks.value(q, i, 3), gathered[q * block + i], "all-gather block " + q);
                    }
                    for (int i = 0; i < 5000; i++) assertEquals(CollectiveChecks.reduceRef(ReduceOp.MAX, n, i, 4), max[i]);
                    // awaiting a later one runs the earlier ones too
                    Tensor x = Tensor.full(1f + r, 1001), y = Tensor.full(2f, 7);
                    Work wx = g.allReduceAsync(x, ReduceOp.SUM), wy = g.allReduceAsync(y, ReduceOp.MAX);
                    wy.await();
                    assertTrue(wx.isDone());
                    assertEquals(n * (n + 1) / 2f, x.toArray()[1000]);
                    return null;
                }
            });
        } finally {
            FabricGroup.asyncShm = wasShm;
            FabricGroup.runOnAwait = wasDeferred;
        }
    }

    @Test
    void oneShotAllReduceWithAnAbsentRankNamesIt() {
        List<CollectiveTimeoutException> errors = InJvmTransport.run(2, Duration.ofSeconds(2), g -> {
            try (Scope scope = Scope.open()) {
                g.allReduce(Tensor.ones(1000), ReduceOp.SUM); // #0: both
                if (g.rank() == 1) return null; // rank 1 skips #1
                return assertThrows(CollectiveTimeoutException.class, () -> g.allReduce(Tensor.ones(1000), ReduceOp.SUM));
            }
        });
        CollectiveTimeoutException e = errors.get(0);
        assertEquals("allReduce", e.operation());
        assertEquals("world", e.group());
        assertEquals(1, e.sequence());
        assertEquals(List.of(1), e.missingRanks());
    }

    // ---- point to point ---------------------------------------------------------------------

    /** Empty, one float, odd, exactly one piece's payload and one more, more than the whole ring. */
    static final int[] MESSAGES = {0, 1, 3, 1001, (int) ((ShmPointToPoint.PIECE - 64) / 4), (int) ((ShmPointToPoint.PIECE - 64) / 4) + 1,
            300_007, (int) (ShmPointToPoint.DEPTH * ShmPointToPoint.PIECE / 4) * 2 + 11};

    @Test
    void messagesOfEverySizeArriveWholeAndInOrderPerTag() {
        InJvmTransport.run(2, Duration.ofSeconds(30), g -> {
            try (Scope scope = Scope.open()) {
                int peer = 1 - g.rank();
                for (int round = 0; round < 2; round++)
                    for (int numel : MESSAGES) {
                        int salt = numel + 100 * round;
                        if (g.rank() == 0) {
                            // two messages with one tag, asynchronously: they must arrive in send order
                            Work a = g.sendAsync(Tensor.of(CollectiveChecks.input(0, numel, salt), numel), peer, 9);
                            Work b = g.sendAsync(Tensor.of(CollectiveChecks.input(0, numel, salt + 1), numel), peer, 9);
                            a.await();
                            b.await();
                        } else {
                            Tensor first = Tensor.zeros(numel), second = Tensor.zeros(numel);
                            g.recv(first, peer, 9);
                            g.recv(second, peer, 9);
                            assertArrayEquals(CollectiveChecks.input(0, numel, salt), first.toArray(), "first message of " + numel);
                            assertArrayEquals(CollectiveChecks.input(0, numel, salt + 1), second.toArray(), "second message of " + numel);
                        }
                    }
                return null;
            }
        });
    }

    @Test
    void aReceiveMatchesItsTagPastOtherMessagesEvenOnesLargerThanTheRing() {
        int big = (int) (ShmPointToPoint.DEPTH * ShmPointToPoint.PIECE / 4) + 5, small = 1001;
        InJvmTransport.run(2, Duration.ofSeconds(30), g -> {
            try (Scope scope = Scope.open()) {
                if (g.rank() == 0) {
                    // synchronous sends in this order; the receiver asks for them the other way round
                    g.send(Tensor.of(CollectiveChecks.input(0, big, 1), big), 1, 1);
                    g.send(Tensor.of(CollectiveChecks.input(0, small, 2), small), 1, 2);
                    g.send(Tensor.of(CollectiveChecks.input(0, small, 3), small), 1, 3);
                } else {
                    Tensor c = Tensor.zeros(small), b = Tensor.zeros(small), a = Tensor.zeros(big);
                    g.recv(c, 0, 3);
                    g.recv(b, 0, 2);
                    g.recv(a, 0, 1);
                    assertArrayEquals(CollectiveChecks.input(0, small, 3), c.toArray());
                    assertArrayEquals(CollectiveChecks.input(0, small, 2), b.toArray());
                    assertArrayEquals(CollectiveChecks.input(0, big, 1), a.toArray());
                }
                return null;
            }
        });
    }

    @Test
    void ranksThatBothSendBeforeTheyReceiveDoNotStallEachOther() {
        // each message is three times the ring, so each send can only finish once the peer has
        // taken most of it: the peer is itself sending, and drains while it waits for room
        int numel = (int) (3 * ShmPointToPoint.DEPTH * ShmPointToPoint.PIECE / 4) + 7;
        InJvmTransport.run(2, Duration.ofSeconds(20), g -> {
            try (Scope scope = Scope.open()) {
                int r = g.rank(), peer = 1 - r;
                for (int round = 0; round < 3; round++) {
                    Tensor in = Tensor.zeros(numel);
                    g.send(Tensor.of(CollectiveChecks.input(r, numel, round), numel), peer, round);
                    g.recv(in, peer, round);
                    assertArrayEquals(CollectiveChecks.input(peer, numel, round), in.toArray(), "round " + round);
                }
                return null;
            }
        });
    }

    @Test
    void aSendThatNobodyReceivesTimesOutNamingThePeer() {
        // larger than the ring, so the send has to wait for a receiver that never comes
        int numel = (int) (2 * ShmPointToPoint.DEPTH * ShmPointToPoint.PIECE / 4);
        List<CollectiveTimeoutException> errors = InJvmTransport.run(2, Duration.ofSeconds(2), g -> {
            try (Scope scope = Scope.open()) {
                if (g.rank() == 1) return null;
                return assertThrows(CollectiveTimeoutException.class, () -> g.send(Tensor.zeros(numel), 1, 6));
            }
        });
        CollectiveTimeoutException e = errors.get(0);
        assertEquals("send(tag=6)", e.operation());
        assertEquals(List.of(1), e.missingRanks());
    }

    @Test
    void aMessageOfTheWrongSizeIsNamed() {
        List<String> got = InJvmTransport.run(2, Duration.ofSeconds(5), g -> {
            try (Scope scope = Scope.open()) {
                if (g.rank() == 0) {
                    g.send(Tensor.zeros(10), 1, 4);
                    return null;
                }
                return assertThrows(IllegalStateException.class, () -> g.recv(Tensor.zeros(12), 0, 4)).getMessage();
            }
        });
        assertTrue(got.get(1).contains("rank 0 sent 40 bytes where 48 were expected"), got.get(1));
    }

    @Test
    void subgroupsPassMessagesOnTheirOwnChannels() {
        List<float[]> got = InJvmTransport.run(4, Duration.ofSeconds(10), g -> {
            try (Scope scope = Scope.open()) {
                ProcessGroup pair = g.subgroup("pp", 3, 1); // group rank 0 is world 3
                ProcessGroup other = g.subgroup("pp2", 0, 2);
                ProcessGroup mine = pair != null ? pair : other;
                Tensor t = Tensor.of(new float[]{g.rank(), 10 * g.rank(), 0.5f}, 3);
                Tensor in = Tensor.zeros(3);
                Work s = mine.sendAsync(t, 1 - mine.rank(), 0);
                mine.recv(in, 1 - mine.rank(), 0);
                s.await();
                g.barrier();
                mine.close();
                return in.toArray();
            }
        });
        assertArrayEquals(new float[]{2, 20, 0.5f}, got.get(0));
        assertArrayEquals(new float[]{3, 30, 0.5f}, got.get(1));
        assertArrayEquals(new float[]{0, 0, 0.5f}, got.get(2));
        assertArrayEquals(new float[]{1, 10, 0.5f}, got.get(3));
    }

    // ---- no allocation ----------------------------------------------------------------------

    @Test
    void theSharedMemoryPathAllocatesNothingPerCall() throws Exception {
        // the path itself, below the group's per-call handles: two rank threads over one region,
        // every operation at a small and a multi-piece size, counted by the JVM's per-thread
        // allocation counter around many calls after a warm-up
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        List<ProcessGroup> groups = InJvmTransport.world(2, Duration.ofSeconds(30), InJvmTransport.DEFAULT_MAX_FRAME_BYTES, false);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment region = arena.allocate(ShmCollectives.regionBytes(2), 4096);
            String[] allocated = new String[2];
            Throwable[] failed = new Throwable[2];
            Thread[] ranks = new Thread[2];
            for (int r = 0; r < 2; r++) {
                int rank = r;
                ranks[r] = new Thread(() -> {
                    try {
                        FabricGroup g = (FabricGroup) groups.get(rank);
                        ShmCollectives path = ShmCollectives.inMemory(region, 2, rank, () -> {});
                        Op op = new Op(g, "mix", Msg.COLLECTIVE, 0);
                        int large = (int) (2 * ShmCollectives.PIECE / 4) + 3;
                        // messages that fit the channel's ring: both ranks send first, and a send that had to
                        // wait for room would set the peer's message aside, which allocates (a rare path)
                        int message = (int) (3 * (ShmPointToPoint.PIECE - 64) / 4);
                        MemorySegment big = arena.allocate(4L * 2 * large, 64), out = arena.allocate(4L * 2 * large, 64);
                        big.fill((byte) 0);
                        long[] counts = new long[4];
                        for (int round = 0; round < 400; round++) {
                            boolean counted = round >= 200; // the first 200 rounds warm up (the JIT compiles the kernels)
                            for (int numel : new int[]{1001, large}) {
                                long t0 = threads.getCurrentThreadAllocatedBytes();
                                path.allReduce(op, big, numel, ReduceOp.SUM);
                                long t1 = threads.getCurrentThreadAllocatedBytes();
                                path.reduceScatter(op, big, out, numel / 2, ReduceOp.AVG);
                                long t2 = threads.getCurrentThreadAllocatedBytes();
                                path.allGather(op, out, big, numel / 2);
                                long t3 = threads.getCurrentThreadAllocatedBytes();
                                if (counted) {
                                    counts[0] += t1 - t0;
                                    counts[1] += t2 - t1;
                                    counts[2] += t3 - t2;
                                }
                            }
                            for (int numel : new int[]{1001, message}) {
                                long t0 = threads.getCurrentThreadAllocatedBytes();
                                path.send(op, 1 - rank, 1, big, numel * 4L);
                                path.recv(op, 1 - rank, 1, out, numel * 4L);
                                if (counted) counts[3] += threads.getCurrentThreadAllocatedBytes() - t0;
                            }
                        }
                        allocated[rank] = java.util.Arrays.toString(counts);
                    } catch (Throwable e) {
                        failed[rank] = e;
                    }
                }, "rank-" + r);
                ranks[r].start();
            }
            for (Thread t : ranks) t.join(60_000);
            for (int r = 0; r < 2; r++) {
                if (failed[r] != null) throw new AssertionError("rank " + r + " failed", failed[r]);
                assertEquals("[0, 0, 0, 0]", allocated[r], "rank " + r + ": bytes allocated over 200 rounds by all-reduce, reduce-scatter, all-gather, send+recv");
            }
        } finally {
            for (ProcessGroup g : groups) g.close();
        }
    }

    @Test
    void theRegionHoldsTheCollectiveRingAndTheChannels() {
        // what a group maps in /dev/shm, as the bench reports it: 2 ranks, 1 MiB pieces, 4 deep
        long ring = ShmCollectives.DEPTH * 3 * ShmCollectives.PIECE, channels = 2 * 2 * ShmPointToPoint.DEPTH * ShmPointToPoint.PIECE;
        long bytes = ShmCollectives.regionBytes(2);
        assertTrue(bytes >= ring + channels && bytes <= ring + channels + 3 * 4096, bytes + " bytes for " + ring + " + " + channels);
    }
}
