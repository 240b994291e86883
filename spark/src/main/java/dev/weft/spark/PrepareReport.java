package dev.weft.spark;

import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * What a Spark prepare run read, kept, dropped and wrote.
 *
 * @param droppedDocuments documents removed, by reason: too_short, exact_duplicate, near_duplicate
 * @param droppedTokens    the tokens those documents held, by the same reasons
 */
public record PrepareReport(Path out, Path train, Path val, Path manifest, String tokenizer, int vocabSize, int endOfText,
                            int files, long inputBytes, long documentsRead, long documentsKept, long tokensKept,
                            Map<String, Long> droppedDocuments, Map<String, Long> droppedTokens,
                            long trainTokens, int trainCrc32c, long valTokens, int valCrc32c, double seconds) {
    public PrepareReport {
        droppedDocuments = Map.copyOf(droppedDocuments);
        droppedTokens = Map.copyOf(droppedTokens);
    }

    /** Documents removed for any reason. */
    public long documentsDropped() {
        return droppedDocuments.values().stream().mapToLong(Long::longValue).sum();
    }

    String droppedSummary() {
        return droppedDocuments.entrySet().stream().sorted(Map.Entry.comparingByKey())
                .map(e -> e.getValue() + " " + e.getKey().replace('_', ' ')).collect(Collectors.joining(", "));
    }
}
