package dev.weft.spark;

import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * What {@code weft prepare --spark-master} does, as the manifest records it.
 *
 * @param master     Spark master URL: {@code local[N]}, {@code local-cluster[...]}, {@code spark://}, {@code yarn}, {@code k8s://}
 * @param inputs     files, directories or globs on any Hadoop filesystem, taken in the order given
 * @param format     how a file holds documents
 * @param column     the text column of JSONL objects and Parquet rows (unused for text)
 * @param out        the local directory that receives the shards and the manifest
 * @param split      how documents are divided between train and val
 * @param minChars   documents shorter than this (in chars, after NFC) are dropped; 0 keeps all
 * @param nfc        whether text is NFC-normalised before anything else
 * @param dedup      which duplicate removals run
 * @param nearDup    the near-duplicate thresholds
 */
public record PrepareOptions(String master, List<String> inputs, Format format, String column, Path out,
                             String tokenizer, double valFraction, Split split, int minChars, boolean nfc,
                             Dedup dedup, MinHash.Params nearDup) {
    public PrepareOptions {
        inputs = List.copyOf(inputs);
        if (inputs.isEmpty()) throw new IllegalArgumentException("no --input given");
        if (!(valFraction > 0 && valFraction < 1)) {
            throw new IllegalArgumentException("valFraction must be in (0, 1), got " + valFraction);
        }
        if (minChars < 0) throw new IllegalArgumentException("--min-chars must be >= 0, got " + minChars);
        if (master == null || master.isBlank()) throw new IllegalArgumentException("--spark-master is empty");
    }

    /** How documents are read from one input file. */
    public enum Format {
        /** the whole file is one document, as in the local prepare */
        TEXT,
        /** one JSON object per line; the document is its {@code column} string */
        JSONL,
        /** one document per row, from its {@code column} */
        PARQUET;

        public static Format parse(String s) {
            for (Format f : values()) if (f.name().equalsIgnoreCase(s)) return f;
            throw new IllegalArgumentException("unknown --format '" + s + "'; allowed: text, jsonl, parquet");
        }

        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** How documents are divided between the train and val shards. */
    public enum Split {
        /**
         * the local prepare's: all kept documents joined by end-of-text in input order, the last
         * valFraction of the tokens is val (a document may straddle the cut)
         */
        TAIL,
        /**
         * a document is val when its content hash falls below valFraction: each document lies
         * wholly on one side, and adding documents never moves another one
         */
        HASH;

        public static Split parse(String s) {
            for (Split f : values()) if (f.name().equalsIgnoreCase(s)) return f;
            throw new IllegalArgumentException("unknown --split '" + s + "'; allowed: tail, hash");
        }

        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** Which duplicate removals run: exact (by content hash) and near (MinHash LSH); near implies exact. */
    public enum Dedup {
        NONE, EXACT, NEAR;

        public static Dedup parse(String s) {
            for (Dedup f : values()) if (f.name().equalsIgnoreCase(s)) return f;
            throw new IllegalArgumentException("unknown --dedup '" + s + "'; allowed: none, exact, near (near also removes exact duplicates)");
        }

        public String label() {
            return name().toLowerCase(Locale.ROOT);
        }
    }
}
