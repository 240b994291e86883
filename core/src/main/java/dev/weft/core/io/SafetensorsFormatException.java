package dev.weft.core.io;

import dev.weft.core.UserError;

import java.nio.file.Path;

/**
 * A safetensors file (or a request against one) that does not follow the format: the message
 * names the file and what is wrong with it. Unchecked, because a malformed checkpoint is a
 * problem with the input that the caller cannot retry its way out of.
 */
public class SafetensorsFormatException extends RuntimeException implements UserError {
    private final Path file;

    public SafetensorsFormatException(Path file, String problem) {
        super(file + ": " + problem);
        this.file = file;
    }

    public SafetensorsFormatException(Path file, String problem, Throwable cause) {
        super(file + ": " + problem, cause);
        this.file = file;
    }

    /** The file the problem was found in. */
    public Path file() {
        return file;
    }
}
