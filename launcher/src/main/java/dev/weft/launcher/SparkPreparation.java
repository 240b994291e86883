package dev.weft.launcher;

import dev.weft.spark.MinHash;
import dev.weft.spark.PrepareOptions;
import dev.weft.spark.PrepareReport;
import dev.weft.spark.SparkPrepare;
import dev.weft.spark.SparkStart;
import dev.weft.trainer.data.TokenShard;
import dev.weft.trainer.data.Tokenizer;
import dev.weft.trainer.data.UnigramBaseline;
import org.apache.spark.sql.SparkSession;

import java.io.PrintStream;
import java.io.PrintWriter;

/**
 * The {@code --spark-master} half of {@code weft prepare}. A class of its own so that the JVM
 * loads Spark's classes only when a master is given: a plain prepare or train never pays for it.
 */
final class SparkPreparation {
    private final PrepareCommand cmd;

    SparkPreparation(PrepareCommand cmd) {
        this.cmd = cmd;
    }

    int run(Tokenizer tok, PrintWriter w, PrintStream progress) {
        PrepareOptions o = new PrepareOptions(cmd.sparkMaster, cmd.inputs, PrepareOptions.Format.parse(cmd.format), cmd.column,
                cmd.out, tok.name(), cmd.valFraction, PrepareOptions.Split.parse(cmd.split), cmd.minChars, !cmd.noNfc,
                PrepareOptions.Dedup.parse(cmd.dedup),
                new MinHash.Params(cmd.shingleWords, cmd.bands, cmd.rows, cmd.nearThreshold, MinHash.Params.DEFAULT.seed()));
        SparkPrepare.checkInputs(o, cmd.sparkSettings());
        SparkSession spark = SparkStart.session(o.master(), "weft prepare", cmd.sparkSettings(), progress);
        PrepareReport r;
        try {
            r = SparkPrepare.run(spark, o, progress);
        } catch (Exception e) { // SparkException is checked, and Scala throws it undeclared
            String user = SparkStart.userMessage(e);
            if (user != null && !(e instanceof IllegalArgumentException)) {
                // an executor's diagnosis of bad input, unwrapped from Spark's job failure
                throw new IllegalArgumentException(user.lines().findFirst().orElse(user), e);
            }
            if (e instanceof org.apache.spark.SparkException) {
                // lost executors, an unreachable cluster: the cluster's state, not a weft bug
                throw new SparkStart.StartFailure("the Spark job failed: " + e.getMessage().lines().findFirst().orElse(""), e);
            }
            throw e;
        } finally {
            spark.stop();
        }
        double baseline;
        try (TokenShard train = TokenShard.open(r.train()); TokenShard val = TokenShard.open(r.val())) {
            baseline = UnigramBaseline.crossEntropy(train, val);
        }
        w.printf("tokenizer:        %s (vocab %d)%n", r.tokenizer(), r.vocabSize());
        w.printf("documents:        %d read, %d kept, %d dropped %s%n", r.documentsRead(), r.documentsKept(), r.documentsDropped(),
                new java.util.TreeMap<>(r.droppedDocuments()));
        w.printf("train tokens:     %d%n", r.trainTokens());
        w.printf("val tokens:       %d%n", r.valTokens());
        w.printf("unigram baseline: %.4f nats/token on val (add-one smoothed train unigram; a model should beat this)%n", baseline);
        w.printf("train:            %s%n", r.train());
        w.printf("val:              %s%n", r.val());
        w.printf("manifest:         %s%n", r.manifest());
        w.flush();
        return 0;
    }
}
