package dev.weft.trainer.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Arrays;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.*;

class PrepareTest {
    /** The corpus committed with the examples, so this runs wherever the repository is checked out. */
    private static final Path SHAKESPEARE = repoRoot().resolve("examples/data/tinyshakespeare.txt");

    private static Path repoRoot() {
        for (Path p = Path.of(System.getProperty("user.dir")).toAbsolutePath(); p != null; p = p.getParent())
            if (Files.exists(p.resolve("config/jvm.options"))) return p;
        throw new IllegalStateException("no config/jvm.options above " + System.getProperty("user.dir"));
    }

    @TempDir
    Path dir;

    private static String poem(int lines) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < lines; i++) {
            sb.append(i % 3 == 0 ? "\n" : "").append("Line ").append(i).append(": the quick brown fox, née Ölberg, jumps")
                    .append(i % 5 == 0 ? "  \n" : "\n");
        }
        return sb.toString();
    }

    private static int[] concat(TokenShard a, TokenShard b) {
        int[] all = new int[(int) (a.count() + b.count())];
        a.read(0, all, 0, (int) a.count());
        b.read(0, all, (int) a.count(), (int) b.count());
        return all;
    }

    @Test
    void splitsTheTokenStreamAndWritesMeta() throws Exception {
        String text = poem(200);
        Path input = Files.writeString(dir.resolve("poem.txt"), text);
        Tokenizer tok = Tokenizer.byName("gpt2");
        PreparedData data = Prepare.run(input, dir.resolve("out"), tok, 0.1, null);
        int[] expected = tok.encode(text);
        assertEquals(expected.length, data.trainTokens() + data.valTokens());
        assertEquals(Math.round(expected.length * 0.1), data.valTokens());
        assertFalse(data.reused());
        try (TokenShard train = TokenShard.open(data.train()); TokenShard val = TokenShard.open(data.val())) {
            assertEquals("gpt2", train.tokenizer());
            assertEquals(data.trainTokens(), train.count());
            assertArrayEquals(expected, concat(train, val), "train then val is the whole stream in order");
        }
        String meta = Files.readString(data.meta());
        for (String s : new String[]{"tokenizer: gpt2", "vocab_size: 50257", "val_fraction: 0.1", "name: poem.txt",
                "bytes: " + Files.size(input), "tokens: " + data.trainTokens(), "crc32c"}) {
            assertTrue(meta.contains(s), "meta.yaml has '" + s + "':\n" + meta);
        }
    }

    @Test
    void chunkedTokenisationEqualsWholeText() {
        String text = poem(300);
        int saved = Prepare.chunkChars;
        Prepare.chunkChars = 64; // forces many chunks, and buffer growth where no cut fits
        try {
            Path input = writeQuietly(dir.resolve("poem.txt"), text);
            ByteArrayOutputStream log = new ByteArrayOutputStream();
            PreparedData data = Prepare.run(input, dir.resolve("out"), Tokenizer.byName("gpt2"), 0.2,
                    new PrintStream(log, true, StandardCharsets.UTF_8));
            try (TokenShard train = TokenShard.open(data.train()); TokenShard val = TokenShard.open(data.val())) {
                assertArrayEquals(Tokenizer.byName("gpt2").encode(text), concat(train, val));
            }
            assertTrue(log.toString(StandardCharsets.UTF_8).contains("MiB"), "progress lines: " + log);
        } finally {
            Prepare.chunkChars = saved;
        }
    }

    @Test
    void directoryInputJoinsSortedTxtFilesWithEndOfText() throws Exception {
        Path corpus = Files.createDirectory(dir.resolve("corpus"));
        Files.writeString(corpus.resolve("b.txt"), "second document, rather longer than the first one\n");
        Files.writeString(corpus.resolve("a.txt"), "first document\n");
        Files.writeString(corpus.resolve("notes.md"), "ignored");
        Tokenizer tok = Tokenizer.byName("byte");
        PreparedData data = Prepare.run(corpus, dir.resolve("out"), tok, 0.25, null);
        int[] a = tok.encode("first document\n");
        int[] b = tok.encode("second document, rather longer than the first one\n");
        int[] expected = IntStream.concat(IntStream.concat(Arrays.stream(a), IntStream.of(tok.endOfText())), Arrays.stream(b)).toArray();
        try (TokenShard train = TokenShard.open(data.train()); TokenShard val = TokenShard.open(data.val())) {
            assertArrayEquals(expected, concat(train, val));
        }
        String meta = Files.readString(data.meta());
        assertTrue(meta.indexOf("name: a.txt") < meta.indexOf("name: b.txt") && !meta.contains("notes.md"), meta);
    }

    @Test
    void ensureReusesMatchingShardsAndPreparesAgainWhenAnythingChanges() throws Exception {
        Path input = Files.writeString(dir.resolve("poem.txt"), poem(100));
        Path cache = dir.resolve("cache");
        Tokenizer gpt2 = Tokenizer.byName("gpt2");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(log, true, StandardCharsets.UTF_8);

        PreparedData first = Prepare.ensure(input, cache, gpt2, 0.1, out);
        assertFalse(first.reused());
        FileTime written = Files.getLastModifiedTime(first.train());
        Files.setLastModifiedTime(first.train(), FileTime.fromMillis(written.toMillis() - 60_000));
        FileTime marked = Files.getLastModifiedTime(first.train());

        PreparedData second = Prepare.ensure(input, cache, gpt2, 0.1, out);
        assertTrue(second.reused(), log.toString());
        assertEquals(first.trainTokens(), second.trainTokens());
        assertEquals(first.valTokens(), second.valTokens());
        assertEquals(marked, Files.getLastModifiedTime(first.train()), "shard not rewritten");

        // Same size, different content: only the CRC tells.
        String changed = poem(100).replace("quick", "QUICK");
        Files.writeString(input, changed);
        PreparedData third = Prepare.ensure(input, cache, gpt2, 0.1, out);
        assertFalse(third.reused());
        assertTrue(log.toString().contains("poem.txt changed"), log.toString());
        try (TokenShard train = TokenShard.open(third.train()); TokenShard val = TokenShard.open(third.val())) {
            assertArrayEquals(gpt2.encode(changed), concat(train, val));
        }

        assertFalse(Prepare.ensure(input, cache, gpt2, 0.2, out).reused(), "val fraction changed");
        assertTrue(log.toString().contains("val fraction was 0.1, now 0.2"), log.toString());
        assertFalse(Prepare.ensure(input, cache, Tokenizer.byName("byte"), 0.2, out).reused(), "tokenizer changed");
        assertTrue(Prepare.ensure(input, cache, Tokenizer.byName("byte"), 0.2, out).reused());

        Files.writeString(input, changed + "one more line\n");
        assertFalse(Prepare.ensure(input, cache, Tokenizer.byName("byte"), 0.2, out).reused(), "size changed");

        // A damaged shard is not reused.
        byte[] bytes = Files.readAllBytes(cache.resolve(Prepare.VAL_FILE));
        bytes[bytes.length - 1] ^= 0x01;
        Files.write(cache.resolve(Prepare.VAL_FILE), bytes);
        assertFalse(Prepare.ensure(input, cache, Tokenizer.byName("byte"), 0.2, out).reused(), "corrupt shard");
        assertTrue(log.toString().contains("payload checksum mismatch"), log.toString());
    }

    @Test
    void badValFractionIsAClearError() throws Exception {
        Path input = Files.writeString(dir.resolve("poem.txt"), poem(20));
        for (double bad : new double[]{0, 1, -0.1, 1.5, Double.NaN}) {
            var e = assertThrows(IllegalArgumentException.class,
                    () -> Prepare.run(input, dir.resolve("out"), Tokenizer.byName("byte"), bad, null));
            assertTrue(e.getMessage().contains("valFraction") && e.getMessage().contains("(0, 1)")
                    && e.getMessage().contains(String.valueOf(bad)), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Prepare.ensure(input, dir.resolve("c"), Tokenizer.byName("byte"), bad, null));
        }
        Path tiny = Files.writeString(dir.resolve("tiny.txt"), "To be, or not to be");
        var e = assertThrows(IllegalArgumentException.class,
                () -> Prepare.run(tiny, dir.resolve("out"), Tokenizer.byName("gpt2"), 0.01, null));
        assertTrue(e.getMessage().contains("0 val tokens") && e.getMessage().contains("at least 2"), e.getMessage());
    }

    @Test
    void missingInputIsAClearError() {
        Path missing = dir.resolve("nothing-here.txt");
        var e = assertThrows(IllegalArgumentException.class,
                () -> Prepare.run(missing, dir.resolve("out"), Tokenizer.byName("byte"), 0.1, null));
        assertTrue(e.getMessage().contains(missing.toString()) && e.getMessage().contains("does not exist"), e.getMessage());
    }

    @Test
    void tinyShakespeareWithGpt2() {
        assertTrue(Files.isRegularFile(SHAKESPEARE), "the bundled corpus is missing: " + SHAKESPEARE);
        int saved = Prepare.chunkChars;
        Prepare.chunkChars = 1 << 16; // exercise chunk cuts on real text
        try {
            PreparedData data = Prepare.run(SHAKESPEARE, dir.resolve("out"), Tokenizer.byName("gpt2"), 0.1, null);
            // The whole file is 338025 GPT-2 tokens (the count nanoGPT's prepare script reports for it).
            assertEquals(338_025, data.trainTokens() + data.valTokens());
            try (TokenShard train = TokenShard.open(data.train()); TokenShard val = TokenShard.open(data.val())) {
                double baseline = UnigramBaseline.crossEntropy(train, val);
                assertTrue(baseline > 5 && baseline < Math.log(50257), "unigram cross-entropy " + baseline);
                BatchSampler sampler = new BatchSampler(train, 256, 8, 1, 1);
                assertEquals(train.count() / 256 / 8, sampler.stepsPerEpoch(1), 1);
            }
        } finally {
            Prepare.chunkChars = saved;
        }
    }

    private static Path writeQuietly(Path p, String s) {
        try {
            return Files.writeString(p, s);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
