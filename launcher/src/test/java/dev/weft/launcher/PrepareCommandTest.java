package dev.weft.launcher;

import dev.weft.trainer.data.TokenShard;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class PrepareCommandTest {
    @TempDir
    Path dir;

    private record Result(int exit, String out, String err) {}

    private static Result weft(String... args) {
        CommandLine cl = Main.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int exit = cl.execute(args);
        return new Result(exit, out.toString(), err.toString());
    }

    @Test
    void preparesShardsAndPrintsCountsBaselineAndPaths() throws Exception {
        Path input = Files.writeString(dir.resolve("text.txt"),
                "It was the best of times, it was the worst of times.\n".repeat(40));
        Path out = dir.resolve("shards");
        Result r = weft("prepare", "--input", input.toString(), "--out", out.toString(), "--tokenizer", "byte",
                "--val-fraction", "0.25");
        assertEquals(0, r.exit(), r.err() + r.out());
        long total = Files.size(input);
        assertTrue(r.out().contains("train tokens:     " + (total - Math.round(total * 0.25))), r.out());
        assertTrue(r.out().contains("val tokens:       " + Math.round(total * 0.25)), r.out());
        assertTrue(r.out().contains("unigram baseline:"), r.out());
        assertTrue(r.out().contains(out.resolve("train.bin").toString()) && r.out().contains(out.resolve("meta.yaml").toString()), r.out());
        try (TokenShard val = TokenShard.open(out.resolve("val.bin"))) {
            assertEquals("byte", val.tokenizer());
            assertEquals(Math.round(total * 0.25), val.count());
        }
    }

    @Test
    void missingInputFailsWithAClearMessage() {
        Path missing = dir.resolve("no-such.txt");
        Result r = weft("prepare", "--input", missing.toString(), "--out", dir.resolve("o").toString());
        assertNotEquals(0, r.exit());
        assertTrue(r.err().contains("weft prepare: error:") && r.err().contains(missing.toString())
                && r.err().contains("does not exist"), r.err());
        assertFalse(r.err().contains("internal error"), r.err());
    }

    @Test
    void badTokenizerAndValFractionAreClearErrors() throws Exception {
        Path input = Files.writeString(dir.resolve("t.txt"), "some text\n".repeat(20));
        Result tok = weft("prepare", "--input", input.toString(), "--out", dir.resolve("o").toString(), "--tokenizer", "bpe");
        assertNotEquals(0, tok.exit());
        assertTrue(tok.err().contains("unknown tokenizer 'bpe'") && tok.err().contains("gpt2, byte"), tok.err());
        Result frac = weft("prepare", "--input", input.toString(), "--out", dir.resolve("o").toString(), "--val-fraction", "1.5");
        assertNotEquals(0, frac.exit());
        assertTrue(frac.err().contains("valFraction must be in (0, 1), got 1.5"), frac.err());
    }

    @Test
    void helpListsTheOptions() {
        Result r = weft("prepare", "--help");
        assertEquals(0, r.exit());
        for (String opt : new String[]{"--input", "--out", "--tokenizer", "--val-fraction"}) assertTrue(r.out().contains(opt), r.out());
    }

    @Test
    void sparkPrepareWritesTheShardsAndAManifest() throws Exception {
        Path corpus = Files.createDirectories(dir.resolve("corpus"));
        Files.writeString(corpus.resolve("a.txt"), "It was the best of times, it was the worst of times.\n".repeat(40));
        Files.writeString(corpus.resolve("b.txt"), "It was the best of times, it was the worst of times.\n".repeat(40));
        Files.writeString(corpus.resolve("c.txt"), "Call me Ishmael. Some years ago, never mind how long precisely.\n".repeat(30));
        Path out = dir.resolve("shards");
        Result r = weft("prepare", "--spark-master", "local[1]", "--input", corpus.toString(), "--out", out.toString(),
                "--tokenizer", "byte", "--val-fraction", "0.25");
        assertEquals(0, r.exit(), r.err() + r.out());
        assertTrue(r.out().contains("documents:        3 read, 2 kept, 1 dropped"), r.out());
        assertTrue(r.out().contains("spark: stage") && r.out().contains("(tokenise) done"), r.out());
        assertTrue(Files.isRegularFile(out.resolve("manifest.json")) && Files.isRegularFile(out.resolve("val.bin")), r.out());
    }

    @Test
    void aBadSparkMasterIsAOneLineError() throws Exception {
        Path input = Files.writeString(dir.resolve("t.txt"), "some text\n".repeat(20));
        Result r = weft("prepare", "--spark-master", "bogus://nowhere", "--input", input.toString(), "--out", dir.resolve("o").toString());
        assertEquals(2, r.exit(), r.err());
        assertTrue(r.err().startsWith("weft prepare: error: cannot start Spark on master 'bogus://nowhere'"), r.err());
        assertEquals(1, r.err().lines().count(), r.err());
    }

    @Test
    void aMissingSparkInputIsAOneLineErrorBeforeSparkStarts() {
        Path missing = dir.resolve("no-such-*.txt");
        Result r = weft("prepare", "--spark-master", "--input", missing.toString(), "--out", dir.resolve("o").toString());
        assertEquals(2, r.exit(), r.err());
        assertEquals("weft prepare: error: input " + missing + " does not exist (expected a file, a directory or a glob on a Hadoop filesystem)",
                r.err().strip());
    }

    @Test
    void sparkOptionsWithoutAMasterAreAnError() throws Exception {
        Path input = Files.writeString(dir.resolve("t.txt"), "some text\n".repeat(20));
        Result r = weft("prepare", "--dedup", "exact", "--input", input.toString(), "--out", dir.resolve("o").toString());
        assertEquals(2, r.exit(), r.err());
        assertEquals("weft prepare: error: --dedup needs --spark-master", r.err().strip());
    }
}
