package dev.weft.trainer.data;

import org.yaml.snakeyaml.DumperOptions;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.stream.Stream;
import java.util.zip.CRC32C;
import java.util.zip.CheckedInputStream;

/**
 * Tokenises a text corpus into {@code train.bin} and {@code val.bin} token shards plus a
 * {@code meta.yaml} that records what they were made from.
 *
 * <p>The input is one text file or a directory whose {@code *.txt} files are taken in sorted name
 * order, separated by the tokenizer's end-of-text id. The validation shard is the last
 * {@code valFraction} of the token stream, the training shard everything before it. Text is read
 * as UTF-8 (malformed bytes become U+FFFD) and tokenised in chunks cut at a lone newline between
 * a visible character and a letter or digit: GPT-2's pre-tokeniser always splits there, so
 * chunking does not change the tokens (see {@link #lastSafeCut}).
 *
 * <p>Shards and meta.yaml are each written atomically, meta.yaml last and the old one removed
 * first: a crash part-way leaves no meta.yaml, so {@link #ensure} prepares again.
 */
public final class Prepare {
    public static final double DEFAULT_VAL_FRACTION = 0.1;
    public static final String TRAIN_FILE = "train.bin";
    public static final String VAL_FILE = "val.bin";
    public static final String META_FILE = "meta.yaml";
    /** Each split must hold at least one input token and its target. */
    static final int MIN_SPLIT_TOKENS = 2;
    private static final int META_FORMAT = 1;
    /** Characters read before tokenising, and the progress granularity; tests lower it to force many chunks. */
    static int chunkChars = 4 << 20;

    private Prepare() {}

    /** Tokenises {@code input} into shards under {@code outDir}, replacing any there. {@code progress} may be null. */
    public static PreparedData run(Path input, Path outDir, Tokenizer tok, double valFraction, PrintStream progress) {
        Objects.requireNonNull(tok, "tokenizer");
        checkValFraction(valFraction);
        List<Path> files = sources(input);
        PrintStream log = progress != null ? progress : new PrintStream(OutputStream.nullOutputStream());
        try {
            Files.createDirectories(outDir);
            Files.deleteIfExists(outDir.resolve(META_FILE));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare output directory " + outDir + ": " + e, e);
        }
        TokenStream stream = new TokenStream();
        List<Source> sources = new ArrayList<>();
        for (int i = 0; i < files.size(); i++) {
            if (i > 0) stream.add(tok.endOfText());
            sources.add(tokenize(files.get(i), displayName(input, files.get(i)), tok, stream, log));
        }
        long total = stream.size;
        long valTokens = Math.round(total * valFraction);
        long trainTokens = total - valTokens;
        if (valTokens < MIN_SPLIT_TOKENS || trainTokens < MIN_SPLIT_TOKENS) {
            throw new IllegalArgumentException("input " + input + " has " + total + " " + tok.name()
                    + " tokens; valFraction " + valFraction + " splits them into " + trainTokens + " train and "
                    + valTokens + " val tokens, but each side needs at least " + MIN_SPLIT_TOKENS
                    + " (use more text or another valFraction)");
        }
        Path train = outDir.resolve(TRAIN_FILE);
        Path val = outDir.resolve(VAL_FILE);
        TokenShard.write(train, Arrays.copyOfRange(stream.tokens, 0, (int) trainTokens), tok.vocabSize(), tok.name());
        TokenShard.write(val, Arrays.copyOfRange(stream.tokens, (int) trainTokens, (int) total), tok.vocabSize(), tok.name());
        int trainCrc;
        int valCrc;
        try (TokenShard t = TokenShard.open(train); TokenShard v = TokenShard.open(val)) {
            trainCrc = t.payloadCrc32c();
            valCrc = v.payloadCrc32c();
        }
        Path meta = outDir.resolve(META_FILE);
        writeMeta(meta, tok, valFraction, sources, trainTokens, trainCrc, valTokens, valCrc);
        log.printf("prepare: %d %s tokens from %d file(s): %d train, %d val -> %s%n",
                total, tok.name(), files.size(), trainTokens, valTokens, outDir);
        return new PreparedData(train, val, meta, tok.name(), tok.vocabSize(), trainTokens, valTokens, false);
    }

    /**
     * The shards for {@code textFile} in their own folder of the cache {@code cacheRoot}:
     * {@code cacheRoot/<key>}, the key naming the source path, the tokenizer's identity, the
     * valFraction and the shard format (see {@link #cacheKey}). Other corpora, tokenizers or splits
     * get other folders, so they neither overwrite nor race one another; the source's content is
     * checked before reuse by {@link #ensure}.
     */
    public static PreparedData cached(Path textFile, Path cacheRoot, Tokenizer tok, double valFraction, PrintStream out) {
        Objects.requireNonNull(tok, "tokenizer");
        checkValFraction(valFraction);
        return ensure(textFile, cacheRoot.resolve(cacheKey(textFile, tok, valFraction)), tok, valFraction, out);
    }

    /**
     * The folder name of {@code textFile}'s shards in a cache: the source's name, the tokenizer and
     * a hash of the source's absolute path, the tokenizer's identity, valFraction and the format.
     * The content is not in the key (hashing a 100 GB corpus on every start is not free, and an
     * edited corpus should replace its old shards, not leave them behind); {@link #ensure} compares
     * sizes and CRC32Cs instead.
     */
    static String cacheKey(Path textFile, Tokenizer tok, double valFraction) {
        String identity = "format=" + META_FORMAT + "\nsource=" + textFile.toAbsolutePath().normalize()
                + "\ntokenizer=" + tok.name() + "\nval_fraction=" + valFraction + "\n";
        String hash = HfTokenizer.sha256(identity.getBytes(StandardCharsets.UTF_8));
        Path leaf = textFile.toAbsolutePath().normalize().getFileName();
        String stem = leaf == null ? "root" : leaf.toString().replaceFirst("\\.txt$", "").replaceAll("[^A-Za-z0-9._-]", "_");
        if (stem.length() > 40) stem = stem.substring(0, 40);
        String tokName = Tokenizer.isFileIdentity(tok.name()) ? "hf" + tok.name().substring(HfTokenizer.PREFIX.length(), HfTokenizer.PREFIX.length() + 8) : tok.name();
        return stem + "-" + tokName + "-" + hash.substring(0, 16);
    }

    /**
     * The shards for {@code textFile} (a file or a directory of {@code *.txt}) in {@code dir}:
     * reused when its meta.yaml records the same sources (names, sizes and CRC32C), tokenizer and
     * valFraction and the shards verify, prepared again (with the reason printed) otherwise.
     *
     * <p>A new preparation is made in a temporary folder beside {@code dir} and renamed into place
     * whole, so concurrent callers never see half-written shards: when two prepare the same
     * shards at once, the first rename wins and the other uses the winner's (they are identical,
     * tokenising being deterministic).
     */
    public static PreparedData ensure(Path textFile, Path dir, Tokenizer tok, double valFraction, PrintStream out) {
        Objects.requireNonNull(tok, "tokenizer");
        checkValFraction(valFraction);
        PrintStream log = out != null ? out : new PrintStream(OutputStream.nullOutputStream());
        String[] reason = new String[1];
        PreparedData existing = reusable(textFile, dir, tok, valFraction, reason);
        if (existing != null) {
            log.printf("prepare: reusing %s (%d train, %d val %s tokens; meta.yaml matches %s)%n",
                    dir, existing.trainTokens(), existing.valTokens(), tok.name(), textFile);
            return existing;
        }
        log.println("prepare: tokenising " + textFile + " into " + dir + " (" + reason[0] + ")");
        return install(textFile, dir, tok, valFraction, log);
    }

    /** Called after a preparation is complete in its temporary folder, before it is renamed into place; tests race two here. */
    static Runnable beforeInstall = () -> {};

    private static PreparedData install(Path textFile, Path dir, Tokenizer tok, double valFraction, PrintStream log) {
        Path parent = dir.toAbsolutePath().getParent();
        String leaf = dir.getFileName().toString();
        Path tmp;
        try {
            Files.createDirectories(parent);
            tmp = Files.createTempDirectory(parent, leaf + ".tmp-");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare output directory " + dir + ": " + e, e);
        }
        try {
            PreparedData made = run(textFile, tmp, tok, valFraction, log);
            beforeInstall.run();
            for (int attempt = 0; ; attempt++) {
                try {
                    Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
                    return new PreparedData(dir.resolve(TRAIN_FILE), dir.resolve(VAL_FILE), dir.resolve(META_FILE), made.tokenizer(),
                            made.vocabSize(), made.trainTokens(), made.valTokens(), false);
                } catch (IOException e) {
                    if (!Files.exists(dir) || attempt >= 8) throw new UncheckedIOException("cannot move " + tmp + " to " + dir + ": " + e, e);
                }
                // dir exists: another process's fresh shards (use them), or stale ones (move them aside and retry)
                String[] why = new String[1];
                PreparedData theirs = reusable(textFile, dir, tok, valFraction, why);
                if (theirs != null) {
                    log.println("prepare: " + dir + " was prepared meanwhile by another process; using its shards");
                    return theirs;
                }
                Path old = parent.resolve(leaf + ".old-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
                try {
                    Files.move(dir, old, StandardCopyOption.ATOMIC_MOVE);
                    deleteRecursively(old);
                } catch (java.nio.file.NoSuchFileException gone) {
                    // another process moved it first
                } catch (IOException e) {
                    throw new UncheckedIOException("cannot replace " + dir + " (" + why[0] + "): " + e, e);
                }
            }
        } finally {
            try {
                deleteRecursively(tmp);
            } catch (IOException e) {
                log.println("prepare: could not remove " + tmp + ": " + e);
            }
        }
    }

    /** The shards in {@code dir} when they fit the request, else null with the reason in {@code reason[0]}. */
    private static PreparedData reusable(Path textFile, Path dir, Tokenizer tok, double valFraction, String[] reason) {
        List<Path> files = sources(textFile);
        Path metaFile = dir.resolve(META_FILE);
        if (!Files.isRegularFile(metaFile)) {
            reason[0] = "no " + META_FILE + " in " + dir;
            return null;
        }
        try {
            Map<String, Object> meta = readMeta(metaFile);
            reason[0] = metaMismatch(meta, textFile, files, tok, valFraction);
            return reason[0] == null ? openRecorded(dir, meta, tok) : null;
        } catch (RuntimeException e) {
            reason[0] = "existing shards unusable: " + e.getMessage();
            return null;
        }
    }

    private static void deleteRecursively(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(q);
        }
    }

    static void checkValFraction(double valFraction) {
        if (!(valFraction > 0 && valFraction < 1)) {
            throw new IllegalArgumentException("valFraction must be in (0, 1), got " + valFraction
                    + " (the share of tokens held out for validation; default " + DEFAULT_VAL_FRACTION + ")");
        }
    }

    /** The text files {@code input} names, in the order they are concatenated. */
    static List<Path> sources(Path input) {
        if (Files.isRegularFile(input)) return List.of(input);
        if (!Files.isDirectory(input)) {
            throw new IllegalArgumentException("input " + input + " does not exist (expected a text file or a directory of *.txt files)");
        }
        try (Stream<Path> list = Files.list(input)) {
            List<Path> files = list.filter(p -> p.getFileName().toString().endsWith(".txt") && Files.isRegularFile(p))
                    .sorted().toList();
            if (files.isEmpty()) throw new IllegalArgumentException("input directory " + input + " contains no *.txt files");
            return files;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list input directory " + input + ": " + e, e);
        }
    }

    private static String displayName(Path input, Path file) {
        return Files.isDirectory(input) ? input.relativize(file).toString() : file.getFileName().toString();
    }

    /** A source file as meta.yaml records it. */
    private record Source(String name, long bytes, int crc32c) {}

    private static Source tokenize(Path file, String name, Tokenizer tok, TokenStream out, PrintStream log) {
        CRC32C crc = new CRC32C();
        long[] bytesRead = {0};
        long size;
        long start = System.nanoTime();
        long tokensBefore = out.size;
        try (InputStream raw = Files.newInputStream(file);
             Reader reader = new InputStreamReader(new CheckedInputStream(counting(raw, bytesRead), crc), StandardCharsets.UTF_8)) {
            size = Files.size(file);
            char[] buf = new char[chunkChars];
            int len = 0;
            while (true) {
                int n = reader.read(buf, len, buf.length - len);
                if (n < 0) break;
                len += n;
                if (len < buf.length) continue;
                int cut = lastSafeCut(buf, len);
                if (cut <= 0) { // no safe cut in the whole buffer: read more before tokenising
                    buf = Arrays.copyOf(buf, buf.length * 2);
                    continue;
                }
                out.add(tok.encode(new String(buf, 0, cut)));
                System.arraycopy(buf, cut, buf, 0, len - cut);
                len -= cut;
                log.printf("prepare: %s: %.1f of %.1f MiB, %d tokens%n", name, bytesRead[0] / 1048576.0, size / 1048576.0,
                        out.size - tokensBefore);
            }
            if (len > 0) out.add(tok.encode(new String(buf, 0, len)));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read input " + file + ": " + e, e);
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        log.printf("prepare: %s: %d bytes -> %d tokens (%.1f s)%n", name, size, out.size - tokensBefore, seconds);
        return new Source(name, size, (int) crc.getValue());
    }

    /**
     * The last index {@code i} where the text may be split without changing its tokens, 0 if none:
     * a lone '\n' between a visible character and a letter or digit. GPT-2's pre-tokeniser ends a
     * piece at such a newline and starts the next at the letter; a longer whitespace run is not
     * safe, because at the end of a chunk it would merge into one token ("\n\n") that the whole
     * text splits in two.
     */
    static int lastSafeCut(char[] buf, int len) {
        for (int i = len - 1; i > 1; i--) {
            if (buf[i - 1] == '\n' && Character.isLetterOrDigit(buf[i]) && isVisible(buf[i - 2])) return i;
        }
        return 0;
    }

    private static boolean isVisible(char c) {
        return Character.isLetterOrDigit(c) || (c > ' ' && c < 127);
    }

    private static InputStream counting(InputStream in, long[] count) {
        return new FilterInputStream(in) {
            @Override public int read() throws IOException {
                int b = super.read();
                if (b >= 0) count[0]++;
                return b;
            }
            @Override public int read(byte[] b, int off, int len) throws IOException {
                int n = super.read(b, off, len);
                if (n > 0) count[0] += n;
                return n;
            }
        };
    }

    /** A growable int array of the whole corpus's tokens. */
    private static final class TokenStream {
        int[] tokens = new int[1 << 16];
        int size;

        void add(int token) {
            reserve(1);
            tokens[size++] = token;
        }

        void add(int[] more) {
            reserve(more.length);
            System.arraycopy(more, 0, tokens, size, more.length);
            size += more.length;
        }

        private void reserve(int extra) {
            long needed = (long) size + extra;
            if (needed > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("corpus exceeds " + (Integer.MAX_VALUE - 8)
                        + " tokens, the most one prepare run holds; split the input");
            }
            if (needed > tokens.length) {
                tokens = Arrays.copyOf(tokens, (int) Math.min(Integer.MAX_VALUE - 8, Math.max(needed, tokens.length * 2L)));
            }
        }
    }

    // ---- meta.yaml ----

    private static void writeMeta(Path meta, Tokenizer tok, double valFraction, List<Source> sources,
                                  long trainTokens, int trainCrc, long valTokens, int valCrc) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("format", META_FORMAT);
        m.put("tokenizer", tok.name());
        tok.file().ifPresent(f -> m.put("tokenizer_file", f.toAbsolutePath().normalize().toString()));
        m.put("vocab_size", tok.vocabSize());
        m.put("end_of_text", tok.endOfText());
        m.put("val_fraction", valFraction);
        List<Map<String, Object>> src = new ArrayList<>();
        for (Source s : sources) {
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("name", s.name());
            e.put("bytes", s.bytes());
            e.put("crc32c", hex(s.crc32c()));
            src.add(e);
        }
        m.put("sources", src);
        m.put("train", shardEntry(TRAIN_FILE, trainTokens, trainCrc));
        m.put("val", shardEntry(VAL_FILE, valTokens, valCrc));
        DumperOptions options = new DumperOptions();
        options.setDefaultFlowStyle(DumperOptions.FlowStyle.BLOCK);
        String yaml = "# written by weft prepare; the shards are reused while this matches the source\n"
                + new Yaml(options).dump(m);
        try {
            Path tmp = Files.createTempFile(meta.toAbsolutePath().getParent(), META_FILE + ".", ".tmp");
            try {
                Files.writeString(tmp, yaml);
                try {
                    Files.move(tmp, meta, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                } catch (AtomicMoveNotSupportedException e) {
                    Files.move(tmp, meta, StandardCopyOption.REPLACE_EXISTING);
                }
            } finally {
                Files.deleteIfExists(tmp);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + meta + ": " + e, e);
        }
    }

    private static Map<String, Object> shardEntry(String file, long tokens, int crc) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("file", file);
        e.put("tokens", tokens);
        e.put("crc32c", hex(crc));
        return e;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> readMeta(Path meta) {
        try {
            Object o = new Yaml(new SafeConstructor(new LoaderOptions())).load(Files.readString(meta));
            if (!(o instanceof Map)) throw new IllegalArgumentException(meta + " is not a YAML mapping");
            return (Map<String, Object>) o;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + meta + ": " + e, e);
        }
    }

    /** Why the recorded preparation does not fit the request, or null when it does. */
    private static String metaMismatch(Map<String, Object> meta, Path input, List<Path> files, Tokenizer tok, double valFraction) {
        if (!Objects.equals(meta.get("format"), META_FORMAT)) return "meta.yaml format " + meta.get("format") + ", expected " + META_FORMAT;
        if (!tok.name().equals(meta.get("tokenizer"))) return "tokenizer was " + meta.get("tokenizer") + ", now " + tok.name();
        if (!Objects.equals(meta.get("vocab_size"), tok.vocabSize())) return "vocab size was " + meta.get("vocab_size") + ", now " + tok.vocabSize();
        if (!(meta.get("val_fraction") instanceof Number recordedFraction) || recordedFraction.doubleValue() != valFraction) {
            return "val fraction was " + meta.get("val_fraction") + ", now " + valFraction;
        }
        if (!(meta.get("sources") instanceof List<?> recorded)) return "meta.yaml lists no sources";
        if (recorded.size() != files.size()) return "source file count was " + recorded.size() + ", now " + files.size();
        for (int i = 0; i < files.size(); i++) {
            if (!(recorded.get(i) instanceof Map<?, ?> r)) return "meta.yaml source " + i + " is malformed";
            Path f = files.get(i);
            String name = displayName(input, f);
            if (!name.equals(r.get("name"))) return "source " + i + " was " + r.get("name") + ", now " + name;
            long size;
            try {
                size = Files.size(f);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot read input " + f + ": " + e, e);
            }
            if (!(r.get("bytes") instanceof Number b) || b.longValue() != size) {
                return name + " was " + r.get("bytes") + " bytes, now " + size;
            }
        }
        // Sizes match: only now read the sources in full to compare their content.
        for (int i = 0; i < files.size(); i++) {
            Map<?, ?> r = (Map<?, ?>) recorded.get(i);
            String crc = hex(crcOf(files.get(i)));
            if (!crc.equals(r.get("crc32c"))) {
                return displayName(input, files.get(i)) + " changed (CRC32C was " + r.get("crc32c") + ", now " + crc + ")";
            }
        }
        return null;
    }

    /** Opens the recorded shards to check they are intact and are the ones meta.yaml describes. */
    private static PreparedData openRecorded(Path dir, Map<String, Object> meta, Tokenizer tok) {
        Path train = dir.resolve(TRAIN_FILE);
        Path val = dir.resolve(VAL_FILE);
        long[] counts = new long[2];
        int i = 0;
        for (String split : List.of("train", "val")) {
            Path file = i == 0 ? train : val;
            if (!(meta.get(split) instanceof Map<?, ?> entry)) throw new IllegalArgumentException("meta.yaml has no '" + split + "' entry");
            try (TokenShard shard = TokenShard.open(file)) {
                if (!shard.tokenizer().equals(tok.name()) || shard.vocabSize() != tok.vocabSize()) {
                    throw new IllegalArgumentException(file + " holds " + shard.tokenizer() + " tokens, expected " + tok.name());
                }
                if (!(entry.get("tokens") instanceof Number n) || n.longValue() != shard.count()
                        || !hex(shard.payloadCrc32c()).equals(entry.get("crc32c"))) {
                    throw new IllegalArgumentException(file + " (" + shard.count() + " tokens, CRC32C "
                            + hex(shard.payloadCrc32c()) + ") is not the shard meta.yaml records (" + entry.get("tokens")
                            + " tokens, CRC32C " + entry.get("crc32c") + ")");
                }
                counts[i++] = shard.count();
            }
        }
        return new PreparedData(train, val, dir.resolve(META_FILE), tok.name(), tok.vocabSize(), counts[0], counts[1], true);
    }

    private static int crcOf(Path file) {
        CRC32C crc = new CRC32C();
        byte[] buf = new byte[1 << 16];
        try (InputStream in = Files.newInputStream(file)) {
            for (int n; (n = in.read(buf)) > 0; ) crc.update(buf, 0, n);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read input " + file + ": " + e, e);
        }
        return (int) crc.getValue();
    }

    private static String hex(int v) {
        return String.format("%08x", v);
    }
}
