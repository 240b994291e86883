package dev.weft.trainer;

import dev.weft.core.Autograd;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.model.KvCache;
import dev.weft.core.model.Llama;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Autoregressive sampling with temperature and top-k. While the sequence fits in max_seq_len, a
 * KV cache holds every earlier position, so each new token runs the model over that one token.
 * Once it is longer, the window of the last max_seq_len tokens slides, every token's position
 * changes and the cached keys no longer apply: each step then re-reads the whole window, as a
 * model trained at positions 0..max_seq_len-1 expects.
 */
public final class Generator {
    private final Llama model;
    private final SplittableRandom random;

    private final boolean kvCache;

    public Generator(Llama model, long seed) {
        this(model, seed, true);
    }

    /** {@code kvCache} false re-reads the whole context for every token (the reference the cache is tested against). */
    Generator(Llama model, long seed, boolean kvCache) {
        this.model = model;
        this.random = new SplittableRandom(seed);
        this.kvCache = kvCache;
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
        float[] last = new float[model.config().vocab()];
        try (var ng = Autograd.noGrad(); KvCache cache = kvCache ? new KvCache(model.config(), 1) : null) {
            for (int i = 0; i < count; i++) {
                int from = Math.max(0, len - window);
                try (Scope s = Scope.open()) {
                    Tensor logits;
                    int rows;
                    if (cache != null && from == 0) {
                        int[] fresh = Arrays.copyOfRange(seq, cache.length(), len);
                        logits = model.forward(fresh, 1, fresh.length, cache);
                        rows = fresh.length;
                    } else {
                        int[] ctx = Arrays.copyOfRange(seq, from, len);
                        logits = model.forward(ctx, 1, ctx.length);
                        rows = ctx.length;
                    }
                    MemorySegment.copy(logits.data(), ValueLayout.JAVA_FLOAT, (long) (rows - 1) * last.length * 4, last, 0, last.length);
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
