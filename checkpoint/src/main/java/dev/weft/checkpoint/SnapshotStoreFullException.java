package dev.weft.checkpoint;

import java.io.IOException;

/** A write would take a snapshot store over its size budget. */
public final class SnapshotStoreFullException extends IOException {
    public SnapshotStoreFullException(String message) {
        super(message);
    }
}
