package dev.weft.trainer.data;

/**
 * The loss a model would reach by learning only token frequencies: a floor any trained language
 * model should beat, printed next to the validation loss.
 */
public final class UnigramBaseline {
    private UnigramBaseline() {}

    /**
     * Mean negative log-likelihood in nats of {@code val}'s tokens under the add-one-smoothed
     * unigram distribution of {@code train}'s: {@code p(t) = (count(t) + 1) / (N + V)}.
     */
    public static double crossEntropy(TokenShard train, TokenShard val) {
        if (train.vocabSize() != val.vocabSize() || !train.tokenizer().equals(val.tokenizer())) {
            throw new IllegalArgumentException("train shard " + train.file() + " (" + train.tokenizer() + ", vocab "
                    + train.vocabSize() + ") and val shard " + val.file() + " (" + val.tokenizer() + ", vocab "
                    + val.vocabSize() + ") come from different tokenizers");
        }
        if (val.count() == 0) throw new IllegalArgumentException("val shard " + val.file() + " has no tokens");
        int vocab = train.vocabSize();
        long[] trainCounts = counts(train);
        long[] valCounts = counts(val);
        double logDenominator = Math.log((double) train.count() + vocab);
        double nll = 0;
        for (int t = 0; t < vocab; t++) {
            if (valCounts[t] != 0) nll += valCounts[t] * (logDenominator - Math.log(trainCounts[t] + 1.0));
        }
        return nll / val.count();
    }

    private static long[] counts(TokenShard shard) {
        long[] counts = new long[shard.vocabSize()];
        int[] buf = new int[1 << 16];
        for (long from = 0; from < shard.count(); from += buf.length) {
            int len = (int) Math.min(buf.length, shard.count() - from);
            shard.read(from, buf, 0, len);
            for (int i = 0; i < len; i++) counts[buf[i]]++;
        }
        return counts;
    }
}
