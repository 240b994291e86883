package dev.weft.spark;

import dev.weft.trainer.data.TokenShard;
import org.apache.spark.sql.Encoders;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link SparkPrepareCases} in {@code local[2]} (two task threads in this JVM), plus the input
 * formats and the hash split, which do not depend on where tasks run.
 */
class LocalSparkPrepareTest extends SparkPrepareCases {
    @BeforeAll
    static void startSpark() {
        spark = SparkStart.session("local[2]", "weft test", Map.of(), null);
    }

    /** Byte-tokenizer tokens of documents joined by end-of-text (0), as bytes, computed without weft. */
    private static byte[] joined(List<String> docs) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (int i = 0; i < docs.size(); i++) {
            if (i > 0) b.write(0);
            b.writeBytes(docs.get(i).getBytes(StandardCharsets.UTF_8));
        }
        return b.toByteArray();
    }

    private static byte[] tokens(Path shard) {
        try (TokenShard s = TokenShard.open(shard)) {
            byte[] out = new byte[(int) s.count()];
            for (int i = 0; i < out.length; i++) out[i] = (byte) s.get(i);
            return out;
        }
    }

    private PrepareOptions with(PrepareOptions.Format format, PrepareOptions.Split split, double valFraction, String... inputs) {
        return new PrepareOptions(spark.sparkContext().master(), List.of(inputs), format, "text", dir.resolve("out"),
                "byte", valFraction, split, 0, true, PrepareOptions.Dedup.NONE, MinHash.Params.DEFAULT);
    }

    @Test
    void theHashSplitPutsEachDocumentWhollyOnTheSideItsSha256Picks() throws Exception {
        Path corpus = Files.createDirectories(dir.resolve("corpus"));
        List<String> docs = slices(24, 300);
        for (int i = 0; i < docs.size(); i++) Files.writeString(corpus.resolve(String.format("d%02d.txt", i)), docs.get(i));
        SparkPrepare.run(spark, with(PrepareOptions.Format.TEXT, PrepareOptions.Split.HASH, 0.3, corpus.toString()), null);
        List<String> train = new ArrayList<>(), val = new ArrayList<>();
        for (String d : docs) {
            byte[] sha = MessageDigest.getInstance("SHA-256").digest(d.getBytes(StandardCharsets.UTF_8));
            long hi = 0;
            for (int i = 0; i < 8; i++) hi = (hi << 8) | (sha[i] & 0xff);
            (Long.compareUnsigned(hi, (long) (0.3 * 0x1p53) << 11) < 0 ? val : train).add(d);
        }
        assertFalse(train.isEmpty() || val.isEmpty(), "24 documents land on both sides");
        assertArrayEquals(joined(train), tokens(dir.resolve("out/train.bin")));
        assertArrayEquals(joined(val), tokens(dir.resolve("out/val.bin")));
    }

    @Test
    void jsonlRowsAreDocumentsInFileAndLineOrderAndAreNfcNormalised() throws Exception {
        Path in = Files.createDirectories(dir.resolve("jsonl"));
        Files.writeString(in.resolve("a.jsonl"), "{\"text\": \"Cafe\\u0301 first, \", \"id\": 1}\n\n{\"text\": \"second row\"}\n");
        Files.writeString(in.resolve("b.jsonl"), "{\"id\": 3, \"text\": \"third, from the next file\"}\n");
        Files.writeString(in.resolve("skipped.txt"), "{\"text\": \"not a .jsonl file\"}\n");
        SparkPrepare.run(spark, with(PrepareOptions.Format.JSONL, PrepareOptions.Split.TAIL, 0.2, in.toString()), null);
        byte[] all = joined(List.of("Caf\u00e9 first, ", "second row", "third, from the next file"));
        byte[] train = tokens(dir.resolve("out/train.bin")), val = tokens(dir.resolve("out/val.bin"));
        ByteArrayOutputStream both = new ByteArrayOutputStream();
        both.writeBytes(train);
        both.writeBytes(val);
        assertArrayEquals(all, both.toByteArray());
        assertEquals(Math.round(all.length * 0.2), val.length);
    }

    @Test
    void aJsonlRowWithoutTheColumnIsNamedInTheError() throws IOException {
        Path f = Files.writeString(dir.resolve("bad.jsonl"), "{\"text\": \"fine\"}\n{\"body\": \"no text field\"}\n");
        Exception e = assertThrows(Exception.class,
                () -> SparkPrepare.run(spark, with(PrepareOptions.Format.JSONL, PrepareOptions.Split.TAIL, 0.2, f.toString()), null));
        String m = SparkStart.userMessage(e);
        assertNotNull(m, e.toString());
        assertTrue(m.contains("bad.jsonl line 2 has no string field 'text'"), m);
    }

    @Test
    void parquetRowsAreDocumentsInRowOrder() {
        List<String> rows = new ArrayList<>();
        for (int i = 0; i < 40; i++) rows.add("row " + i + " of the parquet input; " + "x".repeat(i));
        Path pq = dir.resolve("pq");
        spark.createDataset(rows, Encoders.STRING()).toDF("text").coalesce(1).write().parquet(pq.toString());
        SparkPrepare.run(spark, with(PrepareOptions.Format.PARQUET, PrepareOptions.Split.TAIL, 0.1, pq.toString()), null);
        byte[] all = joined(rows);
        byte[] train = tokens(dir.resolve("out/train.bin")), val = tokens(dir.resolve("out/val.bin"));
        ByteArrayOutputStream both = new ByteArrayOutputStream();
        both.writeBytes(train);
        both.writeBytes(val);
        assertArrayEquals(all, both.toByteArray());
    }
}
