package dev.weft.core;

/** Thrown when an allocation would take a memory pool past its budget. The message lists what was live. */
public final class MemoryBudgetExceededException extends RuntimeException implements UserError {
    public MemoryBudgetExceededException(String message) {
        super(message);
    }
}
