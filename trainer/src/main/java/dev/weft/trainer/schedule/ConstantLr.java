package dev.weft.trainer.schedule;

/** A fixed learning rate. */
record ConstantLr(double value) implements LrSchedule {
    ConstantLr {
        if (!Double.isFinite(value) || value < 0)
            throw new IllegalArgumentException("learning rate must be a finite number >= 0, got " + value);
    }

    @Override
    public double lr(long step) {
        WarmupCosine.checkStep(step);
        return value;
    }

    @Override
    public String toString() {
        return "constant(" + value + ")";
    }
}
