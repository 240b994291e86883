package dev.weft.trainer.data;

import java.util.List;

/**
 * Turns text into token ids and back. Implementations are immutable and thread-safe.
 *
 * <p>Two are built in, chosen by {@link #byName(String)}:
 * <ul>
 *   <li>{@code gpt2}: GPT-2's byte-pair encoding (r50k_base, bundled with jtokkit, works offline);
 *       vocabulary 50257, end-of-text id 50256.</li>
 *   <li>{@code byte}: one token per UTF-8 byte; vocabulary 256. Its end-of-text id is 0, the NUL
 *       byte, which ordinary text does not contain; a NUL inside the text is indistinguishable
 *       from a document boundary.</li>
 * </ul>
 */
public interface Tokenizer {
    /** The names {@link #byName(String)} accepts. */
    List<String> NAMES = List.of(Gpt2Tokenizer.NAME, ByteTokenizer.NAME);

    /** Token ids of {@code text}. Special-token spellings such as "<|endoftext|>" are encoded as plain text. */
    int[] encode(String text);

    /**
     * Text of {@code ids}. Ids outside {@code [0, vocabSize())} are an {@link IllegalArgumentException}
     * naming the id and its position; byte sequences that are not valid UTF-8 (a model may emit half
     * a character) become U+FFFD replacement characters.
     */
    String decode(int[] ids);

    int vocabSize();

    /** The id that separates documents. */
    int endOfText();

    /** The name {@link #byName(String)} knows this tokenizer by; stored in token shards. */
    String name();

    /** The tokenizer called {@code name}: one of {@link #NAMES}. */
    static Tokenizer byName(String name) {
        if (name == null) throw new IllegalArgumentException("tokenizer name is null; allowed: " + String.join(", ", NAMES));
        return switch (name) {
            case Gpt2Tokenizer.NAME -> Gpt2Tokenizer.INSTANCE;
            case ByteTokenizer.NAME -> ByteTokenizer.INSTANCE;
            default -> throw new IllegalArgumentException(
                    "unknown tokenizer '" + name + "'; allowed: " + String.join(", ", NAMES));
        };
    }
}
