package dev.weft.trainer.data;

/** Where a step's micro-batches come from: a pure function of (step, micro-step, data-parallel rank). */
public interface MicroBatches {
    BatchSampler.Batch batch(long step, int microStep, int dpRank);
}
