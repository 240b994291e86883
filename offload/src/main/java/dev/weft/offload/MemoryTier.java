package dev.weft.offload;

/**
 * One place the bytes of training can live: device (the compute pool, where
 * {@code train.memory_budget_mib} applies), host (a separate pool outside that budget) or disk
 * (files under {@code offload.disk_dir}). Each has a budget and reports what it holds now and at
 * its peak, so the trainer can print every tier beside the planner's prediction.
 */
public interface MemoryTier {
    /** "device", "host" or "disk". */
    String name();

    /** The most bytes this tier may hold ({@code Long.MAX_VALUE}: no limit). */
    long budgetBytes();

    long currentBytes();

    long peakBytes();

    /** Starts a new peak measurement from the current figure. */
    void resetPeak();
}
