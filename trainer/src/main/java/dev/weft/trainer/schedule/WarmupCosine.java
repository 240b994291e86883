package dev.weft.trainer.schedule;

/** Linear warmup to the peak, cosine decay to the floor; see {@link LrSchedule#warmupCosine}. */
record WarmupCosine(double peakLr, double minLr, long warmupSteps, long totalSteps) implements LrSchedule {
    WarmupCosine {
        if (!Double.isFinite(peakLr) || peakLr <= 0)
            throw new IllegalArgumentException("peakLr must be a finite number > 0, got " + peakLr);
        if (!Double.isFinite(minLr) || minLr < 0 || minLr > peakLr)
            throw new IllegalArgumentException("minLr must be in [0, peakLr=" + peakLr + "], got " + minLr);
        if (warmupSteps < 0) throw new IllegalArgumentException("warmupSteps must be >= 0, got " + warmupSteps);
        if (totalSteps < 1) throw new IllegalArgumentException("totalSteps must be >= 1, got " + totalSteps);
        if (warmupSteps > totalSteps)
            throw new IllegalArgumentException("warmupSteps (" + warmupSteps + ") must not exceed totalSteps (" + totalSteps + ")");
    }

    @Override
    public double lr(long step) {
        checkStep(step);
        if (step < warmupSteps) return peakLr * (step + 1) / warmupSteps;
        if (step >= totalSteps) return minLr;
        double progress = (double) (step - warmupSteps) / (totalSteps - warmupSteps);
        return minLr + (peakLr - minLr) * 0.5 * (1 + StrictMath.cos(Math.PI * progress));
    }

    static void checkStep(long step) {
        if (step < 0) throw new IllegalArgumentException("step must be >= 0, got " + step);
    }

    @Override
    public String toString() {
        return "warmupCosine(peak=" + peakLr + ", min=" + minLr + ", warmup=" + warmupSteps + ", total=" + totalSteps + ")";
    }
}
