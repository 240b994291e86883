package dev.weft.launcher;

import dev.weft.trainer.data.Prepare;
import dev.weft.trainer.data.PreparedData;
import dev.weft.trainer.data.TokenShard;
import dev.weft.trainer.data.Tokenizer;
import dev.weft.trainer.data.UnigramBaseline;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code weft prepare}: tokenises a text corpus into train/val token shards. */
@Command(name = "prepare", mixinStandardHelpOptions = true,
        description = {"Tokenise a text file, or every *.txt in a directory (sorted, joined by end-of-text),",
                "into DIR/train.bin, DIR/val.bin and DIR/meta.yaml. Validation is the last --val-fraction of the tokens.",
                "With --spark-master the work runs as a Spark job that also cleans the corpus: NFC, --min-chars, exact and",
                "near-duplicate removal (--dedup), then the same shards plus DIR/manifest.json instead of meta.yaml."})
public final class PrepareCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--input", required = true, arity = "1..*", paramLabel = "PATH",
            description = "Text file or directory of *.txt files. With --spark-master: one or more files, directories or globs on any"
                    + " Hadoop filesystem.")
    List<String> inputs;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output directory for the shards.")
    Path out;

    @Option(names = "--tokenizer", defaultValue = "gpt2", paramLabel = "NAME|PATH",
            description = "Tokenizer: gpt2, byte or the path of a Hugging Face tokenizer.json (default: ${DEFAULT-VALUE}).")
    String tokenizer;

    @Option(names = "--val-fraction", defaultValue = "0.1", paramLabel = "F",
            description = "Share of tokens held out for validation, in (0, 1) (default: ${DEFAULT-VALUE}).")
    double valFraction;

    @Option(names = "--spark-master", arity = "0..1", fallbackValue = "local[*]", paramLabel = "MASTER",
            description = "Run as a Spark job on MASTER: local[N], local[*] (the value when none is given), local-cluster[W,C,MB],"
                    + " spark://HOST:PORT, yarn or k8s://URL.")
    String sparkMaster;

    @Option(names = "--format", defaultValue = "text", paramLabel = "FORMAT",
            description = "Spark: text (a file is one document, as without Spark), jsonl or parquet (a row is one document)"
                    + " (default: ${DEFAULT-VALUE}).")
    String format;

    @Option(names = "--column", defaultValue = "text", paramLabel = "NAME",
            description = "Spark: the JSONL field or Parquet column holding the text (default: ${DEFAULT-VALUE}).")
    String column;

    @Option(names = "--min-chars", defaultValue = "0", paramLabel = "N",
            description = "Spark: drop documents shorter than N characters after NFC (default: ${DEFAULT-VALUE}, keep all).")
    int minChars;

    @Option(names = "--dedup", defaultValue = "near", paramLabel = "MODE",
            description = "Spark: none, exact (same content hash) or near (exact, then MinHash LSH) (default: ${DEFAULT-VALUE}).")
    String dedup;

    @Option(names = "--split", defaultValue = "tail", paramLabel = "MODE",
            description = "Spark: tail (the last --val-fraction of the tokens, as without Spark) or hash (a document is val when its"
                    + " content hash is below --val-fraction) (default: ${DEFAULT-VALUE}).")
    String split;

    @Option(names = "--no-nfc", description = "Spark: keep the text as read instead of NFC-normalising it.")
    boolean noNfc;

    @Option(names = "--shingle-words", defaultValue = "5", paramLabel = "K", description = "Spark near dedup: words per shingle (default: ${DEFAULT-VALUE}).")
    int shingleWords;

    @Option(names = "--minhash-bands", defaultValue = "20", paramLabel = "B", description = "Spark near dedup: LSH bands (default: ${DEFAULT-VALUE}).")
    int bands;

    @Option(names = "--minhash-rows", defaultValue = "6", paramLabel = "R",
            description = "Spark near dedup: signature positions per band; B x R hashes in all (default: ${DEFAULT-VALUE}).")
    int rows;

    @Option(names = "--near-threshold", defaultValue = "0.8", paramLabel = "J",
            description = "Spark near dedup: estimated Jaccard similarity of shingles at or above which a later document is dropped"
                    + " (default: ${DEFAULT-VALUE}).")
    double nearThreshold;

    @Option(names = "--spark-conf", paramLabel = "KEY=VALUE", description = "Spark: a Spark setting, for example spark.executor.memory=4g; repeatable.")
    List<String> sparkConf = new ArrayList<>();

    /** Options that only the Spark job reads; given without --spark-master they are an error rather than ignored. */
    private static final List<String> SPARK_ONLY = List.of("--format", "--column", "--min-chars", "--dedup", "--split", "--no-nfc",
            "--shingle-words", "--minhash-bands", "--minhash-rows", "--near-threshold", "--spark-conf");

    @Override
    public Integer call() {
        Tokenizer tok = Tokenizer.byName(tokenizer);
        PrintWriter w = spec.commandLine().getOut();
        if (sparkMaster != null) return new SparkPreparation(this).run(tok, w, linesTo(w));
        for (String o : SPARK_ONLY) {
            if (spec.commandLine().getParseResult().hasMatchedOption(o)) throw new IllegalArgumentException(o + " needs --spark-master");
        }
        if (inputs.size() > 1) throw new IllegalArgumentException("several --input paths need --spark-master; without it, give one file or directory");
        Path input = Path.of(inputs.get(0));
        PreparedData data = Prepare.run(input, out, tok, valFraction, linesTo(w));
        double baseline;
        try (TokenShard train = TokenShard.open(data.train()); TokenShard val = TokenShard.open(data.val())) {
            baseline = UnigramBaseline.crossEntropy(train, val);
        }
        w.printf("tokenizer:        %s (vocab %d)%n", data.tokenizer(), data.vocabSize());
        w.printf("train tokens:     %d%n", data.trainTokens());
        w.printf("val tokens:       %d%n", data.valTokens());
        w.printf("unigram baseline: %.4f nats/token on val (add-one smoothed train unigram; a model should beat this)%n", baseline);
        w.printf("train:            %s%n", data.train());
        w.printf("val:              %s%n", data.val());
        w.printf("meta:             %s%n", data.meta());
        w.flush();
        return 0;
    }

    /** The --spark-conf settings, in order; a malformed one is an IllegalArgumentException. */
    Map<String, String> sparkSettings() {
        Map<String, String> m = new LinkedHashMap<>();
        for (String kv : sparkConf) {
            int eq = kv.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("--spark-conf '" + kv + "' is not KEY=VALUE");
            m.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        return m;
    }

    /** A PrintStream whose lines go to {@code w}, so progress lands where the command's output goes. */
    static PrintStream linesTo(PrintWriter w) {
        OutputStream lines = new ByteArrayOutputStream() {
            @Override
            public synchronized void flush() {
                w.print(toString(StandardCharsets.UTF_8));
                w.flush();
                reset();
            }
        };
        return new PrintStream(lines, true, StandardCharsets.UTF_8);
    }
}
