package dev.weft.spark;

import dev.weft.spark.Documents.Doc;
import dev.weft.spark.Documents.SourceFile;
import dev.weft.trainer.data.TokenShard;
import dev.weft.trainer.data.Tokenizer;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.storage.StorageLevel;
import scala.Tuple2;

import java.io.IOException;
import java.io.PrintStream;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * {@code weft prepare --spark-master}: the local prepare's shards, made by a Spark job that also
 * cleans the corpus.
 *
 * <p>In partitions, each document is NFC-normalised, dropped when shorter than
 * {@code minChars}, dropped when its content (SHA-256) equals an earlier document's, dropped when
 * it is a near duplicate of an earlier document ({@link MinHash}), and tokenised. "Earlier" is
 * corpus order, so the first copy is the one kept. The driver then joins the kept documents with
 * end-of-text in corpus order, splits them ({@link PrepareOptions.Split}) and writes
 * {@code train.bin}, {@code val.bin} and {@code manifest.json} into the output directory.
 *
 * <p>With {@code --dedup none}, {@code --split tail} and no document shorter than
 * {@code --min-chars}, the shards equal the local prepare's of the same files, token for token:
 * a text file is one document there too, and its files are taken in the same order.
 *
 * <p>The driver holds all kept tokens before writing, as the local prepare does: 4 bytes a
 * token, the bound on one run.
 */
public final class SparkPrepare {
    public static final String MANIFEST_FILE = "manifest.json";

    private SparkPrepare() {}

    /** Why a document is not in the shards. */
    enum Dropped { TOO_SHORT, EXACT_DUPLICATE, NEAR_DUPLICATE }

    /**
     * Checks that every input exists, before a session is started for them: a typo costs no Spark
     * start-up. {@code sparkConf}'s {@code spark.hadoop.*} settings (credentials, endpoints) apply,
     * as they will in Spark. Returns the number of input files.
     */
    public static int checkInputs(PrepareOptions o, Map<String, String> sparkConf) {
        org.apache.hadoop.conf.Configuration conf = new org.apache.hadoop.conf.Configuration();
        sparkConf.forEach((k, v) -> {
            if (k.startsWith("spark.hadoop.")) conf.set(k.substring("spark.hadoop.".length()), v);
        });
        return Documents.discover(o.inputs(), o.format(), conf).size();
    }

    /** Runs the preparation on {@code spark}'s cluster; {@code log} gets progress and may be null. */
    public static PrepareReport run(SparkSession spark, PrepareOptions o, PrintStream log) {
        PrintStream out = log != null ? log : new PrintStream(PrintStream.nullOutputStream());
        Tokenizer tok = Tokenizer.byName(o.tokenizer());
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        List<SourceFile> files = Documents.discover(o.inputs(), o.format(), spark.sparkContext().hadoopConfiguration());
        try {
            Files.createDirectories(o.out());
            Files.deleteIfExists(o.out().resolve(MANIFEST_FILE));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare output directory " + o.out() + ": " + e, e);
        }
        long start = System.nanoTime();
        long inputBytes = files.stream().mapToLong(SourceFile::bytes).sum();
        out.printf("prepare: %d file(s), %.1f MiB, on %s (%d cores)%n", files.size(), inputBytes / 1048576.0, sc.master(), sc.defaultParallelism());

        boolean nfc = o.nfc();
        JavaRDD<Doc> docs = Documents.read(spark, files, o.format(), o.column())
                .map(d -> nfc ? new Doc(d.ordinal(), nfcOf(d.text())) : d);
        boolean dedup = o.dedup() != PrepareOptions.Dedup.NONE;
        if (dedup) docs = docs.persist(StorageLevel.MEMORY_AND_DISK_SER());
        Map<Long, Dropped> duplicates = dedup ? duplicates(sc, docs, o) : Map.of();
        Broadcast<Map<Long, Dropped>> dropped = sc.broadcast(new HashMap<>(duplicates));

        String tokName = o.tokenizer();
        int minChars = o.minChars();
        sc.setCallSite("tokenise");
        List<PartitionTokens> parts = docs.mapPartitions(it -> List.of(tokenise(it, Tokenizer.byName(tokName), minChars, dropped.value())).iterator())
                .collect();
        if (dedup) docs.unpersist(false);
        dropped.destroy();
        return write(o, tok, files, inputBytes, parts, out, (System.nanoTime() - start) / 1e9);
    }

    private static String nfcOf(String text) {
        return Normalizer.isNormalized(text, Normalizer.Form.NFC) ? text : Normalizer.normalize(text, Normalizer.Form.NFC);
    }

    /** What dedup needs of a document: its place, content hash and (for near dedup) MinHash signature. */
    record DocKey(long ordinal, ContentHash hash, int[] signature) implements Serializable {}

    /** The first 128 bits of SHA-256 of a document's UTF-8 text. */
    record ContentHash(long hi, long lo) implements Serializable {
        static ContentHash of(String text) {
            MessageDigest sha;
            try {
                sha = MessageDigest.getInstance("SHA-256");
            } catch (NoSuchAlgorithmException e) {
                throw new IllegalStateException("the JDK lacks SHA-256", e);
            }
            byte[] d = sha.digest(text.getBytes(StandardCharsets.UTF_8));
            long hi = 0, lo = 0;
            for (int i = 0; i < 8; i++) hi = (hi << 8) | (d[i] & 0xff);
            for (int i = 8; i < 16; i++) lo = (lo << 8) | (d[i] & 0xff);
            return new ContentHash(hi, lo);
        }

        /** A uniform number in [0, 1) from the hash: the document is val when it is below valFraction. */
        double unit() {
            return (hi >>> 11) * 0x1.0p-53;
        }
    }

    /** The ordinals of the documents that exact and (if asked) near dedup remove. */
    private static Map<Long, Dropped> duplicates(JavaSparkContext sc, JavaRDD<Doc> docs, PrepareOptions o) {
        boolean near = o.dedup() == PrepareOptions.Dedup.NEAR;
        MinHash.Params params = o.nearDup();
        int minChars = o.minChars();
        JavaRDD<DocKey> keys = docs.filter(d -> d.text().length() >= minChars).mapPartitions(it -> {
            MinHash mh = near ? new MinHash(params) : null;
            List<DocKey> ks = new ArrayList<>();
            while (it.hasNext()) {
                Doc d = it.next();
                ks.add(new DocKey(d.ordinal(), ContentHash.of(d.text()), near ? mh.signature(d.text()) : null));
            }
            return ks.iterator();
        });
        sc.setCallSite("dedup: exact");
        JavaPairRDD<ContentHash, Iterable<DocKey>> byContent = keys.mapToPair(k -> new Tuple2<>(k.hash(), k)).groupByKey()
                .persist(StorageLevel.MEMORY_AND_DISK_SER());
        Map<Long, Dropped> dropped = new HashMap<>();
        for (long ord : byContent.flatMap(g -> allButFirst(g._2())).collect()) dropped.put(ord, Dropped.EXACT_DUPLICATE);
        if (near) {
            sc.setCallSite("dedup: near (MinHash LSH)");
            JavaRDD<DocKey> firsts = byContent.map(g -> first(g._2()));
            List<Long> nearDups = firsts.flatMapToPair(k -> {
                        long[] bands = new MinHash(params).bandKeys(k.signature());
                        List<Tuple2<Long, DocKey>> out = new ArrayList<>(bands.length);
                        for (long b : bands) out.add(new Tuple2<>(b, k));
                        return out.iterator();
                    })
                    .groupByKey()
                    .flatMap(bucket -> laterNearDuplicates(bucket._2(), new MinHash(params)))
                    .distinct()
                    .collect();
            for (long ord : nearDups) dropped.put(ord, Dropped.NEAR_DUPLICATE);
        }
        byContent.unpersist(false);
        return dropped;
    }

    private static DocKey first(Iterable<DocKey> group) {
        DocKey best = null;
        for (DocKey k : group) if (best == null || k.ordinal() < best.ordinal()) best = k;
        return best;
    }

    private static Iterator<Long> allButFirst(Iterable<DocKey> group) {
        long keep = first(group).ordinal();
        List<Long> rest = new ArrayList<>();
        for (DocKey k : group) if (k.ordinal() != keep) rest.add(k.ordinal());
        return rest.iterator();
    }

    /** Most earlier bucket members a document is compared with: bounds the work of a crowded bucket. */
    static final int MAX_COMPARISONS = 64;

    /** In one LSH bucket, the documents that are near duplicates of an earlier member. */
    private static Iterator<Long> laterNearDuplicates(Iterable<DocKey> bucket, MinHash mh) {
        List<DocKey> members = new ArrayList<>();
        bucket.forEach(members::add);
        if (members.size() < 2) return java.util.Collections.emptyIterator();
        members.sort((a, b) -> Long.compare(a.ordinal(), b.ordinal()));
        List<Long> dups = new ArrayList<>();
        for (int j = 1; j < members.size(); j++) {
            for (int i = Math.max(0, j - MAX_COMPARISONS); i < j; i++) {
                if (mh.nearDuplicate(members.get(i).signature(), members.get(j).signature())) {
                    dups.add(members.get(j).ordinal());
                    break;
                }
            }
        }
        return dups.iterator();
    }

    /** One partition's kept documents, tokenised, with what it dropped. */
    record PartitionTokens(long[] ordinals, double[] splitUnit, int[] lengths, int[] tokens,
                           long docsRead, long charsRead, long[] droppedDocs, long[] droppedTokens) implements Serializable {}

    private static PartitionTokens tokenise(Iterator<Doc> it, Tokenizer tok, int minChars, Map<Long, Dropped> dropped) {
        LongList ordinals = new LongList();
        List<Double> units = new ArrayList<>();
        IntList lengths = new IntList();
        IntList tokens = new IntList();
        long docs = 0, chars = 0;
        long[] droppedDocs = new long[Dropped.values().length];
        long[] droppedTokens = new long[Dropped.values().length];
        while (it.hasNext()) {
            Doc d = it.next();
            docs++;
            chars += d.text().length();
            int[] ids = tok.encode(d.text());
            Dropped why = d.text().length() < minChars ? Dropped.TOO_SHORT : dropped.get(d.ordinal());
            if (why != null) {
                droppedDocs[why.ordinal()]++;
                droppedTokens[why.ordinal()] += ids.length;
                continue;
            }
            ordinals.add(d.ordinal());
            units.add(ContentHash.of(d.text()).unit());
            lengths.add(ids.length);
            tokens.addAll(ids);
        }
        double[] u = new double[units.size()];
        for (int i = 0; i < u.length; i++) u[i] = units.get(i);
        return new PartitionTokens(ordinals.toArray(), u, lengths.toArray(), tokens.toArray(), docs, chars, droppedDocs, droppedTokens);
    }

    /** Joins the partitions' documents in corpus order, splits them, writes the shards and the manifest. */
    private static PrepareReport write(PrepareOptions o, Tokenizer tok, List<SourceFile> files, long inputBytes,
                                       List<PartitionTokens> parts, PrintStream out, double seconds) {
        IntList train = new IntList();
        IntList val = new IntList();
        long docsRead = 0, keptDocs = 0, keptTokens = 0, trainDocs = 0, valDocs = 0;
        long[] droppedDocs = new long[Dropped.values().length];
        long[] droppedTokens = new long[Dropped.values().length];
        long lastOrdinal = Long.MIN_VALUE;
        for (PartitionTokens p : parts) {
            docsRead += p.docsRead();
            for (int r = 0; r < droppedDocs.length; r++) {
                droppedDocs[r] += p.droppedDocs()[r];
                droppedTokens[r] += p.droppedTokens()[r];
            }
            int at = 0;
            for (int d = 0; d < p.ordinals().length; d++) {
                if (p.ordinals()[d] <= lastOrdinal) {
                    throw new IllegalStateException("documents out of corpus order: " + p.ordinals()[d] + " after " + lastOrdinal);
                }
                lastOrdinal = p.ordinals()[d];
                boolean toVal = o.split() == PrepareOptions.Split.HASH && p.splitUnit()[d] < o.valFraction();
                IntList side = toVal ? val : train;
                if ((toVal ? valDocs : trainDocs) > 0) side.add(tok.endOfText()); // between documents, as the local prepare joins files
                side.addAll(p.tokens(), at, p.lengths()[d]);
                at += p.lengths()[d];
                if (toVal) valDocs++; else trainDocs++;
                keptDocs++;
                keptTokens += p.lengths()[d];
            }
        }
        int[] trainTokens, valTokens;
        if (o.split() == PrepareOptions.Split.TAIL) {
            long total = train.size;
            long v = Math.round(total * o.valFraction());
            trainTokens = Arrays.copyOfRange(train.data, 0, (int) (total - v));
            valTokens = Arrays.copyOfRange(train.data, (int) (total - v), (int) total);
        } else {
            trainTokens = train.toArray();
            valTokens = val.toArray();
        }
        if (trainTokens.length < 2 || valTokens.length < 2) {
            throw new IllegalArgumentException("the prepared corpus has " + trainTokens.length + " train and " + valTokens.length
                    + " val " + tok.name() + " tokens after cleaning, but each side needs at least 2 (use more text, another"
                    + " --val-fraction" + (o.split() == PrepareOptions.Split.HASH ? " or --split tail" : "") + ")");
        }
        Path trainFile = o.out().resolve("train.bin");
        Path valFile = o.out().resolve("val.bin");
        TokenShard.write(trainFile, trainTokens, tok.vocabSize(), tok.name());
        TokenShard.write(valFile, valTokens, tok.vocabSize(), tok.name());
        int trainCrc, valCrc;
        try (TokenShard t = TokenShard.open(trainFile); TokenShard v = TokenShard.open(valFile)) {
            trainCrc = t.payloadCrc32c();
            valCrc = v.payloadCrc32c();
        }
        PrepareReport report = new PrepareReport(o.out(), trainFile, valFile, o.out().resolve(MANIFEST_FILE), tok.name(),
                tok.vocabSize(), tok.endOfText(), files.size(), inputBytes, docsRead, keptDocs, keptTokens,
                counts(droppedDocs), counts(droppedTokens), trainTokens.length, trainCrc, valTokens.length, valCrc, seconds);
        PrepareManifest.write(report, o, files);
        out.printf("prepare: %d of %d documents kept (%s), %d %s tokens: %d train, %d val -> %s (%.1f s)%n",
                keptDocs, docsRead, report.droppedSummary(), keptTokens, tok.name(), trainTokens.length, valTokens.length, o.out(), seconds);
        return report;
    }

    private static Map<String, Long> counts(long[] byReason) {
        Map<String, Long> m = new java.util.LinkedHashMap<>();
        for (Dropped r : Dropped.values()) m.put(r.name().toLowerCase(java.util.Locale.ROOT), byReason[r.ordinal()]);
        return m;
    }

    private static final class IntList {
        int[] data = new int[1024];
        int size;

        void add(int v) {
            grow(1);
            data[size++] = v;
        }

        void addAll(int[] v) {
            addAll(v, 0, v.length);
        }

        void addAll(int[] v, int from, int len) {
            grow(len);
            System.arraycopy(v, from, data, size, len);
            size += len;
        }

        private void grow(int extra) {
            long needed = (long) size + extra;
            if (needed > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("the prepared corpus exceeds " + (Integer.MAX_VALUE - 8) + " tokens, the most one run holds; split the input");
            }
            if (needed > data.length) data = Arrays.copyOf(data, (int) Math.min(Integer.MAX_VALUE - 8, Math.max(needed, data.length * 2L)));
        }

        int[] toArray() {
            return Arrays.copyOf(data, size);
        }
    }

    private static final class LongList {
        long[] data = new long[64];
        int size;

        void add(long v) {
            if (size == data.length) data = Arrays.copyOf(data, size * 2);
            data[size++] = v;
        }

        long[] toArray() {
            return Arrays.copyOf(data, size);
        }
    }
}
