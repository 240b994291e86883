package dev.weft.core.model;

import dev.weft.core.Autograd;
import dev.weft.core.DeferredWeights;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.ops.CrossEntropy;
import org.junit.jupiter.api.Test;

import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A backward split into B (input gradients) and W (weight gradients), as zero-bubble pipelines
 * run it, gives the same bits as the unsplit backward. Bit-identical, not within a tolerance: the
 * weight pass runs the same kernels on the same operands in the same order.
 */
class SplitBackwardTest {
    private static final LlamaConfig TIED = new LlamaConfig(2, 32, 4, 2, 48, 40, 16, 10000f, 1e-5f, true, 0.05);

    /**
     * Two micro-batches accumulate into the gradients. The split run does B0, B1, then W0, W1 (the
     * order ZB-H1's cooldown uses), the control does the two full backwards. Tied embeddings make
     * one weight serve the embedding's scatter and the head's GEMM, both postponed.
     */
    @Test
    void llamaParameterGradientsMatchTheUnsplitBackwardBitForBit() {
        Llama model = new Llama(TIED, 3);
        int batch = 2, seq = 8;
        int[][] ids = {tokens(batch * seq, 1), tokens(batch * seq, 2)};
        int[][] targets = {tokens(batch * seq, 3), tokens(batch * seq, 4)};
        Map<String, Tensor> params = model.namedParameters();

        try (Scope s = Scope.open()) {
            for (int mb = 0; mb < 2; mb++) Autograd.backward(CrossEntropy.loss(model.forward(ids[mb], batch, seq), targets[mb], -1));
        }
        Map<String, float[]> control = gradients(params);

        Map<Tensor, Integer> readyCalls = new IdentityHashMap<>();
        for (Tensor p : params.values()) p.onGradReady(t -> readyCalls.merge(t, 1, Integer::sum));
        try (Scope s = Scope.open()) {
            DeferredWeights[] w = new DeferredWeights[2];
            for (int mb = 0; mb < 2; mb++) {
                Tensor loss = CrossEntropy.loss(model.forward(ids[mb], batch, seq), targets[mb], -1);
                try (DeferredWeights d = Autograd.deferWeightGradients(params.values())) {
                    Autograd.backward(loss);
                    w[mb] = d;
                }
            }
            for (var e : params.entrySet()) assertNull(e.getValue().grad(), e.getKey() + " got a gradient before the weight pass");
            assertTrue(readyCalls.isEmpty(), "grad-ready fired before the weight pass");
            w[0].run();
            assertEquals(params.size(), readyCalls.size(), "every parameter's hook fired after the first weight pass");
            for (int n : readyCalls.values()) assertEquals(1, n);
            w[1].run();
            for (var e : readyCalls.entrySet()) assertEquals(2, e.getValue(), "once per weight pass: " + e.getKey());
        }
        Map<String, float[]> split = gradients(params);
        for (String name : control.keySet()) assertBitsEqual(control.get(name), split.get(name), name);
        model.close();
    }

    /**
     * A middle pipeline stage: its input is a leaf the previous stage needs the gradient of right
     * after B, so only the parameters wait for W.
     */
    @Test
    void aStageInputGetsItsGradientInBAndTheLayerWeightsInW() {
        LlamaDecoderLayer layer = new LlamaDecoderLayer(TIED);
        layer.initialize(9);
        Map<String, Tensor> params = layer.namedParameters();
        float[] xs = values(2 * 8 * TIED.dModel(), 5), dys = values(xs.length, 6);

        float[] controlInputGrad;
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(xs, 2, 8, TIED.dModel()).requiresGrad(true);
            Autograd.backward(layer.forward(x, 0), Tensor.of(dys, 2, 8, TIED.dModel()));
            controlInputGrad = x.grad().toArray();
            x.clearGrad();
        }
        Map<String, float[]> control = gradients(params);

        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(xs, 2, 8, TIED.dModel()).requiresGrad(true);
            Tensor y = layer.forward(x, 0);
            DeferredWeights w;
            try (DeferredWeights d = Autograd.deferWeightGradients(params.values())) {
                Autograd.backward(y, Tensor.of(dys, 2, 8, TIED.dModel()));
                w = d;
            }
            assertNotNull(x.grad(), "the stage input's gradient is there after B");
            assertBitsEqual(controlInputGrad, x.grad().toArray(), "input gradient");
            for (var e : params.entrySet()) assertNull(e.getValue().grad(), e.getKey() + " before W");
            assertEquals(7 + 2, w.size(), "seven projections and two norms wait for W");
            w.run();
            x.clearGrad();
        }
        Map<String, float[]> split = gradients(params);
        for (String name : control.keySet()) assertBitsEqual(control.get(name), split.get(name), name);
        layer.close();
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
                fail(what + "[" + i + "]: " + expected[i] + " unsplit, " + actual[i] + " split");
    }

    private static int[] tokens(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) out[i] = r.nextInt(TIED.vocab());
        return out;
    }

    private static float[] values(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] out = new float[n];
        for (int i = 0; i < n; i++) out[i] = (float) r.nextGaussian();
        return out;
    }
}
