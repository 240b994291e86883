package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Offload under faults, through the CLI: a real {@code weft train} process SIGKILLed while it
 * writes optimizer state to the disk tier resumes bit for bit from its newest checkpoint, and the
 * next run deletes the scratch file it left; a disk tier on a filesystem that fills fails the run
 * with the tier's one-line message and leaves the last checkpoint loadable; bad offload settings
 * are one-line config errors. The {@code @Timeout}s only guard against a hang.
 */
class OffloadFaultTest {
    @TempDir
    Path dir;

    private static final int STEPS = 8;

    private Path config(int saveEvery) throws IOException {
        return LaunchTest.config(dir, STEPS, saveEvery);
    }

    private static String[] args(String command, Path cfg, String out, List<String> extra, String... sets) {
        List<String> a = new ArrayList<>(List.of(command, cfg.toString(), "--set", "train.out_dir=" + out));
        a.addAll(extra);
        for (String s : sets) a.addAll(List.of("--set", s));
        return a.toArray(String[]::new);
    }

    private static CliTest.Run train(Path cfg, String out, List<String> extra, String... sets) {
        return CliTest.run(args("train", cfg, out, extra, sets));
    }

    private static void assertBits(List<Double> expected, List<Double> actual, String what) {
        assertEquals(expected.size(), actual.size(), what + ": steps " + actual);
        for (int i = 0; i < expected.size(); i++)
            assertEquals(Double.doubleToRawLongBits(expected.get(i)), Double.doubleToRawLongBits(actual.get(i)),
                    what + ": step " + (i + 1) + ": " + actual.get(i) + " vs " + expected.get(i) + " uninterrupted (bit for bit)");
    }

    private static List<Path> scratchFiles(Path scratch) throws IOException {
        if (!Files.isDirectory(scratch)) return List.of();
        try (var s = Files.list(scratch)) {
            return s.filter(p -> p.getFileName().toString().startsWith("weft-offload-")).toList();
        }
    }

    /** config/jvm.options of this checkout, found upwards from the working directory. */
    private static Path jvmOptions() {
        for (Path p = Path.of(System.getProperty("user.dir")).toAbsolutePath(); p != null; p = p.getParent())
            if (Files.isRegularFile(p.resolve("config/jvm.options"))) return p.resolve("config/jvm.options");
        throw new IllegalStateException("no config/jvm.options above " + System.getProperty("user.dir"));
    }

    /** A thread dump of {@code pid}, split per thread, or null when the JVM cannot be attached to (yet). */
    private static List<String> threads(long pid) throws IOException, InterruptedException {
        Path jcmd = jcmd();
        Process p = new ProcessBuilder(jcmd.toString(), Long.toString(pid), "Thread.print").redirectErrorStream(true).start();
        String dump = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) return null;
        return List.of(dump.split("\n\\s*\n"));
    }

    private static Path jcmd() {
        return Path.of(System.getProperty("java.home"), "bin", "jcmd");
    }

    /**
     * True when {@code pid} is in the optimizer's streamed step with an optimizer-state write to the
     * disk tier under way: the main thread inside {@link dev.weft.offload.OptimizerOffload} and an
     * I/O thread inside a (test-paused) disk write. Only optimizer state goes to disk in this run.
     */
    private static boolean writingOptimizerState(long pid) throws IOException, InterruptedException {
        List<String> threads = threads(pid);
        if (threads == null) return false;
        boolean optimizer = threads.stream().anyMatch(t -> t.startsWith("\"main\"") && t.contains("OptimizerOffload."));
        boolean writing = threads.stream().anyMatch(t -> t.startsWith("\"weft-offload-io-") && t.contains("DiskTier.pauseMidWrite"));
        return optimizer && writing;
    }

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void aProcessKilledWhileWritingOptimizerStateToDiskResumesBitForBit() throws Exception {
        assumeTrue(Files.isExecutable(jcmd()), "the JDK's jcmd (to see where the process is before killing it) is not at " + jcmd());
        Path cfg = config(2);
        Path scratch = dir.resolve("scratch");
        String[] offload = {"offload.optimizer=disk", "offload.io_threads=1", "offload.disk_dir=" + scratch};
        CliTest.Run straight = train(cfg, "straight", List.of(), offload);
        assertEquals(0, straight.code(), straight.out() + straight.err());
        List<Double> ref = LaunchTest.losses(dir.resolve("straight"));
        assertEquals(STEPS, ref.size());
        assertEquals(List.of(), scratchFiles(scratch), "a run that ends deletes its scratch file");

        // a real `weft train` process; every disk write pauses 40 ms halfway (a test-only property of DiskTier) so the kill finds one under way
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "@" + jvmOptions(),
                "-Xmx1g", "-Dweft.offload.test.write_pause_ms=40", "-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(List.of(args("train", cfg, "killed", List.of(), offload)));
        Path log = dir.resolve("killed.log");
        Process proc = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            Path metrics = dir.resolve("killed/metrics.jsonl"), latest = dir.resolve("killed/checkpoints/latest");
            // past the first checkpoint (step 2) and into a later step's optimizer phase
            while (!(Files.exists(latest) && Files.exists(metrics) && Files.readAllLines(metrics).size() >= 3 && writingOptimizerState(proc.pid()))) {
                assertTrue(proc.isAlive(), () -> "the run ended before it could be killed:\n" + read(log));
                Thread.sleep(20);
            }
            assertEquals(1, scratchFiles(scratch).size(), "the running process's scratch file");
            proc.destroyForcibly(); // SIGKILL
            assertTrue(proc.waitFor(60, TimeUnit.SECONDS));
            assertEquals(137, proc.exitValue(), "killed by SIGKILL:\n" + read(log));
        } finally {
            proc.destroyForcibly();
        }
        int stepsBeforeKill = Files.readAllLines(dir.resolve("killed/metrics.jsonl")).size();
        assertTrue(stepsBeforeKill < STEPS, "killed before the end");
        List<Path> orphans = scratchFiles(scratch);
        assertEquals(1, orphans.size(), "the killed process leaves its scratch file");
        assertTrue(orphans.getFirst().getFileName().toString().startsWith("weft-offload-" + proc.pid() + "-"), orphans.toString());

        CliTest.Run resumed = train(cfg, "killed", List.of("--resume"), offload);
        assertEquals(0, resumed.code(), resumed.out() + resumed.err());
        assertBits(ref, LaunchTest.losses(dir.resolve("killed")), "killed at step " + (stepsBeforeKill + 1) + " while writing optimizer state, resumed");
        assertFalse(Files.exists(orphans.getFirst()), "the next run deletes the orphan " + orphans.getFirst());
        assertEquals(List.of(), scratchFiles(scratch), "and its own");
    }

    private static String read(Path log) {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    /** A tmpfs of {@code size} (for example "1m") at {@code at}, or null where mounting is not possible. */
    private static boolean mount(Path at, String options) throws IOException, InterruptedException {
        Files.createDirectories(at);
        Process p = new ProcessBuilder("mount", "-t", "tmpfs", "-o", options, "tmpfs", at.toString()).redirectErrorStream(true).start();
        return p.waitFor(20, TimeUnit.SECONDS) && p.exitValue() == 0;
    }

    private static void umount(Path at) throws IOException, InterruptedException {
        new ProcessBuilder("umount", "-l", at.toString()).redirectErrorStream(true).start().waitFor(20, TimeUnit.SECONDS);
    }

    private static boolean root() {
        return "root".equals(System.getProperty("user.name"));
    }

    /** The SHA-256 of every file under {@code d}, by relative path. */
    private static Map<String, String> digests(Path d) throws Exception {
        Map<String, String> out = new TreeMap<>();
        try (var files = Files.walk(d)) {
            for (Path p : files.filter(Files::isRegularFile).toList())
                out.put(d.relativize(p).toString(), HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p))));
        }
        return out;
    }

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void aFullOffloadDiskFailsTheRunInOneLineAndKeepsTheLastCheckpoint() throws Exception {
        assumeTrue(root(), "mounting a tiny tmpfs for the full disk needs root");
        Path cfg = config(0);
        CliTest.Run straight = train(cfg, "straight", List.of(), "offload.optimizer=host");
        assertEquals(0, straight.code(), straight.err());
        List<Double> ref = LaunchTest.losses(dir.resolve("straight"));

        // the checkpoint of step 4, written with the state on host, on the normal disk
        CliTest.Run first = train(cfg, "run", List.of("--stop-after", "4"), "offload.optimizer=host");
        assertEquals(0, first.code(), first.err());
        Path ckpts = dir.resolve("run/checkpoints");
        Map<String, String> before = digests(ckpts);

        // the tier's filesystem is smaller than its budget, so the filesystem itself fills: optimizer state (about 400 KiB) on 256 KiB
        // fails as it is first offloaded; a micro-batch's activations (hundreds of KiB) on 64 KiB fail in the first step, through
        // buffered writes and through mapped ones (which check the free space first)
        String[][] cases = {{"256k", "offload.optimizer=disk"}, {"344k", "offload.optimizer=disk"}, {"64k", "offload.activations=disk"},
                {"64k", "offload.activations=disk", "offload.disk_io=mapped", "offload.optimizer=host"}};
        for (int i = 0; i < cases.length; i++) {
            Path tiny = dir.resolve("tiny" + i);
            assumeTrue(mount(tiny, "size=" + cases[i][0]), "cannot mount a tmpfs at " + tiny);
            try {
                List<String> sets = new ArrayList<>(List.of("offload.disk_dir=" + tiny, "offload.disk_budget_mib=64", "offload.disk_io=buffered"));
                sets.addAll(List.of(cases[i]).subList(1, cases[i].length));
                CliTest.Run full = train(cfg, "run", List.of("--resume"), sets.toArray(String[]::new));
                String what = String.join(" ", cases[i]);
                assertEquals(2, full.code(), what + ": the run must fail as bad input: " + full.out() + full.err());
                assertTrue(full.err().contains("weft train: error: offload disk " + tiny + " is full: writing "), what + ": " + full.err());
                assertTrue(full.err().contains("point offload.disk_dir at a larger disk"), what + ": " + full.err());
                assertEquals(1, full.err().strip().lines().count(), what + ": one line, no stack trace: " + full.err());
                assertEquals(List.of(), scratchFiles(tiny), what + ": the failed run deletes its scratch file");
            } finally {
                umount(tiny);
            }
        }
        assertEquals(before, digests(ckpts), "the checkpoints are untouched");

        CliTest.Run resumed = train(cfg, "run", List.of("--resume"), "offload.optimizer=host");
        assertEquals(0, resumed.code(), resumed.err());
        assertBits(ref, LaunchTest.losses(dir.resolve("run")), "resumed from the last checkpoint after the full-disk failures");
    }

    /** Under `weft launch`, both ranks' tier on one tiny filesystem: the launch ends and reports the first rank's full disk in its message. */
    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void aFullOffloadDiskUnderLaunchIsReportedAsTheFirstFailure() throws Exception {
        assumeTrue(root(), "mounting a tiny tmpfs for the full disk needs root");
        Path cfg = config(0);
        Path tiny = dir.resolve("tiny");
        assumeTrue(mount(tiny, "size=64k"), "cannot mount a tmpfs at " + tiny);
        try {
            CliTest.Run r = CliTest.run("launch", "--nproc-per-node", "2", cfg.toString(), "--set", "train.out_dir=launched", "--set", "train.micro_batch=2",
                    "--set", "parallel.zero=2", "--set", "offload.activations=disk", "--set", "offload.optimizer=host", "--set", "offload.disk_dir=" + tiny,
                    "--set", "offload.disk_budget_mib=64");
            assertNotEquals(0, r.code(), r.out() + r.err());
            assertTrue(r.out().matches("(?s).*weft launch: rank \\d failed first: .*"), r.out());
            assertTrue(r.out().matches("(?s).*rank \\d: error: offload disk " + java.util.regex.Pattern.quote(tiny.toString()) + " is full: writing .*"), r.out());
            assertFalse(r.out().contains("\tat "), "no stack trace: " + r.out());
            assertEquals(List.of(), scratchFiles(tiny), "neither rank leaves its scratch file");
        } finally {
            umount(tiny);
        }
    }

    private static void assertConfigError(CliTest.Run r, String expected) {
        assertEquals(2, r.code(), r.out() + r.err());
        assertTrue(r.err().contains(expected), "'" + r.err() + "' does not say '" + expected + "'");
        assertEquals(1, r.err().strip().lines().count(), "one line, no stack trace: " + r.err());
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void badOffloadSettingsAreOneLineErrors() throws Exception {
        Path cfg = config(0);
        assertConfigError(train(cfg, "bad", List.of(), "offload.parameters=host"),
                "offload.parameters = host needs parameters sharded: set parallel.zero = 3");
        assertConfigError(train(cfg, "bad", List.of(), "offload.recompute=full", "offload.activations=host"),
                "a layer either recomputes its activations or offloads them, not both: offload.recompute = full with offload.activations = host");
        assertConfigError(train(cfg, "bad", List.of(), "offload.recompute=[none, none, full]"),
                "offload.recompute = [none, none, full] is invalid: expected one value for all layers, or a list of exactly 2 (model.layers), got 3");
        Path file = dir.resolve("a-file");
        Files.writeString(file, "in the way");
        assertConfigError(train(cfg, "bad", List.of(), "offload.optimizer=disk", "offload.disk_dir=" + file), "offload.disk_dir " + file);
        assertConfigError(train(cfg, "bad", List.of(), "offload.activations=disk", "offload.disk_dir=" + file.resolve("below")), "offload.disk_dir " + file.resolve("below"));
        // under launch the refusals come before any rank starts
        assertConfigError(CliTest.run("launch", "--nproc-per-node", "2", cfg.toString(), "--set", "offload.parameters=disk", "--set", "parallel.zero=2"),
                "offload.parameters = disk needs parameters sharded: set parallel.zero = 3");
        assertConfigError(CliTest.run("launch", "--nproc-per-node", "2", cfg.toString(), "--set", "offload.recompute=[none, selective]",
                "--set", "offload.activations=[none, disk]"), "layer 1: a layer either recomputes its activations or offloads them, not both");

        assumeTrue(root(), "a read-only mount needs root");
        Path ro = dir.resolve("read-only");
        assumeTrue(mount(ro, "size=1m,ro"), "cannot mount a read-only tmpfs at " + ro);
        try {
            assertConfigError(train(cfg, "bad", List.of(), "offload.optimizer=disk", "offload.disk_dir=" + ro), "offload.disk_dir " + ro + " is not writable");
            assertConfigError(train(cfg, "bad", List.of(), "offload.optimizer=disk", "offload.disk_dir=" + ro.resolve("sub")), "offload.disk_dir " + ro.resolve("sub"));
        } finally {
            umount(ro);
        }
    }
}
