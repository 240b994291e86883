package dev.weft.parallel.rendezvous;

/** Rendezvous failed: refused (wrong secret, bad claim), timed out (names the missing ranks), or unreachable. */
public final class RendezvousException extends RuntimeException {
    public RendezvousException(String message) {
        super(message);
    }

    public RendezvousException(String message, Throwable cause) {
        super(message, cause);
    }
}
