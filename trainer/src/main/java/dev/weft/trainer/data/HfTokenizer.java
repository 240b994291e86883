package dev.weft.trainer.data;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * A Hugging Face {@code tokenizer.json}, run by the Rust {@code tokenizers} library through DJL's
 * binding, so its normalizer, pre-tokenizer, model and decoder behave as in the Python package.
 *
 * <p>Its {@link #name()} is {@code hf:sha256:} and the SHA-256 of the file's bytes: the identity
 * that shards, checkpoints and exports record, which names the content, not where it lay.
 *
 * <p>Added tokens written out in the text (such as "&lt;|endoftext|&gt;") are matched as the
 * tokenizer.json defines them, as the reference library does; no BOS/EOS is added around a text.
 * The end-of-text id is the {@code eos_token} of a {@code tokenizer_config.json} beside the file,
 * else the first special added token spelled like a known end-of-text token.
 */
final class HfTokenizer implements Tokenizer {
    static final String PREFIX = "hf:sha256:";
    static final String FILE = "tokenizer.json";
    static final String CONFIG_FILE = "tokenizer_config.json";
    /** Spellings of the document separator in common tokenizer.json files, in order of preference. */
    private static final List<String> END_OF_TEXT = List.of("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|im_end|>", "<|eot_id|>");

    static {
        // DJL would otherwise look for a CUDA build of the native library and download it from
        // djl.ai; the jar carries the CPU build for every platform weft runs on.
        if (System.getProperty("ai.djl.offline") == null) System.setProperty("ai.djl.offline", "true");
    }

    /** Tokenizers loaded in this process by identity: one native tokenizer per file, and the bytes a checkpoint copies. */
    private static final java.util.concurrent.ConcurrentHashMap<String, HfTokenizer> LOADED = new java.util.concurrent.ConcurrentHashMap<>();

    private final Path file;
    private final byte[] json;
    private final byte[] config;
    private final String name;
    private final HuggingFaceTokenizer tokenizer;
    private final int vocabSize;
    private final int endOfText;

    private HfTokenizer(Path file, byte[] json, byte[] config, String name, HuggingFaceTokenizer tokenizer, int vocabSize, int endOfText) {
        this.file = file;
        this.json = json;
        this.config = config;
        this.name = name;
        this.tokenizer = tokenizer;
        this.vocabSize = vocabSize;
        this.endOfText = endOfText;
    }

    /** Whether {@code spec} names a tokenizer.json (a path) rather than a built-in tokenizer. */
    static boolean isPath(String spec) {
        return spec.endsWith(".json") || spec.contains("/") || spec.contains(java.io.File.separator);
    }

    /** Loads {@code path}: a tokenizer.json, or a directory holding one. */
    static HfTokenizer load(Path path) {
        Path file = Files.isDirectory(path) ? path.resolve(FILE) : path;
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new IllegalArgumentException("tokenizer " + file + " does not exist (expected byte, gpt2 or the path of a tokenizer.json)");
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read tokenizer " + file + ": " + e);
        }
        JsonNode json;
        try {
            json = new ObjectMapper().readTree(bytes);
        } catch (JsonProcessingException e) {
            throw malformed(file, "not JSON (" + e.getOriginalMessage().lines().findFirst().orElse("") + " at line "
                    + e.getLocation().getLineNr() + ")");
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read tokenizer " + file + ": " + e);
        }
        String name = PREFIX + sha256(bytes);
        HfTokenizer known = LOADED.get(name);
        if (known != null && known.file.equals(file)) return known;
        if (json == null || !json.isObject() || !json.path("model").isObject()) throw malformed(file, "it has no \"model\" object");
        int vocab = vocabSize(json, file);
        Path configFile = file.resolveSibling(CONFIG_FILE);
        byte[] config = readConfig(configFile);
        int eot = endOfText(json, file, config);
        HuggingFaceTokenizer hf;
        try {
            hf = HuggingFaceTokenizer.newInstance(new ByteArrayInputStream(bytes),
                    Map.of("addSpecialTokens", "false", "truncation", "false", "padding", "false"));
        } catch (IOException | RuntimeException e) {
            String why = String.valueOf(e.getMessage()).lines().findFirst().orElse(e.getClass().getSimpleName());
            if (e instanceof ai.djl.engine.EngineException) {
                // the platform, not the file: the jar carries no native build for it (it is the user's to choose another tokenizer)
                throw new IllegalArgumentException("cannot load the Hugging Face tokenizers native library for " + file + " on "
                        + System.getProperty("os.name") + "/" + System.getProperty("os.arch") + ": " + why + "; use byte or gpt2 here", e);
            }
            throw malformed(file, "the tokenizers library rejects it: " + why);
        }
        HfTokenizer tok = new HfTokenizer(file, bytes, config, name, hf, vocab, eot);
        LOADED.putIfAbsent(name, tok);
        return tok;
    }

    /** The tokenizer this process loaded with identity {@code name}, or null. */
    static HfTokenizer loaded(String name) {
        return LOADED.get(name);
    }

    @Override
    public void writeFiles(Path dir) throws IOException {
        Files.write(dir.resolve(FILE), json);
        if (config != null) Files.write(dir.resolve(CONFIG_FILE), config);
    }

    private static byte[] readConfig(Path config) {
        if (!Files.isRegularFile(config)) return null;
        try {
            return Files.readAllBytes(config);
        } catch (IOException e) {
            return null; // an unreadable side file only loses the eos_token hint; the known spellings still apply
        }
    }

    private static IllegalArgumentException malformed(Path file, String why) {
        return new IllegalArgumentException("tokenizer " + file + " is not a valid tokenizer.json: " + why);
    }

    /** One past the largest id of the model's vocabulary and the added tokens. */
    private static int vocabSize(JsonNode json, Path file) {
        JsonNode vocab = json.path("model").path("vocab");
        long max = -1;
        if (vocab.isObject()) { // BPE, WordPiece, WordLevel: token -> id
            for (var e : vocab.properties()) {
                if (!e.getValue().canConvertToInt()) throw malformed(file, "vocabulary entry '" + e.getKey() + "' has no integer id");
                max = Math.max(max, e.getValue().intValue());
            }
        } else if (vocab.isArray()) { // Unigram: [piece, score] pairs, the id is the position
            max = vocab.size() - 1;
        } else {
            throw malformed(file, "model.vocab is neither an object nor an array");
        }
        for (JsonNode t : json.path("added_tokens")) max = Math.max(max, t.path("id").asLong(-1));
        if (max < 0) throw malformed(file, "its vocabulary is empty");
        return Math.toIntExact(max + 1);
    }

    private static int endOfText(JsonNode json, Path file, byte[] config) {
        Map<String, Integer> special = new java.util.LinkedHashMap<>();
        for (JsonNode t : json.path("added_tokens")) {
            if (t.path("special").asBoolean(false) && t.path("id").canConvertToInt()) special.put(t.path("content").asText(), t.path("id").intValue());
        }
        String configured = configuredEos(config);
        if (configured != null && special.containsKey(configured)) return special.get(configured);
        for (String s : END_OF_TEXT) if (special.containsKey(s)) return special.get(s);
        throw new IllegalArgumentException("tokenizer " + file + " has no end-of-text token: none of its special added tokens "
                + special.keySet() + " is " + String.join(", ", END_OF_TEXT)
                + ", and no tokenizer_config.json beside it names an eos_token among them");
    }

    private static String configuredEos(byte[] config) {
        if (config == null) return null;
        try {
            JsonNode eos = new ObjectMapper().readTree(config).path("eos_token");
            if (eos.isTextual()) return eos.asText();
            if (eos.path("content").isTextual()) return eos.path("content").asText();
            return null;
        } catch (IOException e) {
            return null; // a malformed side file only loses the hint; the known spellings still apply
        }
    }

    static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError("every JDK has SHA-256", e);
        }
    }

    @Override
    public int[] encode(String text) {
        long[] ids = tokenizer.encode(text, false, false).getIds();
        int[] out = new int[ids.length];
        for (int i = 0; i < ids.length; i++) out[i] = (int) ids[i];
        return out;
    }

    @Override
    public String decode(int[] ids) {
        TokenIds.check(ids, vocabSize, name);
        if (ids.length == 0) return "";
        long[] wide = new long[ids.length];
        for (int i = 0; i < ids.length; i++) wide[i] = ids[i];
        return tokenizer.decode(wide, false);
    }

    /** The tokenizer.json this was loaded from. */
    @Override public java.util.Optional<Path> file() { return java.util.Optional.of(file); }
    @Override public int vocabSize() { return vocabSize; }
    @Override public int endOfText() { return endOfText; }
    @Override public String name() { return name; }
    @Override public String toString() { return name + " (" + file + ")"; }
}
