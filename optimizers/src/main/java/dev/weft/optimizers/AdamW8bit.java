package dev.weft.optimizers;

import dev.weft.core.Tensor;
import dev.weft.core.kernels.Parallel;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * AdamW with 8-bit blockwise-quantised moments (Dettmers et al., 2022; bitsandbytes' AdamW8bit).
 * Each moment is cut into blocks of {@code blockSize} elements; a block stores one float absmax
 * and one byte per element, the index of the nearest code of the {@link DynamicMap dynamic map}
 * (signed for m, unsigned for v) to value/absmax. A step dequantises a block, updates it in
 * float32 exactly as {@link AdamW} does, steps the weight with the float32 moments, and
 * re-quantises them with the block's new absmax. Tensors with fewer than {@code min8bitSize}
 * elements keep float32 moments, as in bitsandbytes (min_8bit_size 4096).
 *
 * <p>weft tensors have no byte dtype, so the codes are packed four to a float32 slot; they are
 * only ever read and written as raw bytes (checkpoints copy them bit for bit).
 * State: 2 bytes + 8/blockSize bytes per element for quantised tensors, 8 bytes otherwise.
 */
public final class AdamW8bit extends ParameterOptimizer {
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;

    public record Settings(AdamW.Settings adam, int blockSize, int min8bitSize) {
        public Settings {
            if (blockSize < 16 || blockSize % 4 != 0)
                throw new IllegalArgumentException("adamw8bit: block_size must be a multiple of 4 and >= 16, got " + blockSize);
            if (min8bitSize < 0) throw new IllegalArgumentException("adamw8bit: min_8bit_size must be >= 0, got " + min8bitSize);
        }
    }

    private record Quantised(Tensor codes1, Tensor absmax1, Tensor codes2, Tensor absmax2) {}

    private final Settings s;
    private final Map<String, Object> moments = new LinkedHashMap<>(); // Quantised or Tensor[]{m, v}
    // This step's bias-corrected factors, set by beginStep.
    private float stepSize, bc2Sqrt;

    public AdamW8bit(Map<String, Tensor> parameters, Settings settings) {
        this(parameters, null, settings);
    }

    /**
     * Over tensors that may be flat shards of parameters whose full shapes {@code globalShapes}
     * gives (null: their own): whether a tensor keeps float32 moments is decided by its full size,
     * so a shard is stored exactly as its part of the whole would be.
     */
    public AdamW8bit(Map<String, Tensor> parameters, Map<String, int[]> globalShapes, Settings settings) {
        super(parameters);
        this.s = settings;
        params.forEach((n, p) -> {
            long numel = p.numel();
            long wholeNumel = globalShapes == null ? numel : Tensor.numel(globalShapes.get(n));
            if (wholeNumel < s.min8bitSize()) {
                moments.put(n, new Tensor[] {newState(n, "exp_avg", p.shape()), newState(n, "exp_avg_sq", p.shape())});
            } else {
                int packed = Math.toIntExact((numel + 3) / 4), blocks = Math.toIntExact((numel + s.blockSize() - 1) / s.blockSize());
                Quantised q = new Quantised(newState(n, "exp_avg_codes", packed), newState(n, "exp_avg_absmax", blocks),
                        newState(n, "exp_avg_sq_codes", packed), newState(n, "exp_avg_sq_absmax", blocks));
                // Code index of 0: the zero-initialised bytes would otherwise decode as the most negative code.
                fillCodes(q.codes1().data(), numel, DynamicMap.quantize(DynamicMap.SIGNED, 0f));
                moments.put(n, q);
            }
        });
    }

    private static void fillCodes(MemorySegment codes, long n, int code) {
        for (long i = 0; i < n; i++) codes.set(BYTE, i, (byte) code);
    }

    @Override
    public String name() {
        return "adamw8bit";
    }

    @Override
    public int stateStride(String stateName) {
        if (stateName.endsWith("_codes")) return 4;
        if (stateName.endsWith("_absmax")) return s.blockSize();
        return 1;
    }

    @Override
    public Sharding sharding() {
        return Sharding.blocks(s.blockSize());
    }

    @Override
    protected void beginStep(double lr) {
        AdamW.Settings a = s.adam();
        stepSize = (float) (lr / (1 - StrictMath.pow(a.beta1(), steps())));
        bc2Sqrt = (float) Math.sqrt(1 - StrictMath.pow(a.beta2(), steps()));
    }

    @Override
    protected void stepParameter(String name, Tensor p, Tensor grad, double lr) {
        AdamW.Settings a = s.adam();
        float b1 = (float) a.beta1(), b2 = (float) a.beta2(), eps = (float) a.eps();
        float stepSize = this.stepSize, bc2Sqrt = this.bc2Sqrt; // locals, so the block loop reads no fields
        float decay = p.dim() >= 2 ? (float) (1 - lr * a.weightDecay()) : 1f;
        int n = Math.toIntExact(p.numel());
        Object st = moments.get(name);
        if (st instanceof Tensor[] mv) {
            AdamW.update(p.data(), grad.data(), mv[0].data(), mv[1].data(), n, decay, b1, b2, stepSize, bc2Sqrt, eps);
            return;
        }
        Quantised q = (Quantised) st;
        MemorySegment w = p.data(), g = grad.data(), c1 = q.codes1().data(), c2 = q.codes2().data();
        MemorySegment a1 = q.absmax1().data(), a2 = q.absmax2().data();
        int bs = s.blockSize();
        int blocks = (n + bs - 1) / bs;
        // blocks are independent, so splitting them over threads changes no bits
        Parallel.forRange(blocks, Math.max(1, (1 << 15) / bs), (fromBlock, toBlock) -> {
            float[] m = new float[bs], v = new float[bs];
            for (int blk = fromBlock; blk < toBlock; blk++) {
                int start = blk * bs, len = Math.min(bs, n - start);
                float am1 = a1.getAtIndex(Mat.F, blk), am2 = a2.getAtIndex(Mat.F, blk);
                float max1 = 0, max2 = 0;
                for (int j = 0; j < len; j++) {
                    long i = start + j;
                    float gi = g.getAtIndex(Mat.F, i);
                    float mi = DynamicMap.SIGNED[c1.get(BYTE, i) & 0xff] * am1 * b1 + gi * (1 - b1);
                    float vi = DynamicMap.UNSIGNED[c2.get(BYTE, i) & 0xff] * am2 * b2 + gi * gi * (1 - b2);
                    m[j] = mi;
                    v[j] = vi;
                    max1 = Math.max(max1, Math.abs(mi));
                    max2 = Math.max(max2, vi);
                    float denom = (float) Math.sqrt(vi) / bc2Sqrt + eps;
                    w.setAtIndex(Mat.F, i, w.getAtIndex(Mat.F, i) * decay - mi / denom * stepSize);
                }
                a1.setAtIndex(Mat.F, blk, max1);
                a2.setAtIndex(Mat.F, blk, max2);
                for (int j = 0; j < len; j++) {
                    long i = start + j;
                    c1.set(BYTE, i, (byte) DynamicMap.quantize(DynamicMap.SIGNED, max1 == 0 ? 0 : m[j] / max1));
                    c2.set(BYTE, i, (byte) DynamicMap.quantize(DynamicMap.UNSIGNED, max2 == 0 ? 0 : v[j] / max2));
                }
            }
        });
    }
}
