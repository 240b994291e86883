package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.GradFn;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.Parallel;
import dev.weft.core.kernels.RopeKernels;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Rotary position embedding in the Hugging Face Llama convention, so that HF checkpoints load:
 * element i of each head pairs with i + D/2 ("rotate_half"), {@code inv_freq_i = theta^(-2i/D)},
 * {@code angle = (positionOffset + t) * inv_freq_i}, {@code out = x cos + rotate_half(x) sin}.
 * The backward is the inverse rotation; nothing is saved.
 */
public final class Rope {
    /** Angle tables per (head dim, theta), grown to cover the largest position seen. */
    private static final ConcurrentHashMap<Key, Table> TABLES = new ConcurrentHashMap<>();

    private Rope() {}

    private record Key(int headDim, float theta) {}

    /** cos/sin of every (position, frequency) for positions [0, positions), row-major [pos, D/2]. */
    private record Table(int positions, float[] cos, float[] sin) {
        static Table build(int positions, int headDim, float theta) {
            int half = headDim / 2;
            float[] invFreq = new float[half];
            for (int i = 0; i < half; i++) {
                // float32 steps as HF computes them: theta ** (arange(0, D, 2).float() / D), then 1 / that
                float exponent = (float) (2 * i) / (float) headDim;
                invFreq[i] = 1f / (float) StrictMath.pow(theta, exponent);
            }
            float[] cos = new float[positions * half], sin = new float[positions * half];
            for (int p = 0; p < positions; p++) {
                for (int i = 0; i < half; i++) {
                    float angle = (float) p * invFreq[i];
                    cos[p * half + i] = (float) StrictMath.cos(angle);
                    sin[p * half + i] = (float) StrictMath.sin(angle);
                }
            }
            return new Table(positions, cos, sin);
        }
    }

    private static Table table(int headDim, float theta, int positions) {
        Key key = new Key(headDim, theta);
        Table t = TABLES.get(key);
        if (t != null && t.positions >= positions) return t;
        return TABLES.compute(key, (k, old) -> old != null && old.positions >= positions ? old
                : Table.build(Math.max(positions, old == null ? 0 : 2 * old.positions), headDim, theta));
    }

    /** Rotates {@code x[B, T, H, D]}; position of time step t is {@code positionOffset + t}. */
    public static Tensor apply(Tensor x, int positionOffset, float theta) {
        if (x.dim() != 4) throw new IllegalArgumentException("rope: x must be [batch, seq, heads, headDim], got " + Dense.shape(x));
        int[] s = x.shape();
        int seq = s[1], heads = s[2], headDim = s[3];
        if (headDim % 2 != 0) throw new IllegalArgumentException("rope: head dimension must be even, got " + headDim + " in " + Arrays.toString(s));
        if (positionOffset < 0) throw new IllegalArgumentException("rope: positionOffset must be >= 0, got " + positionOffset);
        if (!(theta > 0) || Float.isInfinite(theta)) throw new IllegalArgumentException("rope: theta must be a positive finite number, got " + theta);
        long last = (long) positionOffset + seq;
        if (last > Integer.MAX_VALUE / Math.max(1, headDim))
            throw new IllegalArgumentException("rope: position " + last + " is too large for head dimension " + headDim);
        Tensor xc = Dense.of(x);
        Tensor out = Tensor.empty(DType.F32, "rope", s);
        rotate(xc, out, positionOffset, theta, false);
        Dense.release(xc, x);
        if (Autograd.needsGrad(x)) out.attach(new RopeBackward(x, positionOffset, theta));
        return out;
    }

    private static void rotate(Tensor in, Tensor out, int positionOffset, float theta, boolean inverse) {
        int[] s = in.shape();
        int seq = s[1], heads = s[2], headDim = s[3];
        if (headDim == 0 || in.numel() == 0) return;
        Table t = table(headDim, theta, positionOffset + seq);
        MemorySegment xm = in.data(), ym = out.data();
        int rows = s[0] * seq;
        Parallel.forRange(rows, Math.max(1, (1 << 13) / (heads * headDim)),
                (from, to) -> RopeKernels.rotate(xm, ym, t.cos, t.sin, seq, heads, headDim, positionOffset, inverse, from, to));
    }

    private static final class RopeBackward extends GradFn {
        private final int positionOffset;
        private final float theta;

        RopeBackward(Tensor x, int positionOffset, float theta) {
            super("rope", x);
            this.positionOffset = positionOffset;
            this.theta = theta;
        }

        @Override
        protected Tensor[] backward(Tensor gIn) {
            Tensor g = Dense.of(gIn);
            Tensor gx = Tensor.empty(DType.F32, "rope.grad", g.shape());
            rotate(g, gx, positionOffset, theta, true);
            Dense.release(g, gIn);
            return new Tensor[] {gx};
        }
    }
}
