package dev.weft.trainer.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.*;

class TokenShardTest {
    @TempDir
    Path dir;

    private static int[] randomTokens(int n, int vocab, long seed) {
        return new SplittableRandom(seed).ints(n, 0, vocab).toArray();
    }

    @Test
    void roundTripUint16() {
        int[] tokens = randomTokens(10_000, 50257, 1);
        tokens[0] = 50256;
        tokens[1] = 0;
        Path file = dir.resolve("a.bin");
        TokenShard.write(file, tokens, 50257, "gpt2");
        assertEquals(TokenShard.HEADER_BYTES + 2L * tokens.length, file.toFile().length(), "uint16 payload");
        try (TokenShard shard = TokenShard.open(file)) {
            assertEquals(tokens.length, shard.count());
            assertEquals(50257, shard.vocabSize());
            assertEquals("gpt2", shard.tokenizer());
            for (int i = 0; i < tokens.length; i++) assertEquals(tokens[i], shard.get(i));
            int[] dst = new int[110];
            shard.read(500, dst, 10, 100);
            assertArrayEquals(Arrays.copyOfRange(tokens, 500, 600), Arrays.copyOfRange(dst, 10, 110));
            assertThrows(IndexOutOfBoundsException.class, () -> shard.get(tokens.length));
            assertThrows(IndexOutOfBoundsException.class, () -> shard.read(tokens.length - 5, dst, 0, 6));
        }
    }

    @Test
    void roundTripUint32() {
        int vocab = 200_000;
        int[] tokens = randomTokens(5_000, vocab, 2);
        tokens[7] = vocab - 1;
        tokens[8] = 65536;
        Path file = dir.resolve("big.bin");
        TokenShard.write(file, tokens, vocab, "wide");
        assertEquals(TokenShard.HEADER_BYTES + 4L * tokens.length, file.toFile().length(), "uint32 payload");
        try (TokenShard shard = TokenShard.open(file)) {
            assertEquals(vocab, shard.vocabSize());
            assertEquals("wide", shard.tokenizer());
            int[] all = new int[tokens.length];
            shard.read(0, all, 0, tokens.length);
            assertArrayEquals(tokens, all);
            assertEquals(65536, shard.get(8));
        }
    }

    @Test
    void emptyShardRoundTrips() {
        Path file = dir.resolve("empty.bin");
        TokenShard.write(file, new int[0], 256, "byte");
        try (TokenShard shard = TokenShard.open(file)) {
            assertEquals(0, shard.count());
        }
    }

    @Test
    void writeRejectsOutOfVocabTokensAndLeavesNoFile() {
        Path file = dir.resolve("bad.bin");
        var e = assertThrows(IllegalArgumentException.class, () -> TokenShard.write(file, new int[]{1, 2, 256}, 256, "byte"));
        assertTrue(e.getMessage().contains("256"), e.getMessage());
        assertFalse(Files.exists(file));
    }

    @Test
    void writeReplacesAtomicallyAndLeavesNoTempFiles() throws Exception {
        Path file = dir.resolve("s.bin");
        TokenShard.write(file, new int[]{1, 2, 3}, 256, "byte");
        TokenShard.write(file, new int[]{4, 5}, 256, "byte");
        try (TokenShard shard = TokenShard.open(file)) {
            assertEquals(2, shard.count());
            assertEquals(4, shard.get(0));
        }
        try (var files = Files.list(dir)) {
            assertEquals(1, files.count(), "temporary files left behind");
        }
    }

    private Path validShard() {
        Path file = dir.resolve("shard.bin");
        TokenShard.write(file, randomTokens(1000, 50257, 3), 50257, "gpt2");
        return file;
    }

    private static ShardFormatException assertCorrupt(Path file, String... fragments) {
        var e = assertThrows(ShardFormatException.class, () -> TokenShard.open(file).close());
        assertEquals(file, e.file());
        assertTrue(e.getMessage().contains(file.toString()), "names the file: " + e.getMessage());
        for (String f : fragments) assertTrue(e.getMessage().contains(f), "mentions '" + f + "': " + e.getMessage());
        return e;
    }

    @Test
    void flippedPayloadByteIsDetected() throws Exception {
        Path file = validShard();
        byte[] bytes = Files.readAllBytes(file);
        bytes[TokenShard.HEADER_BYTES + 777] ^= 0x10;
        Files.write(file, bytes);
        assertCorrupt(file, "payload checksum mismatch", "expected", "found");
    }

    @Test
    void truncatedPayloadIsDetected() throws Exception {
        Path file = validShard();
        byte[] bytes = Files.readAllBytes(file);
        Files.write(file, Arrays.copyOf(bytes, bytes.length - 3));
        assertCorrupt(file, "truncated", "expected " + bytes.length, "found " + (bytes.length - 3));
    }

    @Test
    void truncatedHeaderIsDetected() throws Exception {
        Path file = validShard();
        Files.write(file, Arrays.copyOf(Files.readAllBytes(file), 50));
        assertCorrupt(file, "truncated", "found 50 bytes");
    }

    @Test
    void wrongMagicIsDetected() throws Exception {
        Path file = dir.resolve("notes.bin");
        Files.writeString(file, "This is just a text file, not a token shard at all. ".repeat(5));
        assertCorrupt(file, "not a weft token shard", "expected magic", "found");
    }

    @Test
    void corruptHeaderFieldIsDetected() throws Exception {
        Path file = validShard();
        byte[] bytes = Files.readAllBytes(file);
        bytes[16] ^= 1; // token count
        Files.write(file, bytes);
        assertCorrupt(file, "header checksum mismatch");
    }

    @Test
    void headerPayloadSizeMismatchIsDetected() throws Exception {
        Path file = validShard();
        byte[] bytes = Files.readAllBytes(file);
        // A consistent header (valid CRC) that claims more tokens than the file holds.
        rewriteHeader(bytes, 2, 1001, 50257);
        Files.write(file, bytes);
        assertCorrupt(file, "truncated", "1001 tokens");
    }

    @Test
    void tokenOutsideVocabularyIsDetected() throws Exception {
        Path file = dir.resolve("ids.bin");
        TokenShard.write(file, new int[]{5, 300, 7}, 50257, "gpt2");
        byte[] bytes = Files.readAllBytes(file);
        rewriteHeader(bytes, 2, 3, 256); // claims a byte vocabulary; 300 no longer fits
        Files.write(file, bytes);
        assertCorrupt(file, "token 1 is out of the vocabulary", "[0, 256)", "found 300");
    }

    /** Rewrites header fields and recomputes both CRCs, as a buggy writer would. */
    private static void rewriteHeader(byte[] bytes, int bpt, long count, int vocab) {
        ByteBuffer h = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        h.putInt(12, bpt).putLong(16, count).putInt(24, vocab);
        CRC32C payload = new CRC32C();
        payload.update(bytes, TokenShard.HEADER_BYTES, bytes.length - TokenShard.HEADER_BYTES);
        h.putInt(28, (int) payload.getValue());
        CRC32C header = new CRC32C();
        header.update(bytes, 0, 124);
        h.putInt(124, (int) header.getValue());
    }

    @Test
    void missingFileIsClear() {
        Path file = dir.resolve("nope.bin");
        var e = assertThrows(UncheckedIOException.class, () -> TokenShard.open(file));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("does not exist"), e.getMessage());
    }
}
