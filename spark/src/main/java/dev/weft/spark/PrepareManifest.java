package dev.weft.spark;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.weft.spark.Documents.SourceFile;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code manifest.json}: what a Spark prepare run made its shards from and how. Written last and
 * atomically, after the shards, so a directory with a manifest holds the shards it describes.
 */
final class PrepareManifest {
    static final int FORMAT = 1;

    private PrepareManifest() {}

    static void write(PrepareReport r, PrepareOptions o, List<SourceFile> files) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("format", FORMAT);
        m.put("writer", "weft prepare --spark-master");
        m.put("tokenizer", Map.of("name", r.tokenizer(), "vocab_size", r.vocabSize(), "end_of_text", r.endOfText()));
        Map<String, Object> opts = new LinkedHashMap<>();
        opts.put("master", o.master());
        opts.put("format", o.format().label());
        if (o.format() != PrepareOptions.Format.TEXT) opts.put("column", o.column());
        opts.put("nfc", o.nfc());
        opts.put("min_chars", o.minChars());
        opts.put("dedup", o.dedup().label());
        if (o.dedup() == PrepareOptions.Dedup.NEAR) {
            MinHash.Params p = o.nearDup();
            opts.put("near_duplicates", Map.of("shingle_words", p.shingleWords(), "hashes", p.hashes(), "bands", p.bands(),
                    "rows", p.rows(), "threshold", p.threshold(), "seed", p.seed()));
        }
        opts.put("split", o.split().label());
        opts.put("val_fraction", o.valFraction());
        m.put("options", opts);
        List<Map<String, Object>> inputs = new ArrayList<>();
        for (SourceFile f : files) inputs.add(Map.of("path", f.path(), "bytes", f.bytes()));
        m.put("inputs", inputs);
        Map<String, Object> docs = new LinkedHashMap<>();
        docs.put("read", r.documentsRead());
        docs.put("kept", r.documentsKept());
        docs.put("dropped", new TreeMap<>(r.droppedDocuments()));
        m.put("documents", docs);
        Map<String, Object> toks = new LinkedHashMap<>();
        toks.put("kept", r.tokensKept());
        toks.put("dropped", new TreeMap<>(r.droppedTokens()));
        m.put("tokens", toks);
        Map<String, Object> shards = new LinkedHashMap<>();
        shards.put("train", shard(r.train(), r.trainTokens(), r.trainCrc32c()));
        shards.put("val", shard(r.val(), r.valTokens(), r.valCrc32c()));
        m.put("shards", shards);
        try {
            String json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(m);
            Path tmp = Files.createTempFile(r.manifest().toAbsolutePath().getParent(), SparkPrepare.MANIFEST_FILE + ".", ".tmp");
            try {
                Files.writeString(tmp, json + "\n");
                try {
                    Files.move(tmp, r.manifest(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                } catch (AtomicMoveNotSupportedException e) {
                    Files.move(tmp, r.manifest(), StandardCopyOption.REPLACE_EXISTING);
                }
            } finally {
                Files.deleteIfExists(tmp);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + r.manifest() + ": " + e.getMessage(), e);
        }
    }

    private static Map<String, Object> shard(Path file, long tokens, int crc) {
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("file", file.getFileName().toString());
        s.put("tokens", tokens);
        s.put("crc32c", String.format("%08x", crc));
        return s;
    }
}
