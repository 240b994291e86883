package dev.weft.trainer;

import dev.weft.parallel.InJvmTransport;
import dev.weft.trainer.config.TrainConfig;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.time.Duration;
import java.util.List;
import java.util.function.BiConsumer;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Training runs for the parallel-layout tests: one process, or in-JVM ranks, and the comparison of their loss curves. */
final class InJvmRuns {
    private static final Duration T = Duration.ofSeconds(120);

    private InJvmRuns() {}

    static PrintStream quiet() {
        return new PrintStream(new ByteArrayOutputStream());
    }

    static Trainer.Result single(TrainConfig cfg) {
        try (Trainer t = new Trainer(cfg, quiet())) {
            return t.run(false);
        }
    }

    /** Trains on {@code world} in-JVM ranks; {@code check} sees each rank's trainer (and its rank) before it runs. */
    static List<Trainer.Result> ranks(int world, TrainConfig cfg, BiConsumer<Trainer, Integer> check) {
        return InJvmTransport.run(world, T, g -> {
            try (Trainer t = new Trainer(cfg, quiet(), new DistributedContext(g, null))) {
                check.accept(t, g.rank());
                return t.run(false);
            }
        });
    }

    static List<Trainer.Result> ranks(int world, TrainConfig cfg) {
        return ranks(world, cfg, (t, r) -> {});
    }

    /** Every rank's train losses and final val loss within {@code tolerance} relative of {@code reference}'s, and alike on every rank. */
    static void assertMatches(String what, Trainer.Result reference, List<Trainer.Result> ranks, double tolerance) {
        double worst = 0;
        for (Trainer.Result r : ranks) {
            assertEquals(reference.trainLosses().size(), r.trainLosses().size(), what);
            for (int i = 0; i < reference.trainLosses().size(); i++) {
                double a = reference.trainLosses().get(i), b = r.trainLosses().get(i);
                worst = Math.max(worst, Math.abs(a - b) / Math.abs(a));
                assertEquals(a, b, tolerance * Math.abs(a), what + ": train loss at step " + (i + 1));
            }
            assertEquals(reference.lastValLoss(), r.lastValLoss(), tolerance * reference.lastValLoss(), what + ": final val loss");
        }
        for (Trainer.Result r : ranks) assertEquals(ranks.getFirst().trainLosses(), r.trainLosses(), what + ": ranks disagree");
        System.out.printf("%s: worst relative train-loss difference %.2e over %d steps%n", what, worst, reference.trainLosses().size());
    }
}
