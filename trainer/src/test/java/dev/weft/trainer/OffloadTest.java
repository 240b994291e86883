package dev.weft.trainer;

import dev.weft.trainer.config.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Offload moves bytes and must not change them: every policy gives the loss curve of the run
 * without offload, bit for bit (weft's kernels are deterministic, so the comparison is exact).
 */
class OffloadTest {
    @TempDir
    Path dir;

    private TrainConfig config(String out, String... extra) throws IOException {
        List<String> sets = new ArrayList<>(List.of("train.steps=10", "train.micro_batch=2", "train.grad_accum=2", "train.eval_every=10",
                "model.layers=3", "offload.disk_dir=" + dir.resolve("offload-" + out)));
        sets.addAll(List.of(extra));
        return ExactResumeTest.tinyConfig(dir, out, sets);
    }

    /** Exactly the same train losses (their bits) and final val loss on every rank. */
    private static void assertIdentical(String what, List<Trainer.Result> reference, List<Trainer.Result> runs) {
        for (int r = 0; r < runs.size(); r++) {
            assertEquals(reference.get(r).trainLosses(), runs.get(r).trainLosses(), what + ": rank " + r + " train losses");
            assertEquals(reference.get(r).lastValLoss(), runs.get(r).lastValLoss(), what + ": rank " + r + " val loss");
        }
        System.out.printf("%s: %d steps bit-identical to no offload%n", what, reference.getFirst().trainLosses().size());
    }

    @Test
    void activationPoliciesAreBitIdentical() throws IOException {
        List<Trainer.Result> none = List.of(InJvmRuns.single(config("none")));
        for (String[] policy : new String[][] {{"offload.activations=host"}, {"offload.activations=disk"}, {"offload.recompute=selective"},
                {"offload.recompute=full"}, {"offload.recompute=[full, selective, none]", "offload.activations=[none, none, host]"}})
            assertIdentical(String.join(" ", policy), none, List.of(InJvmRuns.single(config("p" + Math.abs(String.join("", policy).hashCode()), policy))));
    }

    @Test
    void optimizerStateOffloadIsBitIdenticalForEveryOptimizer() throws IOException {
        for (String opt : dev.weft.optimizers.Optimizers.names()) {
            List<Trainer.Result> none = List.of(InJvmRuns.single(config(opt, "optimizer.name=" + opt)));
            for (String tier : List.of("host", "disk"))
                assertIdentical(opt + ", state on " + tier, none, List.of(InJvmRuns.single(config(opt + "-" + tier, "optimizer.name=" + opt, "offload.optimizer=" + tier))));
        }
    }

    @Test
    void parameterOffloadUnderZero3IsBitIdentical() throws IOException {
        List<Trainer.Result> none = InJvmRuns.ranks(2, config("z3", "parallel.zero=3", "parallel.zero_min_numel=0"));
        for (String tier : List.of("host", "disk"))
            assertIdentical("ZeRO-3, parameters on " + tier, none,
                    InJvmRuns.ranks(2, config("z3-" + tier, "parallel.zero=3", "parallel.zero_min_numel=0", "offload.parameters=" + tier)));
        for (String[] both : new String[][] {{"host", "host"}, {"host", "disk"}, {"disk", "host"}, {"disk", "disk"}})
            assertIdentical("ZeRO-3, parameters on " + both[0] + ", optimizer state on " + both[1], none, InJvmRuns.ranks(2,
                    config("z3-" + both[0] + both[1], "parallel.zero=3", "parallel.zero_min_numel=0", "offload.parameters=" + both[0], "offload.optimizer=" + both[1])));
    }
}
