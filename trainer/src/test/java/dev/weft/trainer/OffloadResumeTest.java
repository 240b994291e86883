package dev.weft.trainer;

import dev.weft.parallel.InJvmTransport;
import dev.weft.trainer.config.ConfigException;
import dev.weft.trainer.config.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Offloaded state through a checkpoint: train 8 steps, or stop after 4 (saving there) and resume in
 * a fresh trainer; the joined curve equals the uninterrupted one bit for bit. The checkpoint holds
 * the state's bytes, wherever the state lived, so a checkpoint written with offload resumes without
 * it and the other way, with the same continuation. And offload's bad settings are refused with
 * one-line config errors.
 */
class OffloadResumeTest {
    @TempDir
    Path dir;

    private TrainConfig config(String out, String... extra) throws IOException {
        List<String> sets = new ArrayList<>(List.of("offload.disk_dir=" + dir.resolve("offload-" + out)));
        sets.addAll(List.of(extra));
        return ExactResumeTest.tinyConfig(dir, out, sets);
    }

    /** Every rank's train losses, on {@code world} in-JVM ranks (1: one process), from the newest checkpoint when {@code resume}. */
    private static List<List<Double>> train(int world, TrainConfig cfg, boolean resume, long stopAfter) {
        if (world == 1) {
            try (Trainer t = new Trainer(cfg, InJvmRuns.quiet())) {
                return List.of(new ArrayList<>(t.run(resume, stopAfter).trainLosses()));
            }
        }
        return InJvmTransport.run(world, Duration.ofSeconds(120), g -> {
            try (Trainer t = new Trainer(cfg, InJvmRuns.quiet(), new DistributedContext(g, null))) {
                return (List<Double>) new ArrayList<>(t.run(resume, stopAfter).trainLosses());
            }
        });
    }

    private static void assertBits(List<List<Double>> expected, List<List<Double>> actual, String what) {
        assertEquals(expected.size(), actual.size(), what + ": ranks");
        for (int r = 0; r < expected.size(); r++) {
            List<Double> e = expected.get(r), a = actual.get(r);
            assertEquals(e.size(), a.size(), what + ": rank " + r + " steps");
            for (int i = 0; i < e.size(); i++)
                assertEquals(Double.doubleToRawLongBits(e.get(i)), Double.doubleToRawLongBits(a.get(i)),
                        what + ": rank " + r + " step " + (i + 1) + ": " + a.get(i) + " vs " + e.get(i) + " (bit for bit)");
        }
    }

    private static List<List<Double>> tail(List<List<Double>> runs, int from) {
        return runs.stream().map(l -> (List<Double>) new ArrayList<>(l.subList(from, l.size()))).toList();
    }

    private static List<List<Double>> joined(List<List<Double>> a, List<List<Double>> b) {
        List<List<Double>> out = new ArrayList<>();
        for (int r = 0; r < a.size(); r++) {
            List<Double> l = new ArrayList<>(a.get(r));
            l.addAll(b.get(r));
            out.add(l);
        }
        return out;
    }

    /** Stop after 4 of 8 steps under {@code sets}, resume under {@code resumeSets}: the whole curve equals {@code straight}'s. */
    private void checkResume(int world, List<List<Double>> straight, String out, String[] sets, String[] resumeSets) throws IOException {
        TrainConfig first = config(out, sets), second = config(out, resumeSets);
        List<List<Double>> firstHalf = train(world, first, false, 4);
        assertNotNull(Checkpoint.latest(first.train().outDir()), out + ": stopping early leaves a checkpoint");
        List<List<Double>> secondHalf = train(world, second, true, 0);
        assertBits(straight, joined(firstHalf, secondHalf), out + " (" + String.join(" ", sets) + " then " + String.join(" ", resumeSets) + ")");
    }

    @Test
    void offloadedStateResumesBitExactlyOnOneProcess() throws IOException {
        List<List<Double>> straight = train(1, config("straight"), false, 0);
        assertEquals(8, straight.getFirst().size());
        String[][] policies = {{"offload.optimizer=host"}, {"offload.optimizer=disk"}, {"offload.activations=disk", "offload.optimizer=disk"}};
        for (int i = 0; i < policies.length; i++) {
            // an offloaded run is the plain run, bit for bit, so the plain run is the reference for every resume
            assertBits(straight, train(1, config("whole" + i, policies[i]), false, 0), "uninterrupted " + String.join(" ", policies[i]));
            checkResume(1, straight, "resumed" + i, policies[i], policies[i]);
        }
        // checkpoints are layout-independent: offload on one side only changes nothing
        checkResume(1, straight, "offload-to-plain", new String[] {"offload.optimizer=disk", "offload.activations=host"}, new String[0]);
        checkResume(1, straight, "plain-to-offload", new String[0], new String[] {"offload.optimizer=disk", "offload.activations=disk"});
        checkResume(1, straight, "host-to-disk", new String[] {"offload.optimizer=host"}, new String[] {"offload.optimizer=disk"});
    }

    @Test
    void zeroThreeWithParametersOnDiskResumesBitExactlyOnTwoRanks() throws IOException {
        String[] z3 = {"parallel.zero=3", "parallel.zero_min_numel=0"};
        List<List<Double>> straight = train(2, config("z3-straight", z3), false, 0);
        String[] disk = {"parallel.zero=3", "parallel.zero_min_numel=0", "offload.parameters=disk", "offload.optimizer=disk"};
        checkResume(2, straight, "z3-disk", disk, disk);
        checkResume(2, straight, "z3-disk-to-plain", disk, z3);
    }

    @Test
    void zeroTwoWithOptimizerStateOnDiskAndActivationsOnHostIsBitIdenticalAndResumes() throws IOException {
        String[] z2 = {"parallel.zero=2"};
        String[] offloaded = {"parallel.zero=2", "offload.optimizer=disk", "offload.activations=host"};
        List<List<Double>> straight = train(2, config("z2-straight", z2), false, 0);
        assertBits(straight, train(2, config("z2-offload", offloaded), false, 0), "ZeRO-2 on 2 ranks, optimizer state on disk, activations on host");
        checkResume(2, straight, "z2-resumed", offloaded, offloaded);
    }

    private void assertRefused(String expected, String... sets) {
        Exception e = assertThrows(Exception.class, () -> {
            try (Trainer t = new Trainer(config("bad", sets), InJvmRuns.quiet())) {
                t.run(false, 1);
            }
        }, "accepted: " + String.join(" ", sets));
        assertTrue(dev.weft.core.UserError.isUserError(e), "not reported as bad input: " + e);
        assertTrue(e.getMessage().contains(expected), "'" + e.getMessage() + "' does not say '" + expected + "'");
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
    }

    @Test
    void badOffloadSettingsAreOneLineConfigErrors() throws IOException {
        assertThrows(ConfigException.class, () -> config("bad", "offload.parameters=host"));
        assertThrows(ConfigException.class, () -> config("bad", "offload.recompute=full", "offload.activations=host"), "refused as the config loads");
        assertRefused("needs parameters sharded: set parallel.zero = 3", "offload.parameters=host");
        assertRefused("offload.recompute = full with offload.activations = host", "offload.recompute=full", "offload.activations=host");
        assertRefused("layer 1: a layer either recomputes its activations or offloads them", "model.layers=3",
                "offload.recompute=[none, full, none]", "offload.activations=[none, host, none]");
        assertRefused("a list of exactly 2 (model.layers), got 3", "offload.activations=[none, host, none]");
        Path file = dir.resolve("in-the-way");
        Files.writeString(file, "not a directory");
        assertRefused("offload.disk_dir " + file.resolve("sub"), "offload.optimizer=disk", "offload.disk_dir=" + file.resolve("sub"));
    }
}
