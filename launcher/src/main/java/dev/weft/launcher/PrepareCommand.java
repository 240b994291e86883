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
import java.util.concurrent.Callable;

/** {@code weft prepare}: tokenises a text corpus into train/val token shards. */
@Command(name = "prepare", mixinStandardHelpOptions = true,
        description = {"Tokenise a text file, or every *.txt in a directory (sorted, joined by end-of-text),",
                "into DIR/train.bin, DIR/val.bin and DIR/meta.yaml. Validation is the last --val-fraction of the tokens."})
public final class PrepareCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--input", required = true, paramLabel = "FILE|DIR", description = "Text file or directory of *.txt files.")
    Path input;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output directory for the shards.")
    Path out;

    @Option(names = "--tokenizer", defaultValue = "gpt2", paramLabel = "NAME|PATH",
            description = "Tokenizer: gpt2, byte or the path of a Hugging Face tokenizer.json (default: ${DEFAULT-VALUE}).")
    String tokenizer;

    @Option(names = "--val-fraction", defaultValue = "0.1", paramLabel = "F",
            description = "Share of tokens held out for validation, in (0, 1) (default: ${DEFAULT-VALUE}).")
    double valFraction;

    @Override
    public Integer call() {
        Tokenizer tok = Tokenizer.byName(tokenizer);
        PrintWriter w = spec.commandLine().getOut();
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

    /** A PrintStream whose lines go to {@code w}, so progress lands where the command's output goes. */
    private static PrintStream linesTo(PrintWriter w) {
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
