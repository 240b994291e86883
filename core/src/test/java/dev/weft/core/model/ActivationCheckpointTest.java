package dev.weft.core.model;

import dev.weft.core.ActivationCheckpoint;
import dev.weft.core.ActivationFootprint;
import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.DeferredWeights;
import dev.weft.core.MemoryPool;
import dev.weft.core.SavedTensorHooks;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.nn.ActivationPolicy;
import dev.weft.core.nn.ActivationPolicy.Recompute;
import dev.weft.core.nn.Module;
import dev.weft.core.ops.CrossEntropy;
import dev.weft.core.ops.Matmul;
import dev.weft.core.ops.Reductions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Activation checkpointing of decoder layers gives the bits of the unchecked run (losses and every
 * parameter gradient), holds less memory at its peak, and composes with gradient accumulation,
 * grad-ready hooks, the split backward of zero-bubble schedules and ZeRO-3-style gather/evict hooks.
 * Bit-identical, not within a tolerance: the replay runs the same deterministic kernels on the
 * same operands.
 */
class ActivationCheckpointTest {
    private static final LlamaConfig TINY = new LlamaConfig(3, 32, 4, 2, 48, 40, 16, 10000f, 1e-5f, false, 0.05);
    private static final int BATCH = 2, SEQ = 8, MICRO_BATCHES = 3;

    @ParameterizedTest
    @EnumSource(Recompute.class)
    void everyLayerCheckpointedGivesTheUncheckedBitsOverAccumulatedMicroBatches(Recompute policy) {
        Llama model = new Llama(TINY, 11);
        Run control = train(model, (ActivationPolicy) null);
        Map<Tensor, Integer> readyCalls = countGradReady(model);
        Run checked = train(model, policy, policy, policy);
        assertRunsEqual(control, checked);
        Map<String, Tensor> params = model.namedParameters();
        assertEquals(params.size(), readyCalls.size(), "every parameter's grad-ready hook fired");
        for (var e : params.entrySet())
            assertEquals(MICRO_BATCHES, readyCalls.get(e.getValue()), "grad-ready once per backward: " + e.getKey());
        model.close();
    }

    @Test
    void mixedPoliciesPerLayerGiveTheUncheckedBits() {
        Llama model = new Llama(TINY, 12);
        Run control = train(model, (ActivationPolicy) null);
        Run mixed = train(model, Recompute.FULL, null, Recompute.SELECTIVE);
        assertRunsEqual(control, mixed);
        model.close();
    }

    /** Policies nest: a selective layer whose MLP is fully recomputed, a full layer whose attention is selective. */
    @Test
    void nestedPoliciesGiveTheUncheckedBits() {
        Llama model = new Llama(TINY, 18);
        Run control = train(model, (ActivationPolicy) null);
        Map<String, Module> modules = model.namedModules();
        modules.get("model.layers.0.mlp").activations(Recompute.FULL);
        modules.get("model.layers.1.self_attn").activations(Recompute.SELECTIVE);
        modules.get("model.layers.2.mlp.down_proj").activations(Recompute.FULL);
        Run nested = train(model, Recompute.SELECTIVE, Recompute.FULL, Recompute.SELECTIVE);
        for (Module m : modules.values()) m.activations(null);
        assertRunsEqual(control, nested);
        model.close();
    }

    /** A body whose replay computes other projections than its forward did is refused, by name. */
    @Test
    void aReplayThatComputesOtherProjectionsIsRefused() {
        Tensor w = Scope.outside(() -> Tensor.full(0.1f, 4, 4).requiresGrad(true));
        int[] runs = {0};
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.full(0.5f, 2, 4).requiresGrad(true);
            Tensor y = ActivationCheckpoint.selective(x, in -> runs[0]++ == 0 ? Matmul.linear(in, w) : Matmul.linear(Matmul.linear(in, w), w));
            var e = assertThrows(IllegalStateException.class, () -> Autograd.backward(Reductions.sum(y)));
            assertTrue(e.getMessage().contains("more projections than the 1 its forward kept"), e.getMessage());
        }
        w.clearGrad();
        w.close();
    }

    /**
     * What a checkpointed layer keeps goes through the saved-tensor hooks (where offload plugs in),
     * as private copies here: the input, plus the seven projections' outputs under selective. The
     * backward unpacks each once, and its replay saves nothing through the hooks.
     */
    @ParameterizedTest
    @EnumSource(Recompute.class)
    void whatALayerKeepsPassesThroughTheSavedTensorHooks(Recompute policy) {
        LlamaDecoderLayer layer = new LlamaDecoderLayer(TINY);
        layer.initialize(19);
        Map<String, Tensor> params = layer.namedParameters();
        float[] xs = values(BATCH * SEQ * TINY.dModel(), 5), dys = values(xs.length, 6);
        float[] controlInputGrad;
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(xs, BATCH, SEQ, TINY.dModel()).requiresGrad(true);
            Autograd.backward(layer.call(x, in -> layer.forward(in, 0)), Tensor.of(dys, BATCH, SEQ, TINY.dModel()));
            controlInputGrad = x.grad().toArray();
            x.clearGrad();
        }
        Map<String, float[]> control = gradients(params);

        layer.activations(policy);
        int[] packs = {0}, unpacks = {0};
        SavedTensorHooks copying = new SavedTensorHooks() {
            @Override
            public Object pack(Tensor t) {
                packs[0]++;
                return Scope.outside(() -> Tensor.empty(DType.F32, "saved-copy", t.shape()).copyFrom(t));
            }

            @Override
            public Tensor unpack(Object packed) {
                unpacks[0]++;
                return (Tensor) packed;
            }

            @Override
            public void release(Object packed) {
                ((Tensor) packed).close();
            }
        };
        try (Scope s = Scope.open(); var hooks = SavedTensorHooks.install(copying)) {
            Tensor x = Tensor.of(xs, BATCH, SEQ, TINY.dModel()).requiresGrad(true);
            Tensor y = layer.call(x, in -> layer.forward(in, 0));
            assertEquals(policy == Recompute.FULL ? 1 : 1 + 7, packs[0], "saved in forward");
            Autograd.backward(y, Tensor.of(dys, BATCH, SEQ, TINY.dModel()));
            assertEquals(policy == Recompute.FULL ? 1 : 1 + 7, packs[0], "the replay saved nothing through the hooks");
            assertEquals(packs[0], unpacks[0], "backward unpacked each saved tensor");
            assertEquals(0L, MemoryPool.host().liveBytesByLabel().getOrDefault("saved-copy", 0L), "backward released every copy");
            assertBitsEqual(controlInputGrad, x.grad().toArray(), "input gradient");
            x.clearGrad();
        }
        Map<String, float[]> checked = gradients(params);
        for (String name : control.keySet()) assertBitsEqual(control.get(name), checked.get(name), name);
        layer.close();
    }

    /** Under no-grad (evaluation) a policy changes nothing: no graph, nothing kept, the same logits. */
    @Test
    void evaluationUnderAPolicyGivesTheSameLogits() {
        Llama model = new Llama(TINY, 13);
        int[] ids = tokens(BATCH * SEQ, 1);
        float[] plain, checked;
        try (Scope s = Scope.open(); var ng = Autograd.noGrad()) {
            plain = model.forward(ids, BATCH, SEQ).toArray();
            setPolicies(model, Recompute.FULL, Recompute.SELECTIVE, Recompute.FULL);
            Tensor y = model.forward(ids, BATCH, SEQ);
            assertFalse(y.requiresGrad());
            checked = y.toArray();
        }
        assertBitsEqual(plain, checked, "logits");
        model.close();
    }

    /**
     * A zero-bubble split backward (B now, W later) of checkpointed layers: the postponed weight
     * work reads the recomputed graph, which the micro-batch's scope keeps until W.
     */
    @ParameterizedTest
    @EnumSource(Recompute.class)
    void aSplitBackwardOfCheckpointedLayersGivesTheUnsplitBits(Recompute policy) {
        Llama model = new Llama(TINY, 14);
        Run control = train(model, (ActivationPolicy) null);
        setPolicies(model, policy, policy, policy);
        Map<String, Tensor> params = model.namedParameters();
        Map<Tensor, Integer> readyCalls = countGradReady(model);
        float[] losses = new float[MICRO_BATCHES];
        try (Scope s = Scope.open()) {
            DeferredWeights[] w = new DeferredWeights[MICRO_BATCHES];
            for (int mb = 0; mb < MICRO_BATCHES; mb++) {
                Tensor loss = CrossEntropy.loss(model.forward(tokens(BATCH * SEQ, mb), BATCH, SEQ), tokens(BATCH * SEQ, 100 + mb), -1);
                losses[mb] = loss.item();
                try (DeferredWeights d = Autograd.deferWeightGradients(params.values())) {
                    Autograd.backward(loss);
                    w[mb] = d;
                }
            }
            for (var e : params.entrySet()) assertNull(e.getValue().grad(), e.getKey() + " got a gradient before the weight pass");
            assertTrue(readyCalls.isEmpty(), "grad-ready fired before the weight pass");
            for (DeferredWeights d : w) d.run();
        }
        for (var e : params.entrySet()) assertEquals(MICRO_BATCHES, readyCalls.get(e.getValue()), "once per weight pass: " + e.getKey());
        setPolicies(model, null, null, null);
        assertRunsEqual(control, new Run(losses, gradients(params)));
        model.close();
    }

    /**
     * ZeRO-3-style hooks on every layer: the weights' memory is unbound outside the hooks' gather,
     * so any use of a weight outside forward's or backward's window fails. The recompute runs in
     * backward between before-backward and after-backward, and the bits agree.
     */
    @ParameterizedTest
    @EnumSource(Recompute.class)
    void checkpointedLayersUnderGatherAndEvictHooksGiveTheUncheckedBits(Recompute policy) {
        Llama model = new Llama(TINY, 15);
        Run control = train(model, (ActivationPolicy) null);
        List<String> events = new ArrayList<>();
        try (Arena arena = Arena.ofShared()) {
            for (int i = 0; i < TINY.layers(); i++) {
                Module layer = model.namedModules().get("model.layers." + i);
                layer.hooks(new Sharded(layer, "layer" + i, events, arena));
            }
            Run checked = train(model, policy, policy, policy);
            assertRunsEqual(control, checked);
            List<String> oneStep = events.subList(0, 4 * TINY.layers());
            assertEquals(List.of("layer0 beforeForward", "layer0 afterForward", "layer1 beforeForward", "layer1 afterForward",
                    "layer2 beforeForward", "layer2 afterForward", "layer2 beforeBackward", "layer2 afterBackward",
                    "layer1 beforeBackward", "layer1 afterBackward", "layer0 beforeBackward", "layer0 afterBackward"), oneStep);
            for (Tensor p : model.namedParameters().values()) assertEquals(p.name().startsWith("model.layers."), !p.storage().isBound(), p.name());
            model.close(); // while the arena still holds the layers' memory
        }
    }

    /**
     * Peak live bytes of one micro-batch's forward and backward on a model whose activations
     * outweigh its parameters: selective below none, full below selective.
     */
    @Test
    void checkpointingLowersThePeakOfForwardAndBackward() {
        LlamaConfig c = new LlamaConfig(4, 64, 4, 2, 172, 40, 64, 10000f, 1e-5f, false, 0.05);
        Llama model = new Llama(c, 16);
        int batch = 2, seq = 64;
        int[] ids = tokens(batch * seq, 1), targets = tokens(batch * seq, 2);
        ActivationPolicy[] policies = {null, Recompute.SELECTIVE, Recompute.FULL};
        long[] peak = new long[policies.length];
        float[][] grads = new float[policies.length][];
        MemoryPool pool = MemoryPool.host();
        for (int round = 0; round < 2; round++) { // the first round warms the pool's cache: the second measures
            for (int i = 0; i < policies.length; i++) {
                setPolicies(model, policies[i], policies[i], policies[i], policies[i]);
                long base;
                try (Scope s = Scope.open()) {
                    base = pool.liveBytes();
                    pool.resetPeaks();
                    Autograd.backward(CrossEntropy.loss(model.forward(ids, batch, seq), targets, -1));
                    peak[i] = pool.peakLiveBytes() - base;
                }
                grads[i] = model.namedParameters().get("model.layers.0.self_attn.q_proj.weight").grad().toArray();
                for (Tensor p : model.namedParameters().values()) p.clearGrad();
            }
        }
        System.out.printf("peak live bytes over forward+backward, 4 layers, batch 2 x seq 64: none %d, selective %d (%.2fx), full %d (%.2fx)%n",
                peak[0], peak[1], (double) peak[1] / peak[0], peak[2], (double) peak[2] / peak[0]);
        assertTrue(peak[1] < peak[0], "selective " + peak[1] + " < none " + peak[0]);
        assertTrue(peak[2] < peak[1], "full " + peak[2] + " < selective " + peak[1]);
        assertBitsEqual(grads[0], grads[1], "selective q_proj gradient");
        assertBitsEqual(grads[0], grads[2], "full q_proj gradient");
        model.close();
    }

    /**
     * The planner's figures: full keeps exactly the layer's input, selective the input and the
     * seven projections' outputs, none more than either; and what stays live after forward falls
     * in the same order.
     */
    @Test
    void footprintsAreMeasuredPerPolicy() {
        Llama model = new Llama(TINY, 17);
        int batch = 2, seq = 8, hd = TINY.headDim();
        long baseline = MemoryPool.host().liveBytes();
        ActivationFootprint none = model.activationFootprint(1, null, batch, seq);
        ActivationFootprint selective = model.activationFootprint(1, Recompute.SELECTIVE, batch, seq);
        ActivationFootprint full = model.activationFootprint(1, Recompute.FULL, batch, seq);
        System.out.printf("layer activation footprint, batch %d x seq %d, d %d: none %s, selective %s, full %s%n",
                batch, seq, TINY.dModel(), none, selective, full);
        long tokens = (long) batch * seq, input = tokens * TINY.dModel() * Float.BYTES;
        assertEquals(input, full.savedBytes(), "full keeps exactly the layer input");
        long projections = tokens * Float.BYTES * ((TINY.heads() + 2L * TINY.kvHeads()) * hd + TINY.dModel() + 2L * TINY.ffnDim() + TINY.dModel());
        assertEquals(input + projections, selective.savedBytes(), "selective keeps the input and the projections' outputs");
        assertTrue(none.savedBytes() > selective.savedBytes(), none + " vs " + selective);
        assertTrue(none.liveBytes() > selective.liveBytes() && selective.liveBytes() > full.liveBytes(), none + " " + selective + " " + full);
        assertNull(model.namedModules().get("model.layers.1").activations(), "the layer's own policy is left as it was");
        assertEquals(baseline, MemoryPool.host().liveBytes(), "measuring freed what it made");
        model.close();
    }

    // ---- helpers ---------------------------------------------------------------------------------

    /** The losses of each micro-batch and the accumulated parameter gradients, by name. */
    private record Run(float[] losses, Map<String, float[]> gradients) {}

    /** Installs {@code perLayer[i]} on decoder layer i, then runs the micro-batches forward and backward, accumulating. */
    private static Run train(Llama model, ActivationPolicy... perLayer) {
        setPolicies(model, perLayer.length == 1 ? fill(perLayer[0], model.config().layers()) : perLayer);
        float[] losses = new float[MICRO_BATCHES];
        for (int mb = 0; mb < MICRO_BATCHES; mb++) {
            try (Scope s = Scope.open()) {
                Tensor loss = CrossEntropy.loss(model.forward(tokens(BATCH * SEQ, mb), BATCH, SEQ), tokens(BATCH * SEQ, 100 + mb), -1);
                losses[mb] = loss.item();
                Autograd.backward(loss);
            }
        }
        setPolicies(model, fill(null, model.config().layers()));
        return new Run(losses, gradients(model.namedParameters()));
    }

    private static ActivationPolicy[] fill(ActivationPolicy p, int n) {
        ActivationPolicy[] out = new ActivationPolicy[n];
        java.util.Arrays.fill(out, p);
        return out;
    }

    private static void setPolicies(Llama model, ActivationPolicy... perLayer) {
        for (int i = 0; i < perLayer.length; i++) model.namedModules().get("model.layers." + i).activations(perLayer[i]);
    }

    private static Map<Tensor, Integer> countGradReady(Llama model) {
        Map<Tensor, Integer> calls = new IdentityHashMap<>();
        for (Tensor p : model.namedParameters().values()) p.onGradReady(t -> calls.merge(t, 1, Integer::sum));
        return calls;
    }

    private static void assertRunsEqual(Run expected, Run actual) {
        assertBitsEqual(expected.losses, actual.losses, "losses");
        assertEquals(expected.gradients.keySet(), actual.gradients.keySet());
        for (String name : expected.gradients.keySet()) assertBitsEqual(expected.gradients.get(name), actual.gradients.get(name), name);
    }

    /** Copies out every gradient and frees it, so the next run starts from none. */
    private static Map<String, float[]> gradients(Map<String, Tensor> params) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (var e : params.entrySet()) {
            assertNotNull(e.getValue().grad(), e.getKey() + " has no gradient");
            out.put(e.getKey(), e.getValue().grad().toArray());
            e.getValue().clearGrad();
        }
        return out;
    }

    private static void assertBitsEqual(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++)
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i]))
                fail(what + "[" + i + "]: " + expected[i] + " unchecked, " + actual[i] + " checkpointed");
    }

    private static float[] values(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] out = new float[n];
        for (int i = 0; i < n; i++) out[i] = (float) r.nextGaussian();
        return out;
    }

    private static int[] tokens(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) out[i] = r.nextInt(TINY.vocab());
        return out;
    }

    /**
     * ZeRO-3's shape without the collectives: each weight's memory lives in a private copy and is
     * bound to the weight only between before-X and after-X, so a weight used outside those
     * windows fails loudly ("sharded and not gathered").
     */
    private static final class Sharded implements Module.Hooks {
        private final String name;
        private final List<String> events;
        private final List<Tensor> weights = new ArrayList<>();
        private final List<MemorySegment> copies = new ArrayList<>();

        Sharded(Module layer, String name, List<String> events, Arena arena) {
            this.name = name;
            this.events = events;
            for (Tensor p : layer.namedParameters().values()) {
                MemorySegment copy = arena.allocate(p.storage().bytes(), 64);
                copy.copyFrom(p.data());
                p.storage().evict();
                weights.add(p);
                copies.add(copy);
            }
        }

        private void gather() {
            for (int i = 0; i < weights.size(); i++) weights.get(i).storage().bind(copies.get(i));
        }

        private void evict() {
            for (Tensor w : weights) w.storage().unbind();
        }

        @Override
        public void beforeForward(Module m) {
            events.add(name + " beforeForward");
            gather();
        }

        @Override
        public void afterForward(Module m) {
            events.add(name + " afterForward");
            evict();
        }

        @Override
        public void beforeBackward(Module m) {
            events.add(name + " beforeBackward");
            gather();
        }

        @Override
        public void afterBackward(Module m) {
            events.add(name + " afterBackward");
            evict();
        }
    }
}
