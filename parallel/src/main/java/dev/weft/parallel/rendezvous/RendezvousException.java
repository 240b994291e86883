package dev.weft.parallel.rendezvous;

import dev.weft.core.UserError;

/** Rendezvous failed: refused (wrong secret, bad claim), timed out (names the missing ranks), or unreachable. */
public final class RendezvousException extends RuntimeException implements UserError {
    public RendezvousException(String message) {
        super(message);
    }

    public RendezvousException(String message, Throwable cause) {
        super(message, cause);
    }
}
