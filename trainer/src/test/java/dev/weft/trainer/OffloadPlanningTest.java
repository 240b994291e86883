package dev.weft.trainer;

import dev.weft.core.MemoryPool;
import dev.weft.offload.LayerPolicy;
import dev.weft.offload.Planner;
import dev.weft.offload.Tier;
import dev.weft.trainer.config.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The planner against the trainer: for each policy, the device peak of a real run (the pool's live
 * blocks, which a budget caps) falls from the no-offload run's by the amount the planner
 * predicted, within 5% (the bar). Allocation
 * is deterministic, so the figures repeat; the slack covers what differs between the probes'
 * micro-batch and a training step (evaluation, the first step's gradient buffers).
 */
class OffloadPlanningTest {
    private static final double TOLERANCE = 0.05;

    @TempDir
    Path dir;

    private TrainConfig config(String out, String... extra) throws IOException {
        List<String> sets = new ArrayList<>(List.of("train.steps=2", "train.micro_batch=8", "train.grad_accum=1", "train.eval_every=0", "model.layers=3",
                "model.d_model=64", "model.heads=4", "model.kv_heads=4", "model.ffn_dim=128", "offload.disk_dir=" + dir.resolve("offload")));
        sets.addAll(List.of(extra));
        return ExactResumeTest.tinyConfig(dir, out, sets);
    }

    private static long peakOf(TrainConfig cfg) {
        try (Trainer t = new Trainer(cfg, InJvmRuns.quiet())) {
            t.run(false);
            return MemoryPool.host().peakLiveBlockBytes(); // what the planner predicts and a budget caps
        }
    }

    private static TrainConfig with(TrainConfig cfg, Planner.Plan p) {
        return cfg.withOffload(cfg.offload().withPolicy(p.activations(), p.recompute(), p.optimizer().configName(), "none"));
    }

    @Test
    void peakFallsByThePredictedAmount() throws IOException {
        TrainConfig base = config("base");
        Planner.Measurements m = OffloadPlanning.measure(base, 1, InJvmRuns.quiet()).measured();
        Planner.Plan none = Planner.none(m);
        long measuredNone = peakOf(base);
        System.out.printf("no offload: predicted peak %d B, measured %d B%n", none.peakBytes(), measuredNone);
        List<Planner.Plan> plans = new ArrayList<>();
        for (LayerPolicy p : List.of(LayerPolicy.SELECTIVE, LayerPolicy.FULL, LayerPolicy.HOST, LayerPolicy.DISK))
            plans.add(Planner.cost(m, Collections.nCopies(3, p), Tier.DEVICE));
        plans.add(Planner.cost(m, Collections.nCopies(3, LayerPolicy.KEEP), Tier.HOST));
        plans.add(Planner.cost(m, Collections.nCopies(3, LayerPolicy.KEEP), Tier.DISK));
        plans.add(Planner.cost(m, List.of(LayerPolicy.DISK, LayerPolicy.FULL, LayerPolicy.SELECTIVE), Tier.HOST));
        plans.add(Planner.cost(m, List.of(LayerPolicy.HOST, LayerPolicy.HOST, LayerPolicy.KEEP), Tier.DEVICE));
        plans.add(Planner.cost(m, List.of(LayerPolicy.KEEP, LayerPolicy.SELECTIVE, LayerPolicy.DISK), Tier.DISK));
        for (Planner.Plan p : plans) {
            long predicted = none.peakBytes() - p.peakBytes();
            long measured = measuredNone - peakOf(with(base, p));
            System.out.printf("%s: predicted fall %d B, measured %d B (%+.2f%%)%n", p.describe(), predicted, measured, 100.0 * (measured - predicted) / predicted);
            assertTrue(predicted > 0, p.describe() + " saves nothing");
            assertEquals(predicted, measured, TOLERANCE * predicted, p.describe() + ": the device peak's fall");
        }
    }

    @Test
    void autoMeetsItsBudgetAndAnImpossibleOneNamesTheSmallest() throws IOException {
        TrainConfig base = config("auto-base");
        Planner.Measurements m = OffloadPlanning.measure(base, 1, InJvmRuns.quiet()).measured();
        long none = Planner.none(m).peakBytes();
        long budgetMiB = (long) Math.ceil(0.75 * none / (1 << 20));
        TrainConfig auto = config("auto", "offload=auto", "train.memory_budget_mib=" + budgetMiB);
        long peak = peakOf(auto);
        System.out.printf("offload: auto at %d MiB: peak %d B in live blocks, peak reserved %d B%n", budgetMiB, peak, MemoryPool.host().peakReservedBytes());
        assertTrue(MemoryPool.host().peakReservedBytes() <= budgetMiB << 20, "the pool's blocks stayed within the budget");
        assertTrue(peak <= budgetMiB << 20, "auto's run peaked at " + peak + " B over its budget of " + budgetMiB + " MiB");

        // just above what the process holds already (tests before this one in the JVM may hold some), far below any plan
        long heldMiB = MemoryPool.host().liveBlockBytes() / (1 << 20);
        TrainConfig impossible = config("auto-small", "offload=auto", "train.memory_budget_mib=" + (heldMiB + 1));
        Planner.NoPlanException e = assertThrows(Planner.NoPlanException.class, () -> new Trainer(impossible, InJvmRuns.quiet()).close());
        assertTrue(e.getMessage().contains("the smallest that works is") && e.getMessage().contains("train.memory_budget_mib to at least"), e.getMessage());
        assertTrue(e.smallestBytes() > 1 << 20);
    }
}
