package dev.weft.launcher;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Open MPI's figures for the same cases, measured in the same run: the bundled
 * {@code collectives_mpi.c} (timed as weft's bench ranks time theirs: warm-up, an agreed count, the
 * median batch of the slowest rank) compiled with {@code mpicc} and started with {@code mpirun
 * --bind-to none}, so that its ranks share the cores as weft's do. Present only where mpicc and
 * mpirun are on the PATH (Debian: {@code apt-get install openmpi-bin libopenmpi-dev}).
 */
final class OpenMpiBaseline {
    private static final int CORES = Runtime.getRuntime().availableProcessors();
    private static String why = "mpicc and mpirun are not on the PATH (apt-get install openmpi-bin libopenmpi-dev)";
    private final Path binary;

    private OpenMpiBaseline(Path binary) {
        this.binary = binary;
    }

    /** The compiled benchmark, or null (then {@link #why()} says why) when Open MPI is missing or the compile failed. */
    static OpenMpiBaseline find(PrintWriter out) throws IOException, InterruptedException {
        if (onPath("mpicc") == null || onPath("mpirun") == null) return null;
        Path dir = Files.createTempDirectory("weft-bench-mpi");
        dir.toFile().deleteOnExit();
        Path src = dir.resolve("collectives_mpi.c"), bin = dir.resolve("collectives_mpi");
        try (InputStream in = OpenMpiBaseline.class.getResourceAsStream("collectives_mpi.c")) {
            if (in == null) throw new IllegalStateException("collectives_mpi.c is missing from the launcher's resources");
            Files.copy(in, src);
        }
        src.toFile().deleteOnExit();
        bin.toFile().deleteOnExit();
        String[] compile = {"mpicc", "-O3", "-march=native", "-o", bin.toString(), src.toString()};
        Result r = exec(List.of(compile), 120);
        if (r.rc != 0) {
            why = "mpicc failed: " + r.output.strip().lines().findFirst().orElse("exit " + r.rc);
            return null;
        }
        String version = exec(List.of("mpirun", "--version"), 30).output.lines().findFirst().orElse("Open MPI").strip();
        out.printf("Open MPI beside weft: %s, shared memory, %s%n", version, String.join(" ", compile));
        return new OpenMpiBaseline(bin);
    }

    static String why() {
        return why;
    }

    /**
     * The benchmark on n ranks; returns its CASE and MEM lines. Beyond one rank per core mpirun
     * needs --oversubscribe, which also makes Open MPI's waits yield (as weft's do there).
     */
    List<String> run(int n, long min, long max, double minTime, String mode) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("mpirun", "--allow-run-as-root", "-np", Integer.toString(n), "--bind-to", "none"));
        if (n > CORES) cmd.add("--oversubscribe");
        cmd.addAll(List.of(binary.toString(), Long.toString(min), Long.toString(max), Double.toString(minTime), mode));
        Result r = exec(cmd, 1800);
        if (r.rc != 0) throw new IllegalStateException("Open MPI benchmark failed (" + String.join(" ", cmd) + "):\n" + r.output);
        return r.output.lines().filter(l -> l.startsWith("CASE ") || l.startsWith("MEM ")).toList();
    }

    private record Result(int rc, String output) {}

    private static Result exec(List<String> cmd, long seconds) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(seconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return new Result(-1, "timed out after " + seconds + " s");
        }
        return new Result(p.exitValue(), new String(out));
    }

    private static Path onPath(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "").split(java.io.File.pathSeparator)) {
            Path p = Path.of(d, tool);
            if (Files.isExecutable(p)) return p;
        }
        return null;
    }
}
