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
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * ZeRO on real rank processes, against `weft train` on the same global batch (4 rows x 2
 * micro-steps). Losses must agree within 1e-5 relative over 20 steps: the ranks sum gradients in
 * another order than one process sums its rows (ring all-reduce, reduce-scatter, the norm's partial
 * sums), so float32 rounding differs in the last bits and grows a little over the steps.
 */
class ZeroLaunchTest {
    @TempDir
    Path dir;

    private static final Pattern MODEL_STATE = Pattern.compile(
            "model state on this rank: parameters (\\d+) B, gradients (\\d+) B, optimizer state (\\d+) B \\(.*, (\\d+) parameters\\)");

    private List<Double> single(Path cfg, String out, String... sets) throws IOException {
        return LaunchTest.single(dir, cfg, out, sets);
    }

    private CliTest.Run launch(Path cfg, int ranks, int zero, String out, String... sets) {
        List<String> args = new ArrayList<>(List.of("launch", "--nproc-per-node", Integer.toString(ranks), cfg.toString(),
                "--set", "train.out_dir=" + out, "--set", "train.micro_batch=" + (4 / ranks), "--set", "parallel.zero=" + zero));
        for (String s : sets) args.addAll(List.of("--set", s));
        CliTest.Run r = CliTest.run(args.toArray(String[]::new));
        assertEquals(0, r.code(), r.out() + r.err());
        return r;
    }

    /** {parameters, gradients, optimizer state, parameter count} as rank {@code rank} reported them. */
    private long[] modelState(String out, int rank) throws IOException {
        String log = Files.readString(dir.resolve(out).resolve("logs/rank-" + rank + ".log"));
        Matcher m = MODEL_STATE.matcher(log);
        assertTrue(m.find(), "no model-state line in rank " + rank + "'s log:\n" + log);
        return new long[] {Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), Long.parseLong(m.group(3)), Long.parseLong(m.group(4))};
    }

    /**
     * Per-rank model-state bytes against the fp32 formulas for AdamW (Ψ parameters, N ranks): DDP
     * 16Ψ, ZeRO-1 8Ψ + 8Ψ/N, ZeRO-2 4Ψ + 12Ψ/N, ZeRO-3 16Ψ/N, within 2%. The working set (ZeRO-2/3's
     * in-flight gradient buckets, ZeRO-3's gathered units) is empty at the end of a run: each goes
     * back to the pool once reduced or used. The 2% covers buckets padded to a multiple of N
     * elements and the pool's 64-byte rounding per tensor.
     */
    private void assertModelStateMatchesTheFormula(String out, int ranks, int zero) throws IOException {
        for (int r = 0; r < ranks; r++) {
            long[] m = modelState(out, r);
            double psi = m[3], total = m[0] + m[1] + m[2];
            double expected = switch (zero) {
                case 0 -> 16 * psi;
                case 1 -> 8 * psi + 8 * psi / ranks;
                case 2 -> 4 * psi + 12 * psi / ranks;
                default -> 16 * psi / ranks;
            };
            double rel = Math.abs(total - expected) / expected;
            assertTrue(rel <= 0.02, "ZeRO-" + zero + " on " + ranks + " ranks, rank " + r + ": model state " + (long) total + " B against "
                    + (long) expected + " B from the formula (" + String.format("%.2f%%", 100 * rel) + " off): params " + m[0] + ", grads " + m[1]
                    + ", optimizer " + m[2]);
        }
    }

    @Test
    @Timeout(value = 400, unit = TimeUnit.SECONDS)
    void everyZeroStageOnTwoAndFourRanksReproducesTheSingleProcessLossCurve() throws IOException {
        Path cfg = LaunchTest.config(dir, 20, 0);
        List<Double> ref = single(cfg, "single");
        assertEquals(20, ref.size());
        for (int ranks : new int[] {2, 4}) {
            for (int zero : new int[] {1, 2, 3}) {
                String out = "dp" + ranks + "-zero" + zero;
                // zero_min_numel 0: every parameter sharded under ZeRO-3, so the formula holds without a replicated remainder
                CliTest.Run r = launch(cfg, ranks, zero, out, "parallel.zero_min_numel=0");
                LaunchTest.assertSameLosses(ref, LaunchTest.losses(dir.resolve(out)), "dp " + ranks + " ZeRO-" + zero);
                assertTrue(r.out().contains("mesh: pp 1 x dp " + ranks + " x tp 1 = " + ranks + " ranks"), r.out());
                assertModelStateMatchesTheFormula(out, ranks, zero);
            }
        }
        launch(cfg, 2, 0, "dp2-ddp");
        assertModelStateMatchesTheFormula("dp2-ddp", 2, 0);
    }

    @Test
    @Timeout(value = 400, unit = TimeUnit.SECONDS)
    void matrixOptimizersTrainUnderZeroWithWholeMatricesPerRank() throws IOException {
        Path cfg = LaunchTest.config(dir, 12, 0);
        for (String opt : new String[] {"galore", "apollo_mini", "muon"}) {
            String[] sets = {"optimizer.name=" + opt, "train.steps=12"};
            List<Double> ref = single(cfg, opt + "-single", sets);
            launch(cfg, 2, 3, opt + "-zero3", sets);
            LaunchTest.assertSameLosses(ref, LaunchTest.losses(dir.resolve(opt + "-zero3")), opt + " under dp 2 ZeRO-3");
        }
    }

    @Test
    void badMeshesAreRefusedNamingTheKeys() throws IOException {
        Path cfg = LaunchTest.config(dir, 2, 0);
        CliTest.Run r = CliTest.run("train", cfg.toString(), "--set", "parallel.dp=2");
        assertEquals(2, r.code(), r.out() + r.err());
        assertTrue(r.err().contains("parallel.dp 2 x parallel.tp 1 x parallel.pp 1 = 2 does not equal the world size 1"), r.err());
        CliTest.Run tp = CliTest.run("train", cfg.toString(), "--set", "parallel.tp=3", "--set", "parallel.dp=1");
        assertEquals(2, tp.code());
        assertTrue(tp.err().contains("world size 1") || tp.err().contains("parallel.tp = 3 must divide model.heads = 4"), tp.err());
        CliTest.Run zero = CliTest.run("train", cfg.toString(), "--set", "parallel.zero=4");
        assertEquals(2, zero.code());
        assertTrue(zero.err().contains("parallel.zero = 4 is invalid"), zero.err());
        CliTest.Run two = CliTest.run("train", cfg.toString(), "--set", "parallel.dp=-1", "--set", "parallel.tp=-1");
        assertEquals(2, two.code());
        assertTrue(two.err().contains("parallel.dp and parallel.tp are both -1"), two.err());
        CliTest.Run heads = CliTest.run("launch", "--nproc-per-node", "3", cfg.toString(), "--set", "parallel.tp=3", "--set", "parallel.dp=1");
        assertEquals(2, heads.code(), "refused before any rank starts: " + heads.out());
        assertTrue(heads.err().contains("parallel.tp = 3 must divide model.heads = 4 and model.kv_heads = 2"), heads.err());
        CliTest.Run schedule = CliTest.run("launch", "--nproc-per-node", "2", cfg.toString(), "--set", "parallel.pp=2", "--set", "parallel.pp_schedule=zigzag");
        assertEquals(2, schedule.code(), "refused before any rank starts: " + schedule.out());
        assertTrue(schedule.err().contains("parallel.pp_schedule = 'zigzag' is invalid"), schedule.err());
        CliTest.Run product = CliTest.run("launch", "--nproc-per-node", "2", cfg.toString(), "--set", "parallel.dp=4");
        assertEquals(2, product.code());
        assertTrue(product.err().contains("parallel.dp 4 x parallel.tp 1 x parallel.pp 1 = 4 does not equal the world size 2"), product.err());
    }

    /** A fresh run directory that starts from {@code from}'s checkpoint of {@code step}. */
    private Path resumableCopy(String from, int step, String to) throws IOException {
        String name = String.format("step-%08d", step);
        Path src = dir.resolve(from).resolve("checkpoints").resolve(name), dst = dir.resolve(to).resolve("checkpoints").resolve(name);
        try (var files = Files.walk(src)) {
            for (Path p : files.toList()) {
                Path target = dst.resolve(src.relativize(p).toString());
                if (Files.isDirectory(p)) Files.createDirectories(target);
                else Files.copy(p, target);
            }
        }
        Files.writeString(dst.getParent().resolve("latest"), name + "\n");
        return dst;
    }

    private static List<Double> tail(List<Double> all, int from) {
        return all.subList(from, all.size());
    }

    @Test
    @Timeout(value = 400, unit = TimeUnit.SECONDS)
    void aCheckpointWrittenUnderOneLayoutResumesUnderAnother() throws IOException {
        Path cfg = LaunchTest.config(dir, 20, 10);
        List<Double> ref = single(cfg, "straight");
        launch(cfg, 4, 3, "dp4-zero3");
        Path ckpt = dir.resolve("dp4-zero3/checkpoints/step-00000010");
        assertEquals(4, Files.list(ckpt.resolve("optimizer")).count(), "every rank wrote its own optimizer chunks");
        assertEquals(4, Files.list(ckpt.resolve("model")).count(), "every rank wrote its own weight chunks");
        assertFalse(Files.exists(ckpt.resolve("model.safetensors")), "nothing gathered to rank 0");

        resumableCopy("dp4-zero3", 10, "as-dp2-zero1");
        CliTest.Run dp2 = CliTest.run("launch", "--nproc-per-node", "2", cfg.toString(), "--resume", "--set", "train.out_dir=as-dp2-zero1",
                "--set", "train.micro_batch=2", "--set", "parallel.zero=1");
        assertEquals(0, dp2.code(), dp2.out());
        assertTrue(dp2.out().contains("step-00000010 (step 10"), dp2.out());
        LaunchTest.assertSameLosses(tail(ref, 10), LaunchTest.losses(dir.resolve("as-dp2-zero1")), "dp 4 ZeRO-3 checkpoint resumed on dp 2 ZeRO-1");

        resumableCopy("dp4-zero3", 10, "as-one");
        CliTest.Run one = CliTest.run("train", cfg.toString(), "--resume", "--set", "train.out_dir=as-one");
        assertEquals(0, one.code(), one.out() + one.err());
        LaunchTest.assertSameLosses(tail(ref, 10), LaunchTest.losses(dir.resolve("as-one")), "dp 4 ZeRO-3 checkpoint resumed on one process");

        // and the other way: one process's checkpoint on dp 2 under ZeRO-3
        resumableCopy("straight", 10, "one-to-dp2");
        CliTest.Run back = CliTest.run("launch", "--nproc-per-node", "2", cfg.toString(), "--resume", "--set", "train.out_dir=one-to-dp2",
                "--set", "train.micro_batch=2", "--set", "parallel.zero=3");
        assertEquals(0, back.code(), back.out());
        LaunchTest.assertSameLosses(tail(ref, 10), LaunchTest.losses(dir.resolve("one-to-dp2")), "one process's checkpoint resumed on dp 2 ZeRO-3");

        // weft export assembles a sharded checkpoint into one Hugging Face directory
        CliTest.Run export = CliTest.run("export", "--checkpoint", ckpt.toString(), "--out", dir.resolve("hf").toString());
        assertEquals(0, export.code(), export.err());
        assertTrue(Files.size(dir.resolve("hf/model.safetensors")) > 4 * 30_000, "all weights exported");
    }

    @Test
    @Timeout(value = 200, unit = TimeUnit.SECONDS)
    void aCorruptChunkIsNamedWithItsFileTensorAndRange() throws IOException {
        Path cfg = LaunchTest.config(dir, 4, 4);
        launch(cfg, 2, 2, "src");
        Path ckpt = resumableCopy("src", 4, "bad");
        Path file = ckpt.resolve("optimizer/rank-00001.safetensors");
        byte[] bytes = Files.readAllBytes(file);
        bytes[bytes.length - 8] ^= 0x40; // inside the last tensor's data
        Files.write(file, bytes);
        CliTest.Run r = CliTest.run("train", cfg.toString(), "--resume", "--set", "train.out_dir=bad", "--set", "train.steps=6");
        assertEquals(2, r.code(), r.out() + r.err());
        assertTrue(r.err().contains("rank-00001.safetensors: optimizer state '") && r.err().contains("elements [") && r.err().contains("is corrupt (CRC32C"),
                r.err());
    }

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void killNineOfARankUnderZeroThreeResumesBitForBit() throws Exception {
        Path cfg = LaunchTest.config(dir, 12, 2);
        launch(cfg, 2, 3, "straight");
        List<Double> ref = LaunchTest.losses(dir.resolve("straight"));
        java.util.concurrent.CompletableFuture<CliTest.Run> job = java.util.concurrent.CompletableFuture.supplyAsync(() -> CliTest.run("launch",
                "--nproc-per-node", "2", "--max-restarts", "1", cfg.toString(), "--set", "train.out_dir=killed", "--set", "train.micro_batch=2",
                "--set", "parallel.zero=3"));
        Path metrics = dir.resolve("killed/metrics.jsonl"), latest = dir.resolve("killed/checkpoints/latest");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!(Files.exists(latest) && Files.exists(metrics) && Files.readAllLines(metrics).size() >= 5)) {
            assertFalse(job.isDone(), () -> "the job ended before it could be killed: " + job.join().out());
            assertTrue(System.nanoTime() < deadline, "training did not reach step 5 within 120 s");
            Thread.sleep(50);
        }
        long pid = Long.parseLong(Files.readString(dir.resolve("killed/logs/rank-1.pid")).strip());
        assertTrue(ProcessHandle.of(pid).orElseThrow().destroyForcibly(), "could not SIGKILL rank 1");
        CliTest.Run r = job.get(240, TimeUnit.SECONDS);
        assertEquals(0, r.code(), r.out());
        assertTrue(r.out().contains("rank 1 failed first: killed by signal 9 (SIGKILL)"), r.out());
        assertTrue(r.out().contains("restarting the job (1 of 1)"), r.out());
        List<Double> resumed = LaunchTest.losses(dir.resolve("killed"));
        assertEquals(ref.size(), resumed.size(), "every step once in the resumed run's metrics");
        for (int i = 0; i < ref.size(); i++)
            assertEquals(Double.doubleToLongBits(ref.get(i)), Double.doubleToLongBits(resumed.get(i)),
                    "step " + (i + 1) + ": " + resumed.get(i) + " after the kill and resume vs " + ref.get(i) + " uninterrupted (bit for bit)");
    }

    @Test
    @Timeout(value = 200, unit = TimeUnit.SECONDS)
    void aModelOverOneRanksBudgetUnderDdpTrainsUnderZeroThreeOnFourRanks() throws IOException {
        Path cfg = LaunchTest.config(dir, 3, 0);
        // 246k parameters: 3.9 MB of model state per rank under DDP, about 1 MB under ZeRO-3 on 4 ranks, against a 4 MiB budget
        String[] bigger = {"model.d_model=64", "model.layers=4", "model.ffn_dim=192", "model.kv_heads=4", "train.memory_budget_mib=4",
                "train.eval_every=0"};
        List<String> ddp = new ArrayList<>(List.of("launch", "--nproc-per-node", "4", cfg.toString(), "--set", "train.out_dir=ddp",
                "--set", "train.micro_batch=1", "--set", "parallel.zero=0"));
        for (String s : bigger) ddp.addAll(List.of("--set", s));
        CliTest.Run r = CliTest.run(ddp.toArray(String[]::new));
        assertNotEquals(0, r.code(), "DDP fits after all: " + r.out());
        assertTrue(r.out().contains("is out of budget"), r.out());
        launch(cfg, 4, 3, "zero3", bigger);
        assertEquals(3, LaunchTest.losses(dir.resolve("zero3")).size());
    }

    @Test
    @Timeout(value = 500, unit = TimeUnit.SECONDS)
    void theOtherOptimizersTrainUnderZeroToo() throws IOException {
        Path cfg = LaunchTest.config(dir, 8, 0);
        // {optimizer, stage, extra setting}: 8-bit AdamW quantises every tensor (min_8bit_size 0) so its blocks meet shard edges
        String[][] cases = {{"sgd", "1", "optimizer.lr=0.05"}, {"adamw8bit", "3", "optimizer.min_8bit_size=0"},
                {"natural_galore", "2", "optimizer.rank=8"}, {"apollo", "1", "optimizer.rank=8"}, {"frugal", "3", "optimizer.rank=8"}};
        for (String[] c : cases) {
            String[] sets = {"optimizer.name=" + c[0], c[2]};
            List<Double> ref = single(cfg, c[0] + "-single", sets);
            launch(cfg, 2, Integer.parseInt(c[1]), c[0] + "-zero", sets);
            LaunchTest.assertSameLosses(ref, LaunchTest.losses(dir.resolve(c[0] + "-zero")), c[0] + " under dp 2 ZeRO-" + c[1]);
        }
    }
}
