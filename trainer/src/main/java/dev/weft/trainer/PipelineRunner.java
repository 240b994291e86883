package dev.weft.trainer;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.DeferredWeights;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.core.ops.Elementwise;
import dev.weft.parallel.GradientSync;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.Work;
import dev.weft.parallel.pipeline.Action;
import dev.weft.parallel.pipeline.PipelineSync;
import dev.weft.parallel.pipeline.Schedule;
import dev.weft.trainer.data.BatchSampler;
import dev.weft.trainer.data.MicroBatches;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs one step's micro-batches through this rank's pipeline stages in the order its schedule
 * lists: forward, backward (whole, or split into its input and weight halves) and the transfers
 * between stages, as tagged point-to-point messages over the pipeline group. Sends are posted
 * asynchronously and receives block, which is what {@link dev.weft.parallel.pipeline.ScheduleValidator}
 * proves deadlock-free.
 *
 * <p>Each (micro-batch, stage) lives in its own {@link Scope}, opened at its first action and
 * closed once its backward (and its weight pass) is done and its sends have landed, so a stage
 * holds the activations the schedule keeps in flight and no more.
 */
final class PipelineRunner {
    private static final int ACTIVATION = 0, GRADIENT = 1;

    private final Llama model;
    private final Schedule schedule;
    private final int rank;
    private final ProcessGroup pipeline;
    private final int[][] layers; // [stage] = {first layer, end}
    private final PipelineSync sync;
    private final Map<Integer, List<Tensor>> weights = new HashMap<>(); // per stage held here, for the split backward
    private final Parallelize.Loss loss;
    private final MicroBatches sampler;
    private final int dpRank, accum, rows, seqLen, seqBlocks; // seqBlocks: the sequence is split over tp under sequence parallelism
    private final int dModel;

    /** One micro-batch on one stage while it is in flight. */
    private static final class InFlight {
        final Scope scope = Scope.create();
        Tensor input, output, outputGrad;
        DeferredWeights deferred;
        final List<Work> sends = new ArrayList<>();
        boolean backwardDone, gradientSent;
    }

    private final Map<Long, InFlight> inFlight = new HashMap<>();
    private final PipelineTimeline timeline;
    private final int[] backwardsDone;
    private double lossSum;

    PipelineRunner(Llama model, Schedule schedule, int rank, ProcessGroup pipeline, int[][] layers, PipelineSync sync, Parallelize.Loss loss,
                   MicroBatches sampler, int dpRank, int accum, int rows, int seqLen, int seqBlocks) {
        this.rows = rows;
        this.seqLen = seqLen;
        this.model = model;
        this.schedule = schedule;
        this.rank = rank;
        this.pipeline = pipeline;
        this.layers = layers;
        this.sync = sync;
        this.loss = loss;
        this.sampler = sampler;
        this.dpRank = dpRank;
        this.accum = accum;
        this.seqBlocks = seqBlocks;
        this.dModel = model.config().dModel();
        this.backwardsDone = new int[schedule.stages()];
        this.timeline = new PipelineTimeline(schedule, rank);
        Map<String, Tensor> params = model.namedParameters();
        for (int s = 0; s < schedule.stages(); s++) {
            if (schedule.rankOf(s) != rank) continue;
            List<Tensor> mine = new ArrayList<>();
            for (var e : params.entrySet()) if (PipelineStages.stageOfParameter(layers, e.getKey()) == s) mine.add(e.getValue());
            weights.put(s, mine);
        }
    }

    /** Runs step {@code step}'s micro-batches; returns the sum of their losses, on every rank of the pipeline. */
    double run(long step) {
        lossSum = 0;
        java.util.Arrays.fill(backwardsDone, 0);
        timeline.stepStarted();
        try {
            List<Action> actions = schedule.actions(rank);
            for (int i = 0; i < actions.size(); i++) execute(step, actions.get(i), i);
            for (InFlight f : inFlight.values()) for (Work w : f.sends) w.await();
        } finally {
            for (InFlight f : inFlight.values()) release(f);
            inFlight.clear();
        }
        double sum = pipeline.sum(lossSum);
        timeline.stepEnded();
        return sum;
    }

    /** When this rank computed in the steps run so far. */
    PipelineTimeline timeline() {
        return timeline;
    }

    private InFlight slot(int microBatch, int stage) {
        return inFlight.computeIfAbsent((long) microBatch * schedule.stages() + stage, k -> new InFlight());
    }

    /** Runs {@code a}, action {@code index} of this rank's list. */
    private void execute(long step, Action a, int index) {
        int mb = a.microBatch(), s = a.localStage();
        InFlight f = slot(mb, s);
        timeline.started(index);
        try (Scope.Active ignored = f.scope.activate()) {
            switch (a.kind()) {
                case FORWARD -> forward(step, mb, s, f);
                case SEND_ACTIVATION -> f.sends.add(pipeline.sendAsync(f.output, schedule.rankOf(a.stage()), tag(ACTIVATION, mb, a.stage())));
                case RECV_ACTIVATION -> {
                    f.input = activationBuffer();
                    pipeline.recv(f.input, schedule.rankOf(a.stage()), tag(ACTIVATION, mb, s));
                    f.input.requiresGrad(true);
                }
                case RECV_GRADIENT -> {
                    f.outputGrad = activationBuffer();
                    pipeline.recv(f.outputGrad, schedule.rankOf(a.stage()), tag(GRADIENT, mb, s));
                }
                case SEND_GRADIENT -> {
                    f.sends.add(pipeline.sendAsync(f.input.grad(), schedule.rankOf(a.stage()), tag(GRADIENT, mb, a.stage())));
                    f.gradientSent = true;
                }
                case BACKWARD -> {
                    beginMicroStep(s);
                    backward(mb, s, f);
                }
                case BACKWARD_INPUT -> {
                    f.deferred = Autograd.deferWeightGradients(weights.get(s));
                    try (DeferredWeights recording = f.deferred) {
                        backward(mb, s, f);
                    }
                }
                case BACKWARD_WEIGHT -> {
                    beginMicroStep(s);
                    f.deferred.run();
                    f.deferred = null;
                }
            }
        }
        timeline.ended(index); // the computation only: what follows may wait for its sends to land
        // done once its backward (and weight pass) ran and its input gradient left; a stage whose neighbour is on
        // this rank (a one-rank pipeline) keeps it for that neighbour until the step ends
        if (f.backwardDone && f.deferred == null && (s == 0 || f.gradientSent)) {
            for (Work w : f.sends) w.await();
            release(f);
            inFlight.remove((long) mb * schedule.stages() + s);
        }
    }

    private void beginMicroStep(int stage) {
        sync.stage(stage).beginMicroStep(++backwardsDone[stage] == accum);
    }

    private void forward(long step, int mb, int s, InFlight f) {
        boolean ends = s == 0 || s == schedule.stages() - 1; // only the ends read tokens: ids in, targets for the loss
        BatchSampler.Batch b = ends ? sampler.batch(step, mb, dpRank) : null;
        if (s > 0 && f.input == null) { // the previous stage is on this rank: hand over in memory
            f.input = slot(mb, s - 1).output.detach();
            f.input.requiresGrad(true);
        }
        Tensor out = model.forwardStage(s == 0 ? b.inputs() : null, f.input, rows, seqLen, layers[s][0], layers[s][1]);
        if (s == schedule.stages() - 1) {
            Tensor l = loss.of(out, b.targets());
            lossSum += l.item();
            out = accum == 1 ? l : Elementwise.scale(l, 1f / accum);
        }
        f.output = out;
    }

    private void backward(int mb, int s, InFlight f) {
        if (s == schedule.stages() - 1) {
            Autograd.backward(f.output);
        } else {
            Tensor g = f.outputGrad != null ? f.outputGrad : slot(mb, s + 1).input.grad();
            Autograd.backward(f.output, g);
        }
        f.backwardDone = true;
    }

    /** A received activation or gradient: [micro_batch, seq (its block under sequence parallelism), d]. */
    private Tensor activationBuffer() {
        return Tensor.empty(DType.F32, "pipeline activations", rows, seqLen / seqBlocks, dModel);
    }

    private int tag(int kind, int microBatch, int stage) {
        return (kind * accum + microBatch) * schedule.stages() + stage;
    }

    private static void release(InFlight f) {
        if (f.deferred != null) f.deferred.discard();
        if (f.input != null) f.input.clearGrad();
        f.scope.close();
    }

    /**
     * The mean loss of an evaluation batch through the stages in order, forward only: each rank
     * computes its stages and passes the hidden states on; the last stage's loss reaches every rank.
     */
    double evaluate(BatchSampler.Batch b) {
        double value = 0;
        try (var ng = Autograd.noGrad(); Scope scope = Scope.open()) {
            Tensor h = null;
            for (int s = 0; s < schedule.stages(); s++) {
                int owner = schedule.rankOf(s);
                if (owner != rank) continue;
                if (s > 0 && schedule.rankOf(s - 1) != rank) {
                    h = Tensor.empty(DType.F32, "pipeline activations", b.rows(), b.seqLen() / seqBlocks, dModel);
                    pipeline.recv(h, schedule.rankOf(s - 1), tag(ACTIVATION, 0, s));
                }
                Tensor out = model.forwardStage(b.inputs(), h, b.rows(), b.seqLen(), layers[s][0], layers[s][1]);
                if (s == schedule.stages() - 1) value = loss.of(out, b.targets()).item();
                else if (schedule.rankOf(s + 1) != rank) pipeline.send(out, schedule.rankOf(s + 1), tag(ACTIVATION, 0, s + 1));
                else h = out;
            }
        }
        return pipeline.sum(value);
    }
}
