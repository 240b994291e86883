package dev.weft.offload;

import dev.weft.core.UserError;

/** The disk tier could not take a write: its budget or its filesystem is full. The message says which and what to do. */
public final class DiskFullException extends RuntimeException implements UserError {
    public DiskFullException(String message, Throwable cause) {
        super(message, cause);
    }
}
