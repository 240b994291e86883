package dev.weft.checkpoint;

import dev.weft.core.UserError;

import java.io.IOException;

/** A write would take a snapshot store over its size budget. */
public final class SnapshotStoreFullException extends IOException implements UserError {
    public SnapshotStoreFullException(String message) {
        super(message);
    }
}
