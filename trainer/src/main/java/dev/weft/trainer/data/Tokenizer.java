package dev.weft.trainer.data;

import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

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
 * Any other name is the path of a Hugging Face {@code tokenizer.json} (or of a directory holding
 * one), whose vocabulary and end-of-text token come from the file; its {@link #name()} is
 * {@code hf:sha256:} and the file's SHA-256.
 */
public interface Tokenizer {
    /** The names {@link #byName(String)} accepts. */
    List<String> NAMES = List.of(Gpt2Tokenizer.NAME, ByteTokenizer.NAME);

    /**
     * Token ids of {@code text}. The built-in tokenizers encode special-token spellings such as
     * "<|endoftext|>" as plain text; a tokenizer.json matches its added tokens as its library does.
     */
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

    /**
     * The tokenizer's identity, stored in token shards, meta.yaml and checkpoints: a built-in's name,
     * or {@code hf:sha256:HEX} for a tokenizer.json.
     */
    String name();

    /** The file this tokenizer was loaded from, where it has one; it travels with checkpoints and exports. */
    default Optional<Path> file() {
        return Optional.empty();
    }

    /**
     * Writes the files that define this tokenizer ({@code tokenizer.json}, and the
     * {@code tokenizer_config.json} it was loaded with) into {@code dir}, so that a checkpoint or an
     * export carries its tokenizer; nothing for the built-ins, which need no file.
     */
    default void writeFiles(Path dir) throws java.io.IOException {}

    /**
     * Writes into {@code dir} the files of the tokenizer with identity {@code name} (see
     * {@link #writeFiles}); for an identity that names no tokenizer this process loaded, nothing.
     */
    static void writeFiles(String name, Path dir) throws java.io.IOException {
        HfTokenizer tok = name == null ? null : HfTokenizer.loaded(name);
        if (tok != null) tok.writeFiles(dir);
    }

    /**
     * The tokenizer a model directory (a checkpoint or a Hugging Face export) was trained with:
     * {@code recorded}, its config.json's {@code weft_tokenizer} (null when it has none), names a
     * built-in, or a tokenizer.json whose identity the directory's own {@code tokenizer.json} must
     * have; a directory that records nothing uses its {@code tokenizer.json}. Anything else is an
     * {@link IllegalArgumentException} that says what to pass instead.
     */
    static Tokenizer forModel(Path dir, String recorded) {
        Path file = dir.resolve(HfTokenizer.FILE);
        if (recorded == null || recorded.equals("unknown")) {
            if (java.nio.file.Files.isRegularFile(file)) return HfTokenizer.load(file);
            throw new IllegalArgumentException(dir.resolve("config.json") + " does not say which tokenizer the model uses and "
                    + dir + " holds no tokenizer.json; pass --tokenizer " + String.join("|", NAMES) + "|PATH/tokenizer.json");
        }
        if (!isFileIdentity(recorded)) return byName(recorded);
        if (!java.nio.file.Files.isRegularFile(file))
            throw new IllegalArgumentException(dir + " was trained with tokenizer " + recorded + " but holds no tokenizer.json;"
                    + " pass --tokenizer PATH/tokenizer.json");
        HfTokenizer tok = HfTokenizer.load(file);
        if (!tok.name().equals(recorded))
            throw new IllegalArgumentException(file + " is " + tok.name() + ", but " + dir + " was trained with " + recorded
                    + "; pass --tokenizer with the tokenizer.json it was trained with");
        return tok;
    }

    /** Whether {@code name} is the identity of a tokenizer.json rather than a built-in name. */
    static boolean isFileIdentity(String name) {
        return name != null && name.startsWith(HfTokenizer.PREFIX);
    }

    /** The SHA-256 identity ({@code hf:sha256:HEX}) of the tokenizer.json bytes {@code bytes}. */
    static String fileIdentity(byte[] bytes) {
        return HfTokenizer.PREFIX + HfTokenizer.sha256(bytes);
    }

    /**
     * The tokenizer called {@code name}: one of {@link #NAMES}, or the path of a tokenizer.json
     * (or of a directory holding one). A bad path or file is an {@link IllegalArgumentException}
     * naming it.
     */
    static Tokenizer byName(String name) {
        if (name == null) throw new IllegalArgumentException("tokenizer name is null; allowed: " + allowed());
        return switch (name) {
            case Gpt2Tokenizer.NAME -> Gpt2Tokenizer.INSTANCE;
            case ByteTokenizer.NAME -> ByteTokenizer.INSTANCE;
            default -> {
                if (isFileIdentity(name)) {
                    throw new IllegalArgumentException("tokenizer '" + name + "' is the identity of a tokenizer.json, not its path;"
                            + " pass the path of that tokenizer.json");
                }
                if (!HfTokenizer.isPath(name) && !java.nio.file.Files.exists(Path.of(name))) {
                    throw new IllegalArgumentException("unknown tokenizer '" + name + "'; allowed: " + allowed());
                }
                yield HfTokenizer.load(Path.of(name));
            }
        };
    }

    /** What {@link #byName(String)} accepts, in words for error messages. */
    static String allowed() {
        return String.join(", ", NAMES) + " or the path of a tokenizer.json";
    }
}
