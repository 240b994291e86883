package dev.weft.core;

import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * Marks an exception whose message is a complete diagnosis of bad input: a config, a file, a
 * budget, a peer that never came. The user can fix it without reading weft's code, so an entry
 * point shows the message alone; any other exception is a bug in weft and keeps its stack trace.
 */
public interface UserError {
    /**
     * Whether {@code e} is the user's to fix. Besides the marked exceptions, a bad argument and a
     * failed file operation are: their messages name the value or the path.
     */
    static boolean isUserError(Throwable e) {
        return e instanceof UserError
                || e instanceof IllegalArgumentException
                || e instanceof IOException
                || e instanceof UncheckedIOException;
    }
}
