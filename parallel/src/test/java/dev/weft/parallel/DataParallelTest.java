package dev.weft.parallel;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.core.model.LlamaConfig;
import dev.weft.core.ops.CrossEntropy;
import dev.weft.core.ops.Elementwise;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.*;

/** DDP on in-JVM ranks: buckets fire during backward, accumulation does not synchronise, gradients equal one process's. */
class DataParallelTest {
    private static final Duration T = Duration.ofSeconds(30);
    private static final LlamaConfig CFG = new LlamaConfig(2, 32, 4, 2, 64, 64, 16, 10000f, 1e-5f, false, 0.02);
    private static final int SEQ = 8, ROWS_PER_RANK = 2;

    /** Closes a model at the end of a try block. */
    private record Owned(Llama model) implements AutoCloseable {
        @Override public void close() { model.close(); }
    }

    /** A process group that counts all-reduces, and those issued while {@code inBackward} is set. */
    private record Counting(ProcessGroup group, AtomicInteger allReduces, AtomicInteger duringBackward, AtomicBoolean inBackward) {
        static Counting wrap(ProcessGroup g) {
            AtomicInteger all = new AtomicInteger(), during = new AtomicInteger();
            AtomicBoolean flag = new AtomicBoolean();
            InvocationHandler h = (proxy, m, args) -> {
                if (m.getName().equals("allReduceAsync")) {
                    all.incrementAndGet();
                    if (flag.get()) during.incrementAndGet();
                }
                try {
                    return m.invoke(g, args);
                } catch (InvocationTargetException e) {
                    throw e.getCause();
                }
            };
            ProcessGroup p = (ProcessGroup) Proxy.newProxyInstance(ProcessGroup.class.getClassLoader(), new Class<?>[] {ProcessGroup.class}, h);
            return new Counting(p, all, during, flag);
        }
    }

    /** Rows of (inputs, targets) for the global batch of one micro-step: {@code rows} sequences. */
    private static int[][] batch(long seed, int rows) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] in = new int[rows * SEQ], tg = new int[rows * SEQ];
        for (int i = 0; i < in.length; i++) {
            in[i] = r.nextInt(CFG.vocab());
            tg[i] = r.nextInt(CFG.vocab());
        }
        return new int[][] {in, tg};
    }

    private static int[] slice(int[] a, int rank, int rowsPerRank) {
        int n = rowsPerRank * SEQ;
        int[] out = new int[n];
        System.arraycopy(a, rank * n, out, 0, n);
        return out;
    }

    private static void backward(Llama m, int[] in, int[] tg, int rows, float scale) {
        try (Scope s = Scope.open()) {
            Tensor loss = CrossEntropy.loss(m.forward(in, rows, SEQ), tg, -1);
            (scale == 1f ? loss : Elementwise.scale(loss, scale)).backward();
        }
    }

    /** Gradients of one process over the whole global batch of {@code accum} micro-steps. */
    private static Map<String, float[]> reference(int world, int accum) {
        try (Owned o = new Owned(new Llama(CFG, 7))) {
            Llama m = o.model();
            for (int micro = 0; micro < accum; micro++) {
                int[][] b = batch(100 + micro, world * ROWS_PER_RANK);
                backward(m, b[0], b[1], world * ROWS_PER_RANK, 1f / accum);
            }
            Map<String, float[]> g = new LinkedHashMap<>();
            m.namedParameters().forEach((k, p) -> g.put(k, p.grad().toArray()));
            return g;
        }
    }

    private static void assertClose(Map<String, float[]> expected, Map<String, float[]> actual) {
        for (var e : expected.entrySet()) {
            float[] a = e.getValue(), b = actual.get(e.getKey());
            double maxAbs = 0;
            for (float v : a) maxAbs = Math.max(maxAbs, Math.abs(v));
            for (int i = 0; i < a.length; i++)
                assertEquals(a[i], b[i], 1e-5 * maxAbs + 1e-9, e.getKey() + "[" + i + "]");
        }
    }

    private record RankResult(Map<String, float[]> grads, int buckets, int allReduces, int duringBackward, int beforeFinal, long launched) {}

    private static List<RankResult> runDdp(int world, int accum, long bucketBytes) {
        return InJvmTransport.run(world, T, g -> {
            Counting c = Counting.wrap(g);
            try (Owned o = new Owned(new Llama(CFG, 7)); DataParallel ddp = DataParallel.ddp(o.model().namedParameters(), c.group(), bucketBytes)) {
                Llama m = o.model();
                DataParallel.verifyIdenticalWeights(c.group(), m.namedParameters());
                int before = -1;
                int start = c.allReduces().get();
                for (int micro = 0; micro < accum; micro++) {
                    boolean last = micro == accum - 1;
                    if (last) before = c.allReduces().get() - start;
                    ddp.beginMicroStep(last);
                    int[][] b = batch(100 + micro, world * ROWS_PER_RANK);
                    c.inBackward().set(true);
                    backward(m, slice(b[0], g.rank(), ROWS_PER_RANK), slice(b[1], g.rank(), ROWS_PER_RANK), ROWS_PER_RANK, 1f / accum);
                    c.inBackward().set(false);
                }
                ddp.finishGradients();
                Map<String, float[]> grads = new LinkedHashMap<>();
                m.namedParameters().forEach((k, p) -> grads.put(k, p.grad().toArray()));
                return new RankResult(grads, ddp.buckets().size(), c.allReduces().get() - start, c.duringBackward().get(), before,
                        ddp.launchedDuringBackward());
            }
        });
    }

    @Test
    void bucketsAreAllReducedDuringBackwardAndGradientsEqualOneProcess() {
        Map<String, float[]> ref = reference(2, 1);
        List<RankResult> rs = runDdp(2, 1, 4096);
        for (RankResult r : rs) {
            assertTrue(r.buckets() > 3, "a 4 KiB bucket size should split this model into several buckets, got " + r.buckets());
            assertEquals(r.buckets(), r.allReduces(), "one all-reduce per bucket");
            // every bucket's all-reduce was issued from a grad-ready hook, before backward returned
            assertEquals(r.buckets(), r.duringBackward());
            assertEquals(r.buckets(), r.launched());
            assertClose(ref, r.grads());
        }
        // ranks agree bit for bit
        for (String k : ref.keySet()) assertArrayEquals(rs.get(0).grads().get(k), rs.get(1).grads().get(k), k);
    }

    @Test
    void accumulationSynchronisesOnlyOnTheFinalMicroStep() {
        Map<String, float[]> ref = reference(4, 3);
        List<RankResult> rs = runDdp(4, 3, 16 << 10);
        for (RankResult r : rs) {
            assertEquals(0, r.beforeFinal(), "no collective on the non-final micro-steps");
            assertEquals(r.buckets(), r.allReduces());
            assertClose(ref, r.grads());
        }
    }

    @Test
    void oneBucketHoldsEverythingWhenTheBucketIsLarge() {
        List<RankResult> rs = runDdp(2, 1, 1L << 30);
        assertEquals(1, rs.get(0).buckets());
        assertClose(reference(2, 1), rs.get(1).grads());
    }

    @Test
    void differingWeightsFailFastNamingTheRankAndParameter() {
        List<String> messages = InJvmTransport.run(3, T, g -> {
            try (Owned o = new Owned(new Llama(CFG, 7))) {
                Llama m = o.model();
                List<String> names = new ArrayList<>(m.namedParameters().keySet());
                if (g.rank() == 2) {
                    Tensor p = m.namedParameters().get(names.get(3));
                    p.data().set(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, p.data().get(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0) + 1e-3f);
                }
                IllegalStateException e = assertThrows(IllegalStateException.class,
                        () -> DataParallel.verifyIdenticalWeights(g, m.namedParameters()));
                return e.getMessage() + "|" + names.get(3);
            }
        });
        for (String s : messages) {
            String[] parts = s.split("\\|");
            assertTrue(parts[0].contains("rank(s) [2] differ from rank 0"), parts[0]);
            assertTrue(parts[0].contains("first at parameter '" + parts[1] + "'"), parts[0]);
        }
    }

    @Test
    void identicalWeightsPass() {
        InJvmTransport.run(2, T, g -> {
            try (Owned o = new Owned(new Llama(CFG, 7))) {
                Llama m = o.model();
                DataParallel.verifyIdenticalWeights(g, m.namedParameters());
                return null;
            }
        });
    }

    @Test
    void finishWithoutSynchronisingMicroStepIsAnError() {
        InJvmTransport.run(1, T, g -> {
            try (Owned o = new Owned(new Llama(CFG, 7)); DataParallel ddp = DataParallel.ddp(o.model().namedParameters(), g, 1024)) {
                Llama m = o.model();
                ddp.beginMicroStep(false);
                assertThrows(IllegalStateException.class, ddp::finishGradients);
                assertThrows(IllegalArgumentException.class, () -> DataParallel.ddp(m.namedParameters(), g, 0));
                return null;
            }
        });
    }

    // ---- ZeRO stages 1 and 2 -----------------------------------------------------------------------

    private record ZeroResult(Map<String, float[]> shardGrads, Map<String, long[]> shards, Map<String, float[]> weights, long bucketsLive) {}

    /**
     * One step under ZeRO {@code stage}: the grads this rank's optimizer sees, where its shards lie,
     * and the weights after a plain SGD step (w -= 0.1 g) on the shards and the all-gather.
     */
    private static List<ZeroResult> runZero(int world, int accum, long bucketBytes, int stage, java.util.function.Predicate<String> whole, int align) {
        return InJvmTransport.run(world, T, g -> {
            try (Owned o = new Owned(new Llama(CFG, 7));
                 DataParallel zero = DataParallel.zero(stage, o.model().namedParameters(), g, bucketBytes, whole, align)) {
                Llama m = o.model();
                zero.beginStep();
                for (int micro = 0; micro < accum; micro++) {
                    zero.beginMicroStep(micro == accum - 1);
                    int[][] b = batch(100 + micro, world * ROWS_PER_RANK);
                    backward(m, slice(b[0], g.rank(), ROWS_PER_RANK), slice(b[1], g.rank(), ROWS_PER_RANK), ROWS_PER_RANK, 1f / accum);
                }
                zero.finishGradients();
                g.barrier(); // in-JVM ranks share one memory pool: look once every rank is done
                long live = bucketBytesLive();
                Map<String, float[]> grads = new LinkedHashMap<>();
                Map<String, long[]> shards = new LinkedHashMap<>();
                zero.optimizerParameters().forEach((k, p) -> {
                    grads.put(k, p.grad().toArray());
                    shards.put(k, zero.shardOf(k));
                    float[] w = p.toArray(), gr = p.grad().toArray();
                    for (int i = 0; i < w.length; i++) w[i] -= 0.1f * gr[i];
                    p.copyFrom(w);
                });
                zero.afterOptimizerStep();
                Map<String, float[]> weights = new LinkedHashMap<>();
                m.namedParameters().forEach((k, p) -> weights.put(k, p.toArray()));
                return new ZeroResult(grads, shards, weights, live);
            }
        });
    }

    private static long bucketBytesLive() {
        String live = dev.weft.core.MemoryPool.host().describeLive(100);
        return live.contains("gradient buckets") ? 1 : 0;
    }

    private static void checkZero(int world, int accum, long bucketBytes, int stage, java.util.function.Predicate<String> whole, int align) {
        Map<String, float[]> ref = reference(world, accum);
        Map<String, float[]> start = new LinkedHashMap<>();
        try (Owned o = new Owned(new Llama(CFG, 7))) {
            o.model().namedParameters().forEach((k, p) -> start.put(k, p.toArray()));
        }
        List<ZeroResult> rs = runZero(world, accum, bucketBytes, stage, whole, align);
        String what = "ZeRO-" + stage + " on " + world + " ranks, accum " + accum;
        for (var e : ref.entrySet()) {
            String name = e.getKey();
            float[] full = e.getValue();
            int[] covered = new int[full.length];
            for (ZeroResult r : rs) {
                long[] sh = r.shards().get(name);
                if (sh == null) continue;
                float[] got = r.shardGrads().get(name);
                assertEquals(sh[1], got.length, what + ": " + name);
                if (whole.test(name)) assertEquals(full.length, got.length, what + ": " + name + " is stepped whole by its owner");
                if (align > 1 && sh[0] + sh[1] < full.length) assertEquals(0, sh[1] % align, what + ": shard edge of " + name + " off the block");
                double maxAbs = 0;
                for (float v : full) maxAbs = Math.max(maxAbs, Math.abs(v));
                for (int i = 0; i < got.length; i++) {
                    covered[(int) sh[0] + i]++;
                    assertEquals(full[(int) sh[0] + i], got[i], 1e-5 * maxAbs + 1e-9, what + ": grad " + name + "[" + (sh[0] + i) + "]");
                }
            }
            for (int i = 0; i < covered.length; i++) assertEquals(1, covered[i], what + ": " + name + "[" + i + "] owned by exactly one rank");
            // after the SGD step and the gather, every rank holds the same, updated weights
            float[] expect = start.get(name).clone();
            for (int i = 0; i < expect.length; i++) expect[i] -= 0.1f * full[i];
            for (ZeroResult r : rs) {
                assertArrayEquals(rs.get(0).weights().get(name), r.weights().get(name), what + ": ranks agree on " + name);
                float[] w = r.weights().get(name);
                for (int i = 0; i < w.length; i++) assertEquals(expect[i], w[i], 1e-6, what + ": weight " + name + "[" + i + "]");
            }
        }
        if (stage == 2) for (ZeroResult r : rs) assertEquals(0, r.bucketsLive(), what + ": no gradient bucket outlives its reduction");
    }

    @Test
    void zeroOneShardsTheOptimizerAndGathersTheWeights() {
        checkZero(2, 1, 4096, 1, n -> false, 1);
        checkZero(3, 2, 4096, 1, n -> n.endsWith("q_proj.weight") || n.endsWith("down_proj.weight"), 1);
    }

    @Test
    void zeroTwoReduceScattersEveryMicroStepAndKeepsOnlyTheShard() {
        checkZero(2, 1, 4096, 2, n -> false, 1);
        checkZero(4, 3, 16 << 10, 2, n -> false, 1);
        checkZero(2, 2, 4096, 2, n -> n.contains("mlp"), 1);
    }

    @Test
    void shardEdgesFallOnTheOptimizersBlocks() {
        checkZero(3, 1, 1L << 30, 2, n -> false, 64);
    }

    // ---- ZeRO-3 ---------------------------------------------------------------------------------

    private record Zero3Result(Map<String, float[]> shardGrads, Map<String, long[]> shards, double lossAfter, boolean gatherLive, boolean bucketsLive,
                               int bound, String live) {}

    private static List<dev.weft.core.nn.Module> layers(Llama m) {
        List<dev.weft.core.nn.Module> out = new ArrayList<>();
        m.namedModules().forEach((path, mod) -> {
            if (path.matches("model\\.layers\\.\\d+")) out.add(mod);
        });
        return out;
    }

    private static double loss(Llama m, int[][] b, int rows) {
        try (Scope s = Scope.open(); var ng = dev.weft.core.Autograd.noGrad()) {
            return CrossEntropy.loss(m.forward(b[0], rows, SEQ), b[1], -1).item();
        }
    }

    private static void checkZero3(int world, int accum, int minNumel, java.util.function.Predicate<String> whole) {
        Map<String, float[]> ref = reference(world, accum);
        int[][] evalBatch = batch(999, 4);
        double expectedLoss;
        try (Owned o = new Owned(new Llama(CFG, 7))) {
            for (var e : o.model().namedParameters().entrySet()) {
                float[] w = e.getValue().toArray(), g = ref.get(e.getKey());
                for (int i = 0; i < w.length; i++) w[i] -= 0.1f * g[i];
                e.getValue().copyFrom(w);
            }
            expectedLoss = loss(o.model(), evalBatch, 4);
        }
        List<Zero3Result> rs = InJvmTransport.run(world, T, g -> {
            try (Owned o = new Owned(new Llama(CFG, 7));
                 FullyShardedDataParallel z = new FullyShardedDataParallel(o.model(), layers(o.model()), g, 4096, minNumel, n -> false, whole, 1)) {
                Llama m = o.model();
                z.beginStep();
                for (int micro = 0; micro < accum; micro++) {
                    z.beginMicroStep(micro == accum - 1);
                    int[][] b = batch(100 + micro, world * ROWS_PER_RANK);
                    backward(m, slice(b[0], g.rank(), ROWS_PER_RANK), slice(b[1], g.rank(), ROWS_PER_RANK), ROWS_PER_RANK, 1f / accum);
                }
                z.finishGradients();
                g.barrier();
                String live = dev.weft.core.MemoryPool.host().describeLive(100);
                g.barrier(); // and nobody allocates again before every rank has looked
                int bound = 0;
                for (var e : m.namedParameters().entrySet()) if (z.shardsWeight(e.getKey()) && e.getValue().storage().isBound()) bound++;
                Map<String, float[]> grads = new LinkedHashMap<>();
                Map<String, long[]> shards = new LinkedHashMap<>();
                z.optimizerParameters().forEach((k, p) -> {
                    grads.put(k, p.grad().toArray());
                    shards.put(k, z.shardOf(k));
                    float[] w = p.toArray(), gr = p.grad().toArray();
                    for (int i = 0; i < w.length; i++) w[i] -= 0.1f * gr[i];
                    p.copyFrom(w);
                });
                z.afterOptimizerStep();
                double after = loss(m, evalBatch, 4); // gathers each unit around its forward
                g.barrier();
                String liveAfter = dev.weft.core.MemoryPool.host().describeLive(100);
                return new Zero3Result(grads, shards, after, live.contains("parameter gather") || liveAfter.contains("parameter gather"),
                        live.contains("gradient buckets"), bound, live + "\nafter the step and a forward:\n" + liveAfter);
            }
        });
        String what = "ZeRO-3 on " + world + " ranks, accum " + accum;
        for (var e : ref.entrySet()) {
            float[] full = e.getValue();
            int[] covered = new int[full.length];
            double maxAbs = 0;
            for (float v : full) maxAbs = Math.max(maxAbs, Math.abs(v));
            for (Zero3Result r : rs) {
                long[] sh = r.shards().get(e.getKey());
                float[] got = r.shardGrads().get(e.getKey());
                if (sh == null || got == null) continue;
                for (int i = 0; i < got.length; i++) {
                    covered[(int) sh[0] + i]++;
                    assertEquals(full[(int) sh[0] + i], got[i], 1e-5 * maxAbs + 1e-9, what + ": grad " + e.getKey() + "[" + (sh[0] + i) + "]");
                }
            }
            for (int i = 0; i < covered.length; i++) assertEquals(1, covered[i], what + ": " + e.getKey() + "[" + i + "] owned by exactly one rank");
        }
        for (Zero3Result r : rs) {
            assertEquals(expectedLoss, r.lossAfter(), 1e-5 * expectedLoss, what + ": loss after the step, every unit gathered for its forward");
            assertFalse(r.gatherLive(), what + ": no gathered unit outlives its use; live after backward:\n" + r.live());
            assertFalse(r.bucketsLive(), what + ": no gradient bucket outlives its reduction");
            assertEquals(0, r.bound(), what + ": every sharded parameter is unbound between steps");
        }
    }

    @Test
    void zeroThreeGathersEachLayerAroundItsForwardAndBackward() {
        checkZero3(2, 1, 0, n -> false);
        checkZero3(3, 2, 0, n -> false);
        checkZero3(4, 1, 0, n -> false);
    }

    @Test
    void zeroThreeKeepsSmallAndWholeTensorsReplicated() {
        checkZero3(2, 2, 100, n -> n.endsWith("o_proj.weight"));
    }

    /**
     * Under a pipeline, ZeRO-3 gathers each unit once per step, not around every micro-batch's
     * forward and backward: 3 units (root and two layers) over 3 micro-steps take 3 all-gathers and
     * 9 reduce-scatters, against 15 and 9 when re-gathering; the gradients are the same bits, and
     * nothing gathered outlives the step.
     */
    @Test
    void zeroThreeUnderAPipelineGathersEachUnitOncePerStep() {
        int accum = 3;
        for (boolean hold : new boolean[] {true, false}) {
            List<Object[]> rs = InJvmTransport.run(2, T, g -> {
                try (Owned o = new Owned(new Llama(CFG, 7));
                     FullyShardedDataParallel z = new FullyShardedDataParallel(o.model(), layers(o.model()), g, 4096, 0, n -> false, n -> false, 1)) {
                    if (hold) z.holdGatheredThroughStep();
                    z.beginStep();
                    for (int micro = 0; micro < accum; micro++) {
                        z.beginMicroStep(micro == accum - 1);
                        int[][] b = batch(100 + micro, 2 * ROWS_PER_RANK);
                        backward(o.model(), slice(b[0], g.rank(), ROWS_PER_RANK), slice(b[1], g.rank(), ROWS_PER_RANK), ROWS_PER_RANK, 1f / accum);
                    }
                    z.finishGradients();
                    g.barrier();
                    boolean gathered = dev.weft.core.MemoryPool.host().describeLive(100).contains("parameter gather");
                    g.barrier();
                    Map<String, float[]> grads = new LinkedHashMap<>();
                    z.optimizerParameters().forEach((k, p) -> grads.put(k, p.grad().toArray()));
                    return new Object[] {z.collectives(), gathered, grads};
                }
            });
            for (Object[] r : rs) {
                long expected = hold ? 3 + 3 * accum : 15 + 3 * accum;
                assertEquals(expected, (long) r[0], (hold ? "held" : "re-gathered") + ": all-gathers and reduce-scatters in the step");
                assertFalse((boolean) r[1], "no gathered unit outlives the step");
            }
            if (hold) heldGrads = rs;
            else for (int i = 0; i < rs.size(); i++) {
                @SuppressWarnings("unchecked") Map<String, float[]> a = (Map<String, float[]>) heldGrads.get(i)[2], b = (Map<String, float[]>) rs.get(i)[2];
                for (var e : a.entrySet()) assertArrayEquals(e.getValue(), b.get(e.getKey()), e.getKey() + ": the same gradient bits either way");
            }
        }
    }

    private List<Object[]> heldGrads;
}
