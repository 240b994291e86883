package dev.weft.trainer.data;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class TokenizerTest {
    private static final String TEXT = "Hello, world!\n  Grüße aus Köln — 日本語 🎉 <|endoftext|> tabs\tand\r\nlines 12345";

    @Test
    void gpt2RoundTripsUnicode() {
        Tokenizer gpt2 = Tokenizer.byName("gpt2");
        assertEquals(50257, gpt2.vocabSize());
        assertEquals(50256, gpt2.endOfText());
        assertEquals("gpt2", gpt2.name());
        int[] ids = gpt2.encode(TEXT);
        assertTrue(ids.length < TEXT.length(), "BPE should merge characters");
        assertEquals(TEXT, gpt2.decode(ids));
        // "Hello" is one GPT-2 token (id 15496).
        assertArrayEquals(new int[]{15496}, gpt2.encode("Hello"));
    }

    @Test
    void gpt2EncodesSpecialTokenSpellingAsPlainText() {
        Tokenizer gpt2 = Tokenizer.byName("gpt2");
        int[] ids = gpt2.encode("<|endoftext|>");
        for (int id : ids) assertNotEquals(gpt2.endOfText(), id);
        assertEquals("<|endoftext|>", gpt2.decode(new int[]{gpt2.endOfText()}));
    }

    @Test
    void byteRoundTripsUnicode() {
        Tokenizer bytes = Tokenizer.byName("byte");
        assertEquals(256, bytes.vocabSize());
        assertEquals(0, bytes.endOfText());
        int[] ids = bytes.encode(TEXT);
        assertEquals(TEXT.getBytes(java.nio.charset.StandardCharsets.UTF_8).length, ids.length);
        for (int id : ids) assertTrue(id >= 0 && id < 256);
        assertEquals(TEXT, bytes.decode(ids));
    }

    @Test
    void partialUtf8DecodesToReplacementCharacters() {
        Tokenizer bytes = Tokenizer.byName("byte");
        int[] euro = bytes.encode("a€"); // 'a' then 3 bytes
        int[] cut = java.util.Arrays.copyOf(euro, 3);
        assertEquals("a\uFFFD", bytes.decode(cut));

        Tokenizer gpt2 = Tokenizer.byName("gpt2");
        int[] party = gpt2.encode("🎉");
        assertTrue(party.length > 1, "the emoji spans several byte-level tokens");
        String partial = gpt2.decode(new int[]{party[0]});
        assertTrue(partial.contains("\uFFFD"), partial);
    }

    @Test
    void invalidIdsAreClearErrors() {
        for (String name : Tokenizer.NAMES) {
            Tokenizer tok = Tokenizer.byName(name);
            var e = assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[]{1, tok.vocabSize()}));
            assertTrue(e.getMessage().contains("token id " + tok.vocabSize() + " at position 1"), e.getMessage());
            assertTrue(e.getMessage().contains(name), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[]{-1}));
        }
    }

    @Test
    void unknownNameListsAllowedNames() {
        var e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.byName("gpt5"));
        assertTrue(e.getMessage().contains("gpt5") && e.getMessage().contains("gpt2") && e.getMessage().contains("byte"),
                e.getMessage());
    }
}
