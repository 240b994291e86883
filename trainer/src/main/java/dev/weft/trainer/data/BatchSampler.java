package dev.weft.trainer.data;

import java.util.SplittableRandom;

/**
 * Cuts a token shard into training micro-batches as a pure function of
 * (seed, step, micro-step, dp rank), so a resumed or resharded run sees exactly the tokens it
 * would have seen.
 *
 * <p><b>Windows.</b> A window is {@code seqLen + 1} consecutive tokens: inputs are its first
 * {@code seqLen}, targets its last {@code seqLen}. Epoch {@code e} uses the
 * {@code W = floor((count - 1) / seqLen)} windows starting at {@code offset_e + j * seqLen},
 * {@code j < W}; neighbouring windows share only the boundary token (one's last target is the
 * next one's first input). The offset is drawn per epoch from {@code [0, slack]}, where
 * {@code slack = count - 1 - W * seqLen < seqLen} is the tail no window covers, so over epochs the
 * windows shift and every token gets seen at every position it can, while W stays the same.
 *
 * <p><b>Order.</b> Each epoch visits its windows in a random permutation (Fisher-Yates). Epoch
 * {@code e}'s offset and permutation come from a {@link SplittableRandom} seeded by mixing
 * {@code seed} and {@code e}; no global RNG is involved.
 *
 * <p><b>Steps.</b> Concatenating the epochs' permutations gives one endless stream of windows.
 * Optimizer step {@code s} takes the {@code G = dpSize * microBatch * accumulation} windows at
 * stream positions {@code [s*G, (s+1)*G)} (crossing into the next epoch when one runs out).
 * Within a step, micro-step {@code m} of rank {@code r} takes rows
 * {@code [(m*dpSize + r)*microBatch, +microBatch)}: concatenating the ranks of a micro-step gives
 * the micro-batch a single rank with {@code dpSize*microBatch} rows would get, and any dp / micro
 * batch / accumulation split with the same G trains on the same global batch.
 *
 * <p><b>Evaluation.</b> {@link #evalBatch(int)} reads the windows at offset 0 in file order,
 * {@code microBatch} per batch (the last may have fewer rows), independent of the seed.
 *
 * <p>Thread-safe; the only state is a cache of recent permutations.
 */
public final class BatchSampler implements MicroBatches {
    /** One micro-batch: {@code rows} sequences of {@code seqLen} tokens, row-major. */
    public record Batch(int[] inputs, int[] targets, int rows, int seqLen) {}

    private final TokenShard shard;
    private final int seqLen;
    private final int microBatch;
    private final int dpSize;
    private final int accumulation;
    private final long seed;
    private final int windows;
    private final long slack;
    /** The two most recent epochs' orders: a step may straddle an epoch boundary. */
    private EpochOrder recent;
    private EpochOrder previous;

    private record EpochOrder(long epoch, long offset, int[] permutation) {}

    /** A sampler for training without gradient accumulation (one micro-step per optimizer step). */
    public BatchSampler(TokenShard shard, int seqLen, int microBatch, int dpSize, long seed) {
        this(shard, seqLen, microBatch, dpSize, 1, seed);
    }

    /**
     * A sampler whose optimizer step consumes {@code dpSize * microBatch * accumulation} windows,
     * micro-steps {@code 0 .. accumulation-1} on each rank.
     */
    public BatchSampler(TokenShard shard, int seqLen, int microBatch, int dpSize, int accumulation, long seed) {
        positive("seqLen", seqLen);
        positive("microBatch", microBatch);
        positive("dpSize", dpSize);
        positive("accumulation", accumulation);
        long w = (shard.count() - 1) / seqLen;
        if (shard.count() < seqLen + 1L) {
            throw new IllegalArgumentException("token shard " + shard.file() + " has " + shard.count()
                    + " tokens, too few for one sequence: seqLen " + seqLen + " needs at least " + (seqLen + 1L)
                    + " (use a shorter seqLen, more text, or a larger validation fraction for the val shard)");
        }
        if (w > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("token shard " + shard.file() + " has " + w
                    + " windows of seqLen " + seqLen + "; at most " + (Integer.MAX_VALUE - 8) + " supported");
        }
        this.shard = shard;
        this.seqLen = seqLen;
        this.microBatch = microBatch;
        this.dpSize = dpSize;
        this.accumulation = accumulation;
        this.seed = seed;
        this.windows = (int) w;
        this.slack = shard.count() - 1 - w * seqLen;
    }

    private static void positive(String name, int v) {
        if (v <= 0) throw new IllegalArgumentException(name + " must be positive, got " + v);
    }

    /** Windows per epoch. */
    public int windows() {
        return windows;
    }

    /** Rows of one optimizer step's global batch under this sampler's accumulation. */
    public long globalBatchRows() {
        return (long) dpSize * microBatch * accumulation;
    }

    /**
     * Whole optimizer steps per epoch when each step accumulates {@code accumulation} micro-steps
     * on each of the dp ranks; 0 when one global batch is larger than the shard.
     */
    public long stepsPerEpoch(int accumulation) {
        positive("accumulation", accumulation);
        return windows / ((long) dpSize * microBatch * accumulation);
    }

    /** Micro-batch {@code microStep} of optimizer step {@code step} for rank {@code dpRank}. */
    @Override
    public Batch batch(long step, int microStep, int dpRank) {
        if (step < 0) throw new IllegalArgumentException("step must be >= 0, got " + step);
        if (microStep < 0 || microStep >= accumulation) {
            throw new IllegalArgumentException("microStep " + microStep + " outside [0, " + accumulation
                    + ") (this sampler was built for accumulation " + accumulation + ")");
        }
        if (dpRank < 0 || dpRank >= dpSize) {
            throw new IllegalArgumentException("dpRank " + dpRank + " outside [0, " + dpSize + ")");
        }
        long first = Math.multiplyExact(step, globalBatchRows()) + ((long) microStep * dpSize + dpRank) * microBatch;
        int[] inputs = new int[microBatch * seqLen];
        int[] targets = new int[microBatch * seqLen];
        int[] window = new int[seqLen + 1];
        for (int row = 0; row < microBatch; row++) {
            long position = first + row;
            EpochOrder order = order(position / windows);
            long start = order.offset + (long) order.permutation[(int) (position % windows)] * seqLen;
            copyWindow(start, window, inputs, targets, row);
        }
        return new Batch(inputs, targets, microBatch, seqLen);
    }

    /** Number of evaluation batches covering every window once. */
    public int evalBatches() {
        return (int) ((windows + (long) microBatch - 1) / microBatch);
    }

    /** Evaluation batch {@code index}: windows {@code [index*microBatch, ...)} at offset 0, in file order. */
    public Batch evalBatch(int index) {
        if (index < 0 || index >= evalBatches()) {
            throw new IllegalArgumentException("eval batch index " + index + " outside [0, " + evalBatches() + ")");
        }
        int firstWindow = index * microBatch;
        int rows = Math.min(microBatch, windows - firstWindow);
        int[] inputs = new int[rows * seqLen];
        int[] targets = new int[rows * seqLen];
        int[] window = new int[seqLen + 1];
        for (int row = 0; row < rows; row++) {
            copyWindow((long) (firstWindow + row) * seqLen, window, inputs, targets, row);
        }
        return new Batch(inputs, targets, rows, seqLen);
    }

    private void copyWindow(long start, int[] window, int[] inputs, int[] targets, int row) {
        shard.read(start, window, 0, seqLen + 1);
        System.arraycopy(window, 0, inputs, row * seqLen, seqLen);
        System.arraycopy(window, 1, targets, row * seqLen, seqLen);
    }

    private synchronized EpochOrder order(long epoch) {
        if (recent != null && recent.epoch == epoch) return recent;
        if (previous != null && previous.epoch == epoch) return previous;
        EpochOrder fresh = shuffle(epoch);
        previous = recent;
        recent = fresh;
        return fresh;
    }

    private EpochOrder shuffle(long epoch) {
        SplittableRandom random = new SplittableRandom(mix(seed ^ mix(epoch + 0x5EEDL)));
        long offset = slack == 0 ? 0 : random.nextLong(slack + 1);
        int[] perm = new int[windows];
        for (int i = 0; i < windows; i++) perm[i] = i;
        for (int i = windows - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        return new EpochOrder(epoch, offset, perm);
    }

    /** SplitMix64's finaliser: spreads nearby seeds and epochs over unrelated random streams. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
