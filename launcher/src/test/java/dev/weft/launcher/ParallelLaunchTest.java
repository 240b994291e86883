package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Tensor and pipeline parallelism through {@code weft launch}, with real rank processes: the
 * 8-rank dp 2 x tp 2 x pp 2 mesh under ZeRO-3, and each pipeline schedule on 2 ranks, against one
 * process on the same global batch. The tolerance is LaunchTest's 1e-5 relative: the in-JVM tests
 * (TensorParallelTest, PipelineParallelTest) measure these layouts below 2e-7.
 */
class ParallelLaunchTest {
    @TempDir
    Path dir;

    private List<Double> single(Path cfg, String out, String... sets) throws IOException {
        return LaunchTest.single(dir, cfg, out, sets);
    }

    private CliTest.Run launch(Path cfg, int ranks, String out, String... sets) {
        List<String> args = new ArrayList<>(List.of("launch", "--nproc-per-node", Integer.toString(ranks), cfg.toString(), "--set", "train.out_dir=" + out));
        for (String s : sets) args.addAll(List.of("--set", s));
        CliTest.Run r = CliTest.run(args.toArray(String[]::new));
        assertEquals(0, r.code(), r.out() + r.err());
        return r;
    }

    @Test
    @Timeout(value = 400, unit = TimeUnit.SECONDS)
    void eightRanksOnDp2Tp2Pp2UnderZero3MatchOneProcess() throws IOException {
        Path cfg = LaunchTest.config(dir, 8, 8);
        // the global batch: 4 rows x 2 micro-batches; dp 2 reads 2 rows per rank
        List<Double> ref = single(cfg, "single");
        CliTest.Run r = launch(cfg, 8, "mesh", "parallel.tp=2", "parallel.pp=2", "parallel.zero=3", "train.micro_batch=2");
        assertTrue(r.out().contains("pipeline: 1f1b schedule, 2 micro-batches") && r.out().contains("tensor parallel: tp 2"), r.out());
        LaunchTest.assertSameLosses(ref, LaunchTest.losses(dir.resolve("mesh")), "dp 2 x tp 2 x pp 2, ZeRO-3, 8 processes");
        String log = Files.readString(dir.resolve("mesh/logs/rank-7.log"));
        assertTrue(log.contains("model state on this rank"), log);
        // the sharded checkpoint generates on one process as the single process's does (greedy)
        CliTest.Run fromMesh = CliTest.run("generate", "--checkpoint", dir.resolve("mesh").toString(), "--tokens", "16", "--prompt", "the ", "--temperature", "0");
        CliTest.Run fromOne = CliTest.run("generate", "--checkpoint", dir.resolve("single").toString(), "--tokens", "16", "--prompt", "the ", "--temperature", "0");
        assertEquals(0, fromMesh.code(), fromMesh.err());
        assertEquals(fromOne.out(), fromMesh.out());
    }

    @Test
    @Timeout(value = 400, unit = TimeUnit.SECONDS)
    void everyScheduleThroughLaunchMatchesOneProcess() throws IOException {
        Path cfg = LaunchTest.config(dir, 6, 0);
        String[] model = {"model.layers=4"};
        List<Double> ref = single(cfg, "single", model);
        String[][] schedules = {{"gpipe"}, {"1f1b"}, {"interleaved", "parallel.pp_virtual_stages=2"}, {"zbh1"}};
        for (String[] s : schedules) {
            List<String> sets = new ArrayList<>(List.of("model.layers=4", "parallel.pp=2", "parallel.pp_schedule=" + s[0]));
            for (int i = 1; i < s.length; i++) sets.add(s[i]);
            launch(cfg, 2, "pp2-" + s[0], sets.toArray(String[]::new));
            LaunchTest.assertSameLosses(ref, LaunchTest.losses(dir.resolve("pp2-" + s[0])), "pp 2, " + s[0] + ", 2 processes");
        }
    }
}
