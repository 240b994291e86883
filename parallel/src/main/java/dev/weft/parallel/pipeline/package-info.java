/**
 * Pipeline schedules as data: which rank computes what, on which stage, in which order, and which
 * tensors cross between ranks.
 *
 * <p><b>Public API.</b> {@link dev.weft.parallel.pipeline.Action} and
 * {@link dev.weft.parallel.pipeline.Schedule} (the data); {@link dev.weft.parallel.pipeline.Schedules}
 * (GPipe, 1F1B, interleaved 1F1B, ZB-H1, and {@code byName} for the config's names);
 * {@link dev.weft.parallel.pipeline.ScheduleValidator} (proves a schedule sound or names the broken
 * rule, rank and action); {@link dev.weft.parallel.pipeline.ScheduleSimulator} with
 * {@link dev.weft.parallel.pipeline.Costs} (bubble, makespan and peak memory on an idealised machine).
 *
 * <p><b>What a runtime may rely on.</b> A schedule that validates finishes on every rank when sends
 * are posted without waiting (buffered) and receives block: that is the semantics the validator
 * replays. Stage s lives on rank {@code s % ranks}; a transfer's {@code stage} names its peer stage;
 * neighbouring stages on one rank hand over in memory. A BACKWARD_INPUT runs
 * {@code Autograd.backward} inside {@code Autograd.deferWeightGradients(stageParameters)} and keeps
 * the returned {@code DeferredWeights}; the micro-batch's BACKWARD_WEIGHT calls its {@code run()}.
 * The micro-batch's scope must stay open until then, as the weight pass reads its activations.
 */
package dev.weft.parallel.pipeline;
