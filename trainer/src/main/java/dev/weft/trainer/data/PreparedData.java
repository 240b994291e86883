package dev.weft.trainer.data;

import java.nio.file.Path;

/**
 * Where {@link Prepare} put a corpus's token shards and what they hold.
 *
 * @param reused true when {@link Prepare#ensure} found matching shards and did not tokenise again
 */
public record PreparedData(Path train, Path val, Path meta, String tokenizer, int vocabSize,
                           long trainTokens, long valTokens, boolean reused) {}
