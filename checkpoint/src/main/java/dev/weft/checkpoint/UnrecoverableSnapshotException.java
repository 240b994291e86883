package dev.weft.checkpoint;

import java.io.IOException;

/** Fewer than k pieces of a snapshot's erasure-coded group survive, or there is no committed snapshot. */
public final class UnrecoverableSnapshotException extends IOException {
    public UnrecoverableSnapshotException(String message) {
        super(message);
    }
}
