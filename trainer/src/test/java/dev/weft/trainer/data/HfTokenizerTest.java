package dev.weft.trainer.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A tokenizer.json loaded by weft tokenises exactly as Hugging Face's reference implementation
 * does. The fixture (src/test/fixtures/hf-tokenizer, see its README) is a byte-level BPE trained
 * for this test, with the ids Tokenizers.js gave each text.
 */
class HfTokenizerTest {
    static final Path FIXTURE = Path.of("src/test/fixtures/hf-tokenizer");
    private static final Path TOKENIZER = FIXTURE.resolve("tokenizer.json");

    @Test
    void idsAndDecodingMatchTheReferenceLibrary() throws IOException {
        Tokenizer tok = Tokenizer.byName(TOKENIZER.toString());
        JsonNode expected = new ObjectMapper().readTree(FIXTURE.resolve("expected.json").toFile());
        int cases = 0;
        for (JsonNode c : expected.path("cases")) {
            String text = c.path("text").asText();
            int[] want = new int[c.path("ids").size()];
            for (int i = 0; i < want.length; i++) want[i] = c.path("ids").get(i).intValue();
            int[] got = tok.encode(text);
            assertArrayEquals(want, got, () -> "ids of " + quoted(text));
            assertEquals(c.path("decoded").asText(), tok.decode(got), () -> "decoding of " + quoted(text));
            cases++;
        }
        assertTrue(cases >= 15, "the fixture lists " + cases + " texts");
    }

    @Test
    void vocabularyEndOfTextAndIdentityComeFromTheFile() throws IOException {
        Tokenizer tok = Tokenizer.byName(TOKENIZER.toString());
        JsonNode json = new ObjectMapper().readTree(TOKENIZER.toFile());
        int added = json.path("added_tokens").get(0).path("id").intValue();
        assertEquals(json.path("model").path("vocab").size() + 1, tok.vocabSize());
        assertEquals(added, tok.endOfText());
        assertEquals("<|endoftext|>", tok.decode(new int[] {tok.endOfText()}));
        assertEquals(Tokenizer.fileIdentity(Files.readAllBytes(TOKENIZER)), tok.name());
        assertTrue(tok.name().matches("hf:sha256:[0-9a-f]{64}"), tok.name());
        assertEquals(TOKENIZER, tok.file().orElseThrow());
        // A directory holding tokenizer.json names the same tokenizer.
        assertEquals(tok.name(), Tokenizer.byName(FIXTURE.toString()).name());
    }

    @Test
    void longTextsAreNotTruncatedAndHalfCharactersDecodeAsReplacements() throws IOException {
        Tokenizer tok = Tokenizer.byName(TOKENIZER.toString());
        String play = Files.readString(Path.of("../examples/data/tinyshakespeare.txt")).substring(0, 200_000);
        int[] ids = tok.encode(play);
        assertTrue(ids.length > 20_000, ids.length + " tokens");
        assertEquals(play, tok.decode(ids));
        int[] party = tok.encode("🎉");
        assertTrue(party.length > 1, "the emoji spans several byte-level tokens");
        assertTrue(tok.decode(new int[] {party[0]}).contains("\uFFFD"));
        var e = assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[] {1, tok.vocabSize()}));
        assertTrue(e.getMessage().contains(String.valueOf(tok.vocabSize())), e.getMessage());
    }

    @Test
    void unreadableOrMalformedFilesAreOneLineErrorsNamingThePath(@TempDir Path dir) throws IOException {
        Path missing = dir.resolve("nope/tokenizer.json");
        assertOneLine(missing, missing.toString());

        Path notJson = dir.resolve("broken.json");
        Files.writeString(notJson, "{\"model\": {\"type\": \"BPE\", ");
        assertOneLine(notJson, "not JSON");

        Path noModel = dir.resolve("empty.json");
        Files.writeString(noModel, "{\"version\": \"1.0\"}");
        assertOneLine(noModel, "no \"model\"");

        // Valid JSON the Rust library refuses: a merge of tokens that are not in the vocabulary.
        JsonNode json = new ObjectMapper().readTree(TOKENIZER.toFile());
        ((com.fasterxml.jackson.databind.node.ObjectNode) json.path("model")).putArray("merges").add("Q Z");
        ((com.fasterxml.jackson.databind.node.ObjectNode) json.path("model")).putObject("vocab").put("a", 0);
        Path rejected = dir.resolve("rejected.json");
        new ObjectMapper().writeValue(rejected.toFile(), json);
        assertOneLine(rejected, "rejects it");

        Path unreadable = dir.resolve("unreadable.json");
        Files.copy(TOKENIZER, unreadable);
        if (unreadable.toFile().setReadable(false) && !Files.isReadable(unreadable)) assertOneLine(unreadable, "cannot read");

        var unknown = assertThrows(IllegalArgumentException.class, () -> Tokenizer.byName("words"));
        assertTrue(unknown.getMessage().contains("gpt2, byte or the path of a tokenizer.json"), unknown.getMessage());
    }

    private static void assertOneLine(Path file, String why) {
        var e = assertThrows(IllegalArgumentException.class, () -> Tokenizer.byName(file.toString()));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains(why), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
    }

    private static String quoted(String s) {
        return "'" + s.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + "' " + Arrays.toString(s.codePoints().limit(8).toArray());
    }
}
