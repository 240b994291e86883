package dev.weft.trainer.schedule;

/**
 * The learning rate as a function of the optimizer step (0-based: step 0 is the first update).
 * Implementations are pure functions of the step, so a run resumed from a checkpoint at step
 * {@code s} gets exactly the rates it would have had.
 */
@FunctionalInterface
public interface LrSchedule {
    /** The learning rate for optimizer step {@code step} (>= 0). */
    double lr(long step);

    /** The same rate at every step. */
    static LrSchedule constant(double lr) {
        return new ConstantLr(lr);
    }

    /**
     * Linear warmup, then cosine decay, then constant.
     * <ul>
     *   <li>{@code step < warmupSteps}: {@code peakLr * (step + 1) / warmupSteps}; the first step
     *       already moves (at {@code peakLr / warmupSteps}) rather than wasting a step at zero, and
     *       the last warmup step reaches {@code peakLr}.</li>
     *   <li>{@code warmupSteps <= step <= totalSteps}: {@code minLr + (peakLr - minLr) * (1 + cos(pi * p)) / 2}
     *       with {@code p = (step - warmupSteps) / (totalSteps - warmupSteps)}: {@code peakLr} at the
     *       end of warmup, {@code minLr} at {@code totalSteps}.</li>
     *   <li>{@code step >= totalSteps}: {@code minLr}.</li>
     * </ul>
     * {@code warmupSteps} may be 0 (decay from the first step) and may equal {@code totalSteps}
     * (warmup, then {@code minLr}); above {@code totalSteps} it is clamped to it, so a run shorter
     * than its config's warmup warms up throughout and still reaches {@code peakLr} on its last step.
     */
    static LrSchedule warmupCosine(double peakLr, double minLr, long warmupSteps, long totalSteps) {
        return new WarmupCosine(peakLr, minLr, Math.min(warmupSteps, totalSteps), totalSteps);
    }
}
