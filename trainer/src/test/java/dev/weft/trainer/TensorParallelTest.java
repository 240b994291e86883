package dev.weft.trainer;

import dev.weft.trainer.config.ConfigException;
import dev.weft.trainer.config.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Tensor parallelism on in-JVM ranks against one process on the same global batch: the loss curve
 * over 20 steps (with warmup, cosine decay, clipping and grad accumulation 2) and the final
 * validation loss.
 *
 * <p>Tolerance: 1e-5 relative; measured at most 3.4e-7 over these 20 steps. Nothing here is bit-exact
 * by design: a row-parallel projection sums its partial outputs over the group (another
 * summation order than one GEMM over the whole inner dimension), and the vocabulary-parallel
 * cross-entropy takes a max and a sum of exps over blocks. Each rounding difference is ~1e-7
 * relative and the optimizer compounds them over the steps.
 */
class TensorParallelTest {
    private static final double TOLERANCE = 1e-5;

    @TempDir
    Path dir;

    private TrainConfig config(String out, int microBatch, String... extra) throws IOException {
        List<String> sets = new ArrayList<>(List.of("train.steps=20", "train.micro_batch=" + microBatch, "train.eval_every=20",
                "optimizer.grad_clip=0.5"));
        sets.addAll(List.of(extra));
        return ExactResumeTest.tinyConfig(dir, out, sets);
    }

    /** Trains on {@code world} in-JVM ranks; checks that each tensor-parallel rank holds only its blocks of the model. */
    private static List<Trainer.Result> ranks(int world, TrainConfig cfg) {
        long whole = cfg.model().nonEmbeddingParameters() + (long) cfg.model().vocab() * cfg.model().dModel();
        int tp = cfg.meshShape(world).tp();
        return InJvmRuns.ranks(world, cfg, (t, rank) -> {
            long held = t.model().parameterCount(), replicated = 0;
            for (var e : t.model().namedPlacements().entrySet()) if (e.getValue().isReplicated()) replicated += t.model().namedParameters().get(e.getKey()).numel();
            assertEquals(replicated + (whole - replicated) / tp, held, "rank " + rank + " holds 1/" + tp + " of every split weight");
        });
    }

    private static void assertMatches(String what, Trainer.Result reference, List<Trainer.Result> ranks) {
        InJvmRuns.assertMatches(what, reference, ranks, TOLERANCE);
    }

    @Test
    void tp2MatchesOneProcess() throws IOException {
        Trainer.Result one = InJvmRuns.single(config("one", 4));
        assertMatches("tp 2", one, ranks(2, config("tp2", 4, "parallel.tp=2")));
        assertMatches("tp 2, sequence parallel", one, ranks(2, config("tp2sp", 4, "parallel.tp=2", "parallel.sequence_parallel=true")));
    }

    @Test
    void dp2tp2MatchesOneProcess() throws IOException {
        Trainer.Result one = InJvmRuns.single(config("one", 8));
        assertMatches("dp 2 x tp 2", one, ranks(4, config("dp2tp2", 4, "parallel.tp=2")));
        assertMatches("dp 2 x tp 2, ZeRO-2, sequence parallel", one,
                ranks(4, config("dp2tp2z2", 4, "parallel.tp=2", "parallel.zero=2", "parallel.sequence_parallel=true")));
    }

    @Test
    void badTensorParallelLayoutsAreRefusedByName() throws IOException {
        TrainConfig odd = config("x", 4, "parallel.tp=3");
        ConfigException e = assertThrows(ConfigException.class, () -> odd.meshShape(3));
        assertTrue(e.getMessage().contains("parallel.tp = 3") && e.getMessage().contains("kv_heads"), e.getMessage());
        TrainConfig tied = config("x", 4, "parallel.tp=2", "model.tied_embeddings=true");
        e = assertThrows(ConfigException.class, () -> tied.meshShape(2));
        assertTrue(e.getMessage().contains("tied_embeddings"), e.getMessage());
        TrainConfig sp = config("x", 4, "parallel.tp=2", "parallel.sequence_parallel=true", "train.seq_len=31");
        e = assertThrows(ConfigException.class, () -> sp.meshShape(2));
        assertTrue(e.getMessage().contains("seq_len = 31"), e.getMessage());
    }
}
