package dev.weft.trainer.data;

import dev.weft.core.UserError;

import java.nio.file.Path;

/** A token shard that cannot be trusted: truncated, not a shard, corrupted, or inconsistent. */
public final class ShardFormatException extends RuntimeException implements UserError {
    private final Path file;

    ShardFormatException(Path file, String problem) {
        super("token shard " + file + ": " + problem);
        this.file = file;
    }

    /** The shard the problem was found in. */
    public Path file() {
        return file;
    }
}
