package dev.weft.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.weft.trainer.data.Prepare;
import dev.weft.trainer.data.TokenShard;
import dev.weft.trainer.data.Tokenizer;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The Spark prepare against the local one, run by a subclass on one master. The session is
 * shared by a class's tests: starting Spark costs seconds, local-cluster's executors more.
 */
abstract class SparkPrepareCases {
    static SparkSession spark;

    @TempDir
    Path dir;

    static Path repoRoot() {
        for (Path p = Path.of(System.getProperty("user.dir")).toAbsolutePath(); p != null; p = p.getParent())
            if (Files.exists(p.resolve("config/jvm.options"))) return p;
        throw new IllegalStateException("no config/jvm.options above " + System.getProperty("user.dir"));
    }

    /** {@code n} consecutive slices of the bundled Shakespeare, each about {@code chars} long and starting at a line. */
    static List<String> slices(int n, int chars) throws IOException {
        String all = Files.readString(repoRoot().resolve("examples/data/tinyshakespeare.txt"));
        List<String> out = new java.util.ArrayList<>();
        int at = 0;
        for (int i = 0; i < n; i++) {
            int end = all.indexOf('\n', at + chars) + 1;
            out.add(all.substring(at, end));
            at = end;
        }
        return out;
    }

    static PrepareOptions options(Path out, PrepareOptions.Dedup dedup, String tokenizer, String... inputs) {
        return new PrepareOptions(spark.sparkContext().master(), List.of(inputs), PrepareOptions.Format.TEXT, "text", out,
                tokenizer, 0.1, PrepareOptions.Split.TAIL, 0, true, dedup, MinHash.Params.DEFAULT);
    }

    static void assertSameShards(Path expectedDir, Path actualDir) throws IOException {
        for (String f : List.of(Prepare.TRAIN_FILE, Prepare.VAL_FILE)) {
            try (TokenShard e = TokenShard.open(expectedDir.resolve(f)); TokenShard a = TokenShard.open(actualDir.resolve(f))) {
                assertEquals(e.count(), a.count(), f + " token count");
                for (long i = 0; i < e.count(); i++) {
                    if (e.get(i) != a.get(i)) fail(f + " differs at token " + i + ": local " + e.get(i) + ", spark " + a.get(i));
                }
            }
            assertEquals(-1, Files.mismatch(expectedDir.resolve(f), actualDir.resolve(f)), f + " bytes");
        }
    }

    @AfterAll
    static void stopSpark() {
        if (spark != null) spark.stop();
        spark = null;
    }

    @Test
    void withoutDedupTheShardsEqualTheLocalPrepareTokenForToken() throws IOException {
        Path corpus = Files.createDirectories(dir.resolve("corpus"));
        List<String> docs = slices(7, 6000);
        for (int i = 0; i < docs.size(); i++) Files.writeString(corpus.resolve("part-" + i + ".txt"), docs.get(i));
        Files.writeString(corpus.resolve("notes.md"), "not a .txt file: the local prepare skips it, so must Spark");
        Prepare.run(corpus, dir.resolve("local"), Tokenizer.byName("gpt2"), 0.1, null);
        PrepareReport r = SparkPrepare.run(spark, options(dir.resolve("spark"), PrepareOptions.Dedup.NONE, "gpt2", corpus.toString()), null);
        assertSameShards(dir.resolve("local"), dir.resolve("spark"));
        assertEquals(7, r.documentsRead());
        assertEquals(7, r.documentsKept());
        assertEquals(0, r.documentsDropped());
    }

    @Test
    void exactAndNearDuplicatesAreRemovedAndCounted() throws IOException {
        List<String> docs = slices(4, 5000);
        String a = docs.get(0);
        // every 150th word changed: a few percent of the 5-word shingles differ, far above the 0.8 threshold
        String[] words = a.split(" ");
        for (int i = 0; i < words.length; i += 150) words[i] = "CHANGED";
        String nearA = String.join(" ", words);
        assertNotEquals(a, nearA);
        Path corpus = Files.createDirectories(dir.resolve("corpus"));
        Files.writeString(corpus.resolve("1-a.txt"), a);
        Files.writeString(corpus.resolve("2-b.txt"), docs.get(1));
        Files.writeString(corpus.resolve("3-a-copy.txt"), a);
        Files.writeString(corpus.resolve("4-c.txt"), docs.get(2));
        Files.writeString(corpus.resolve("5-a-edited.txt"), nearA);
        Files.writeString(corpus.resolve("6-b-copy.txt"), docs.get(1));
        Files.writeString(corpus.resolve("7-d.txt"), docs.get(3));
        PrepareReport r = SparkPrepare.run(spark, options(dir.resolve("spark"), PrepareOptions.Dedup.NEAR, "byte", corpus.toString()), null);
        assertEquals(7, r.documentsRead());
        assertEquals(4, r.documentsKept());
        assertEquals(Map.of("too_short", 0L, "exact_duplicate", 2L, "near_duplicate", 1L), r.droppedDocuments());
        // byte tokens: a dropped document's tokens are its UTF-8 bytes
        assertEquals((long) a.length() + docs.get(1).length(), r.droppedTokens().get("exact_duplicate"));
        assertEquals(nearA.length(), r.droppedTokens().get("near_duplicate"));

        // what is left is exactly the corpus without the copies, in the same order
        Path kept = Files.createDirectories(dir.resolve("kept"));
        for (String f : List.of("1-a.txt", "2-b.txt", "4-c.txt", "7-d.txt")) Files.copy(corpus.resolve(f), kept.resolve(f));
        Prepare.run(kept, dir.resolve("local"), Tokenizer.byName("byte"), 0.1, null);
        assertSameShards(dir.resolve("local"), dir.resolve("spark"));

        JsonNode m = new ObjectMapper().readTree(dir.resolve("spark").resolve(SparkPrepare.MANIFEST_FILE).toFile());
        assertEquals(2, m.at("/documents/dropped/exact_duplicate").asLong());
        assertEquals(1, m.at("/documents/dropped/near_duplicate").asLong());
        assertEquals(4, m.at("/documents/kept").asLong());
        assertEquals("byte", m.at("/tokenizer/name").asText());
        assertEquals(0.8, m.at("/options/near_duplicates/threshold").asDouble());
        try (TokenShard t = TokenShard.open(dir.resolve("spark/train.bin"))) {
            assertEquals(String.format("%08x", t.payloadCrc32c()), m.at("/shards/train/crc32c").asText());
            assertEquals(t.count(), m.at("/shards/train/tokens").asLong());
        }
    }

    @Test
    void aMissingInputIsAOneLineUserError() {
        Path missing = dir.resolve("no-such-dir");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SparkPrepare.run(spark, options(dir.resolve("o"), PrepareOptions.Dedup.NONE, "byte", missing.toString()), null));
        assertTrue(e.getMessage().contains(missing.toString()) && e.getMessage().contains("does not exist"), e.getMessage());
        assertEquals(1, e.getMessage().lines().count(), e.getMessage());
    }
}
