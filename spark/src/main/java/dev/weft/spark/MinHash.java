package dev.weft.spark;

import java.io.Serializable;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * MinHash signatures over word shingles and their LSH bands, for near-duplicate detection.
 *
 * <p>A document's shingles are its overlapping runs of {@code shingleWords} lower-cased,
 * whitespace-separated words (the whole document when it has fewer). Signature position {@code i}
 * is the minimum over the shingles of a 64-bit mix of the shingle's hash with seed {@code i};
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
    private final long[] seeds;

    public MinHash(Params params) {
        this.params = params;
        this.seeds = new long[params.hashes()];
        SplittableRandom r = new SplittableRandom(params.seed());
        for (int i = 0; i < seeds.length; i++) seeds[i] = r.nextLong();
    }

    /** The signature of {@code text}: for each seed, the high 32 bits of the smallest mixed shingle hash. */
    public int[] signature(String text) {
        String[] words = text.toLowerCase(Locale.ROOT).trim().split("\\s+");
        long[] wordHash = new long[words.length];
        for (int i = 0; i < words.length; i++) wordHash[i] = fnv1a(words[i]);
        int k = Math.min(params.shingleWords(), words.length);
        long[] min = new long[seeds.length];
        java.util.Arrays.fill(min, Long.MAX_VALUE);
        for (int start = 0; start + k <= words.length; start++) {
            long h = 0;
            for (int j = start; j < start + k; j++) h = mix(h * 31 + wordHash[j]);
            for (int s = 0; s < seeds.length; s++) {
                // unsigned order, so the minimum is over the full 64-bit range
                long v = mix(h ^ seeds[s]) ^ Long.MIN_VALUE;
                if (v < min[s]) min[s] = v;
            }
        }
        int[] sig = new int[seeds.length];
        for (int s = 0; s < sig.length; s++) sig[s] = (int) (min[s] >>> 32);
        return sig;
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

    private static long fnv1a(String s) {
        long h = 0xcbf29ce484222325L;
        for (int i = 0; i < s.length(); i++) {
            h ^= s.charAt(i);
            h *= 0x100000001b3L;
        }
        return h;
    }

    /** The splitmix64 finaliser: every input bit affects every output bit. */
    static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }
}
