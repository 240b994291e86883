package dev.weft.checkpoint;

import dev.weft.core.UserError;

import java.io.IOException;

/** Fewer than k pieces of a snapshot's erasure-coded group survive, or there is no committed snapshot. */
public final class UnrecoverableSnapshotException extends IOException implements UserError {
    public UnrecoverableSnapshotException(String message) {
        super(message);
    }
}
