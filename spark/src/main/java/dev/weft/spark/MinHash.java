package dev.weft.spark;

import java.io.Serializable;
import java.util.SplittableRandom;

/**
 * MinHash signatures over word shingles and their LSH bands, for near-duplicate detection.
 *
 * <p>A document's shingles are its overlapping runs of {@code shingleWords} lower-cased,
 * whitespace-separated words (the whole document when it has fewer). Signature position {@code i}
 * is the minimum over the shingles of a seeded permutation of the shingle's 64-bit hash;
 * two signatures agree at a position with probability equal to the Jaccard similarity of the
 * shingle sets. The signature is cut into {@code bands} bands of {@code rows} positions: documents
 * that agree on a whole band are candidates, and a candidate pair whose signatures agree on at
 * least {@code threshold} of the positions is a near duplicate. With the defaults (5-word
 * shingles, 20 bands x 6 rows, threshold 0.8) a pair of similarity 0.8 becomes a candidate with
 * probability 1 - (1 - 0.8^6)^20 = 0.998, one of similarity 0.3 with 0.015.
 *
 * <p>Spark ML's {@code MinHashLSH} would need spark-mllib (and its breeze and netlib dependencies)
 * for what is here about a hundred lines; and it hashes integer feature indices, so shingles would
 * first go through a hashing vectoriser.
 */
public final class MinHash {
    /** The near-duplicate thresholds; {@code hashes = bands * rows}. */
    public record Params(int shingleWords, int bands, int rows, double threshold, long seed) implements Serializable {
        public static final Params DEFAULT = new Params(5, 20, 6, 0.8, 0x5eed_3a11_f00dL);

        public Params {
            if (shingleWords < 1) throw new IllegalArgumentException("--shingle-words must be >= 1, got " + shingleWords);
            if (bands < 1 || rows < 1) throw new IllegalArgumentException("--minhash-bands and --minhash-rows must be >= 1, got " + bands + " x " + rows);
            if (!(threshold > 0 && threshold <= 1)) throw new IllegalArgumentException("--near-threshold must be in (0, 1], got " + threshold);
        }

        public int hashes() {
            return bands * rows;
        }
    }

    private final Params params;
    /** Per signature position, an odd multiplier and an addend: position i orders shingles by a_i * h + b_i (mod 2^64). */
    private final long[] mul;
    private final long[] add;

    public MinHash(Params params) {
        this.params = params;
        this.mul = new long[params.hashes()];
        this.add = new long[params.hashes()];
        SplittableRandom r = new SplittableRandom(params.seed());
        for (int i = 0; i < mul.length; i++) {
            mul[i] = r.nextLong() | 1;
            add[i] = r.nextLong();
        }
    }

    /**
     * The signature of {@code text}: for each position, the high 32 bits of the smallest permuted
     * shingle hash. Each shingle's hash is fully mixed once, then each position applies an
     * affine bijection of the 64-bit values: the high bits that decide the minimum depend on all
     * bits of the mixed hash, and the inner loop is one multiply-add per position.
     */
    public int[] signature(String text) {
        long[] wordHash = wordHashes(text);
        int words = wordHash.length;
        int k = Math.min(params.shingleWords(), words);
        long[] min = new long[mul.length];
        java.util.Arrays.fill(min, Long.MAX_VALUE);
        for (int start = 0; start + k <= words; start++) {
            long h = 0;
            for (int j = start; j < start + k; j++) h = h * 31 + wordHash[j];
            h = mix(h);
            for (int s = 0; s < mul.length; s++) {
                // unsigned order, so the minimum is over the full 64-bit range
                long v = (mul[s] * h + add[s]) ^ Long.MIN_VALUE;
                if (v < min[s]) min[s] = v;
            }
        }
        int[] sig = new int[mul.length];
        for (int s = 0; s < sig.length; s++) sig[s] = (int) ((min[s] ^ Long.MIN_VALUE) >>> 32);
        return sig;
    }

    /** FNV-1a of each lower-cased word, words being separated by whitespace; one empty word for a blank text. */
    private static long[] wordHashes(String text) {
        long[] out = new long[16];
        int n = 0;
        long h = 0;
        boolean inWord = false;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (Character.isWhitespace(c)) {
                if (inWord) {
                    if (n == out.length) out = java.util.Arrays.copyOf(out, n * 2);
                    out[n++] = h;
                    inWord = false;
                }
                continue;
            }
            if (!inWord) {
                h = 0xcbf29ce484222325L;
                inWord = true;
            }
            h ^= Character.toLowerCase(c);
            h *= 0x100000001b3L;
        }
        if (inWord) {
            if (n == out.length) out = java.util.Arrays.copyOf(out, n + 1);
            out[n++] = h;
        }
        if (n == 0) return new long[]{0xcbf29ce484222325L};
        return java.util.Arrays.copyOf(out, n);
    }

    /** One bucket key per band: equal keys for two signatures that agree on that whole band (or, rarely, collide). */
    public long[] bandKeys(int[] signature) {
        long[] keys = new long[params.bands()];
        for (int b = 0; b < keys.length; b++) {
            long h = b;
            for (int r = 0; r < params.rows(); r++) h = mix(h * 0x9E3779B97F4A7C15L + signature[b * params.rows() + r]);
            keys[b] = h;
        }
        return keys;
    }

    /** The share of positions where the signatures agree: an estimate of the shingle sets' Jaccard similarity. */
    public static double similarity(int[] a, int[] b) {
        int same = 0;
        for (int i = 0; i < a.length; i++) if (a[i] == b[i]) same++;
        return (double) same / a.length;
    }

    public boolean nearDuplicate(int[] a, int[] b) {
        return similarity(a, b) >= params.threshold();
    }

    /** The splitmix64 finaliser: every input bit affects every output bit. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }
}
