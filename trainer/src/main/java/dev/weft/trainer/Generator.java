package dev.weft.trainer;

import dev.weft.core.Autograd;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Autoregressive sampling with temperature and top-k. Each new token re-reads the last
 * max_seq_len tokens (no KV cache: samples here are short and the model small).
 */
public final class Generator {
    private final Llama model;
    private final SplittableRandom random;

    public Generator(Llama model, long seed) {
        this.model = model;
        this.random = new SplittableRandom(seed);
    }

    /**
     * Continues {@code prompt} by {@code count} tokens. Temperature 0 means greedy; topK 0 means the
     * whole vocabulary.
     */
    public int[] generate(int[] prompt, int count, double temperature, int topK) {
        if (prompt.length == 0) throw new IllegalArgumentException("the prompt must hold at least one token");
        if (temperature < 0) throw new IllegalArgumentException("temperature must be >= 0, got " + temperature);
        int window = model.config().maxSeqLen();
        int[] seq = Arrays.copyOf(prompt, prompt.length + count);
        int len = prompt.length;
        try (var ng = Autograd.noGrad()) {
            for (int i = 0; i < count; i++) {
                int from = Math.max(0, len - window);
                int[] ctx = Arrays.copyOfRange(seq, from, len);
                try (Scope s = Scope.open()) {
                    Tensor logits = model.forward(ctx, 1, ctx.length);
                    float[] last = new float[model.config().vocab()];
                    int v = last.length;
                    java.lang.foreign.MemorySegment.copy(logits.data(), java.lang.foreign.ValueLayout.JAVA_FLOAT,
                            (long) (ctx.length - 1) * v * 4, last, 0, v);
                    seq[len++] = pick(last, temperature, topK);
                }
            }
        }
        return Arrays.copyOfRange(seq, prompt.length, len);
    }

    int pick(float[] logits, double temperature, int topK) {
        int v = logits.length;
        if (temperature == 0) {
            int best = 0;
            for (int i = 1; i < v; i++) if (logits[i] > logits[best]) best = i;
            return best;
        }
        float threshold = Float.NEGATIVE_INFINITY;
        if (topK > 0 && topK < v) {
            float[] sorted = logits.clone();
            Arrays.sort(sorted);
            threshold = sorted[v - topK];
        }
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) max = Math.max(max, l);
        double[] p = new double[v];
        double sum = 0;
        for (int i = 0; i < v; i++) {
            p[i] = logits[i] >= threshold ? StrictMath.exp((logits[i] - max) / temperature) : 0;
            sum += p[i];
        }
        double r = random.nextDouble() * sum;
        for (int i = 0; i < v; i++) {
            r -= p[i];
            if (r <= 0 && p[i] > 0) return i;
        }
        for (int i = v - 1; i >= 0; i--) if (p[i] > 0) return i;
        return 0;
    }
}
