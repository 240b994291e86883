package dev.weft.core.model;

import dev.weft.core.DType;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.ops.Attention;

import java.lang.foreign.MemorySegment;

/**
 * The keys and values (after RoPE) of every position a model has seen so far, per layer, so that
 * generating a token costs one position's work instead of the whole prefix again. For inference
 * under no-grad only. Each layer holds [batch, max_seq_len, kv_heads, head_dim] for keys and the
 * same for values, allocated once; the cache owns them until {@link #close()}.
 */
public final class KvCache implements AutoCloseable {
    private final Tensor[] keys, values;
    private final int batch, capacity, rowFloats;
    private int length;

    public KvCache(LlamaConfig config, int batch) {
        if (batch <= 0) throw new IllegalArgumentException("KV cache batch must be positive, got " + batch);
        this.batch = batch;
        this.capacity = config.maxSeqLen();
        this.rowFloats = config.kvHeads() * config.headDim();
        keys = new Tensor[config.layers()];
        values = new Tensor[config.layers()];
        for (int i = 0; i < keys.length; i++) {
            keys[i] = Scope.outside(() -> Tensor.empty(DType.F32, "kv_cache.keys", batch, capacity, config.kvHeads(), config.headDim()));
            values[i] = Scope.outside(() -> Tensor.empty(DType.F32, "kv_cache.values", batch, capacity, config.kvHeads(), config.headDim()));
        }
    }

    /** Positions cached so far: the position of the next token fed to the model. */
    public int length() {
        return length;
    }

    public int capacity() {
        return capacity;
    }

    public int batch() {
        return batch;
    }

    /** Forgets every position (the memory stays, for the next sequence). */
    public void clear() {
        length = 0;
    }

    /**
     * Stores k and v ([B, T, Hkv, D], at positions [position, position + T)) in layer {@code layer}
     * and attends q ([B, T, Hq, D]) against every cached position up to its own.
     */
    Tensor attend(int layer, Tensor q, Tensor k, Tensor v, int position, float scale) {
        int t = k.size(1);
        if (position != length)
            throw new IllegalStateException("KV cache holds " + length + " positions; cannot add tokens at position " + position);
        store(keys[layer], k, position, t);
        store(values[layer], v, position, t);
        return Attention.causalAfterPrefix(q, keys[layer], values[layer], position, scale);
    }

    /** Counts the positions the last forward added, once every layer has stored them. */
    void advance(int t) {
        length += t;
    }

    private void store(Tensor cache, Tensor x, int position, int t) {
        Tensor xc = x.contiguous();
        MemorySegment src = xc.data(), dst = cache.data();
        long rowBytes = (long) rowFloats * Float.BYTES;
        for (int b = 0; b < batch; b++)
            MemorySegment.copy(src, (long) b * t * rowBytes, dst, ((long) b * capacity + position) * rowBytes, t * rowBytes);
        if (xc != x) xc.close();
    }

    @Override
    public void close() {
        for (Tensor t : keys) t.close();
        for (Tensor t : values) t.close();
    }
}
