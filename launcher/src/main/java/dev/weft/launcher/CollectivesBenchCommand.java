package dev.weft.launcher;

import dev.weft.core.ProcessMemory;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.parallel.AeronDriver;
import dev.weft.parallel.AeronTransport;
import dev.weft.launcher.launch.RankEnv;
import dev.weft.parallel.rendezvous.JobSecret;
import dev.weft.parallel.rendezvous.PeerKey;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.ReduceOp;
import dev.weft.parallel.Work;
import dev.weft.core.ops.Matmul;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * {@code weft bench collectives}: all-reduce, reduce-scatter, all-gather and a send-recv ping-pong
 * between rank processes on this host (one media driver, as the launcher sets up), for each world
 * size and payload size: time per operation, bus bandwidth (the nccl-tests convention: algbw x
 * 2(n-1)/n for all-reduce, x (n-1)/n for the other two, algbw itself for send-recv), the ratio of
 * bus bandwidth to a plain memory copy measured in the same run, and, where Open MPI is installed,
 * the same cases through Open MPI ({@link OpenMpiBaseline}) with the ratio of the two times. For
 * reduce-scatter the size is the input (all blocks), for all-gather the output. Every time is the
 * median over batches of the slowest rank's time per operation: the machine may be shared, and a
 * mean over one window would report the other tenants' builds as often as the collective.
 */
@Command(name = "collectives", mixinStandardHelpOptions = true,
        description = "Collective bandwidth and latency between rank processes on this host (reported, not asserted).")
public final class CollectivesBenchCommand implements Callable<Integer> {
    @Option(names = "--ranks", split = ",", defaultValue = "2,4", description = "World sizes (default: ${DEFAULT-VALUE}).")
    int[] ranks;

    @Option(names = "--min-size", defaultValue = "4K", description = "Smallest payload, bytes with K/M/G suffix (default: ${DEFAULT-VALUE}).")
    String minSize;

    @Option(names = "--max-size", defaultValue = "256M", description = "Largest payload (default: ${DEFAULT-VALUE}).")
    String maxSize;

    @Option(names = "--min-time", defaultValue = "0.3", description = "Seconds measured per case (default: ${DEFAULT-VALUE}).")
    double minTime;

    @Option(names = "--async", description = "Also time 2-rank asynchronous all-reduce, reduce-scatter and all-gather beside a compute loop: weft through frames and through shared memory, and Open MPI's non-blocking forms.")
    boolean async;

    @Option(names = "--rounds", defaultValue = "3", description = "Rounds of the --async cases, alternating the paths; medians are reported (default: ${DEFAULT-VALUE}).")
    int rounds;

    @Option(names = "--udp", description = "Send every frame over UDP on loopback instead of IPC and shared memory (to measure the UDP path; its MTU is weft.aeron.mtu / WEFT_AERON_MTU when set).")
    boolean udp;

    /** Tells a rank process to reach its peers over UDP. */
    static final String UDP_ENV = "WEFT_BENCH_UDP";

    @Option(names = "--no-mpi", description = "Skip the Open MPI columns even where mpicc and mpirun are installed.")
    boolean noMpi;

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        long min = parseSize("--min-size", minSize), max = parseSize("--max-size", maxSize);
        if (min < 4 || max < min) throw new CommandLine.ParameterException(spec.commandLine(),
                "--min-size must be at least 4 bytes and --max-size at least --min-size; got " + minSize + ", " + maxSize);
        for (int n : ranks)
            if (n < 1 || n > 64) throw new CommandLine.ParameterException(spec.commandLine(), "--ranks: " + n + " is not in 1..64");
        double copyGBs = dev.weft.offload.Bandwidth.hostCopy(Math.max(max, 64L << 20));
        out.printf("memory copy (one core, %d MiB): %.2f GB/s; the machine may be shared while measuring%n",
                Math.max(max, 64L << 20) >> 20, copyGBs);
        double exchangeGBs = MemoryBaselines.exchange(64L << 20, 1L << 20);
        out.printf("shared-memory exchange (2 threads swap 64 MiB in 1 MiB pieces, no reduction): %.2f GB/s each (%.0f%% of the copy)%n",
                exchangeGBs, 100 * exchangeGBs / copyGBs);
        OpenMpiBaseline mpi = noMpi ? null : OpenMpiBaseline.find(out);
        try (AeronDriver driver = AeronDriver.launch()) {
            for (int n : ranks) {
                out.printf("%n%d ranks on this host (Aeron driver %s)%n", n, driver.directory());
                out.printf("%-14s %8s %10s %10s %9s %10s %10s %9s%n", "op", "size", "weft (us)", "busbw GB/s", "bus/copy",
                        "MPI (us)", "busbw GB/s", "weft/MPI");
                out.flush();
                List<String> weft = runRanks(driver, n, min, max, "sync", null);
                List<String> theirs = mpi == null ? List.of() : mpi.run(n, min, max, minTime, "sync");
                for (String line : weft) {
                    if (!line.startsWith("CASE ")) continue;
                    String[] f = line.split(" ");
                    String op = f[1];
                    long size = Long.parseLong(f[2]);
                    double seconds = Double.parseDouble(f[3]);
                    double bus = busBandwidth(op, n, size, seconds);
                    out.printf("%-14s %8s %10.1f %10.2f %8.0f%%", op, human(size), seconds * 1e6, bus, 100 * bus / copyGBs);
                    String[] m = matching(theirs, op, size);
                    if (m != null) {
                        double ms = Double.parseDouble(m[3]);
                        out.printf(" %10.1f %10.2f %8.2fx", ms * 1e6, busBandwidth(op, n, size, ms), seconds / ms);
                    }
                    out.println();
                    out.flush();
                }
                printMemory(out, weft, theirs);
            }
            if (mpi == null && !noMpi) out.printf("(no Open MPI columns: %s)%n", OpenMpiBaseline.why());
            if (async) asyncCases(out, driver, mpi, min, Math.min(max, 16L << 20));
        }
        return 0;
    }

    /** nccl-tests' bus bandwidth in GB/s: what each rank's links carry, comparable across world sizes. */
    static double busBandwidth(String op, int n, long size, double seconds) {
        double alg = size / seconds / 1e9;
        return switch (op) {
            case "all-reduce" -> alg * 2.0 * (n - 1) / n;
            case "reduce-scatter", "all-gather" -> alg * (n - 1.0) / n;
            default -> alg; // send-recv: one message each way, one-way time
        };
    }

    private static String[] matching(List<String> lines, String op, long size) {
        for (String l : lines) {
            String[] f = l.split(" ");
            if (f[0].equals("CASE") && f[1].equals(op) && Long.parseLong(f[2]) == size) return f;
        }
        return null;
    }

    /** "MEM rss shm [aeron]" from rank 0 of each side: its resident set and the shared-memory files its job mapped. */
    private static void printMemory(PrintWriter out, List<String> weft, List<String> mpi) {
        String[] w = matchingMem(weft), m = matchingMem(mpi);
        if (w != null) out.printf("memory, rank 0: weft RSS %s, shared-memory collective region %s, Aeron log buffers %s (touched pages)",
                mib(w[1]), mib(w[2]), mib(w[3]));
        if (m != null) out.printf("; Open MPI RSS %s, its /dev/shm segments %s", mib(m[1]), mib(m[2]));
        if (w != null || m != null) out.println();
    }

    private static String[] matchingMem(List<String> lines) {
        for (String l : lines) if (l.startsWith("MEM ")) return l.split(" ");
        return null;
    }

    private static String mib(String bytes) {
        return String.format("%.1f MiB", Long.parseLong(bytes) / 1048576.0);
    }

    /**
     * The overlapped pattern (DDP's and ZeRO's buckets): an asynchronous collective issued, a
     * compute loop (64x64x64 GEMMs on the rank's thread, one per 16 KiB of payload, so that the
     * compute outlasts the operation at every size without drowning it) run, and then the
     * collective awaited. For each path (weft through frames; through shared memory on the
     * collective lane, -Dweft.shm.async=true; through shared memory when awaited,
     * -Dweft.shm.async=await; Open MPI's non-blocking form and MPI_Wait) and size: the operation
     * alone (shown for await, which is the synchronous path), the compute alone, both, and what
     * the operation added to the compute ("exposed", the figure compared). The paths alternate over the rounds,
     * so that a slow phase of a shared machine falls on all of them; medians over rounds.
     */
    private void asyncCases(PrintWriter out, AeronDriver driver, OpenMpiBaseline mpi, long min, long max) throws IOException, InterruptedException {
        out.printf("%n2 ranks, asynchronous, beside a compute loop of 64x64x64 GEMMs (one per 16 KiB of payload); medians of %d rounds%n", rounds);
        out.printf("exposed: what the operation added to the compute (us); lane: -Dweft.shm.async=true, await: -Dweft.shm.async=await%n");
        out.printf("%-14s %8s %9s %9s %9s %9s %9s %9s %9s %9s%n", "op", "size", "compute", "alone", "frames", "lane", "await", "MPI",
                "lane/MPI", "await/MPI");
        java.util.Map<String, List<double[]>> cases = new java.util.LinkedHashMap<>();
        for (int round = 1; round <= rounds; round++) {
            for (String path : mpi == null ? new String[] {"frames", "lane", "await"} : new String[] {"frames", "lane", "await", "mpi"}) {
                List<String> lines = path.equals("mpi") ? mpi.run(2, min, max, minTime, "async")
                        : runRanks(driver, 2, min, max, "async", "-Dweft.shm.async=" + switch (path) {
                            case "lane" -> "true";
                            case "await" -> "await";
                            default -> "false";
                        });
                for (String line : lines) {
                    String[] f = line.split(" ");
                    if (!f[0].equals("CASE")) continue;
                    double alone = Double.parseDouble(f[3]), compute = Double.parseDouble(f[4]), exposed = Double.parseDouble(f[5]);
                    cases.computeIfAbsent(f[1] + " " + f[2] + " " + path, k -> new ArrayList<>()).add(new double[] {alone, compute, exposed});
                }
            }
        }
        for (String key : cases.keySet()) {
            String[] k = key.split(" ");
            if (!k[2].equals("frames")) continue;
            String op = k[0];
            long size = Long.parseLong(k[1]);
            double[] frames = medians(cases.get(key)), lane = medians(cases.get(op + " " + size + " lane")),
                    await = medians(cases.get(op + " " + size + " await"));
            List<double[]> m = cases.get(op + " " + size + " mpi");
            out.printf("%-14s %8s %9.0f %9.1f %9.1f %9.1f %9.1f", op, human(size), lane[1] * 1e6, await[0] * 1e6, frames[2] * 1e6, lane[2] * 1e6,
                    await[2] * 1e6);
            if (m != null) {
                double[] mm = medians(m);
                out.printf(" %9.1f %8.2fx %8.2fx", mm[2] * 1e6, lane[2] / mm[2], await[2] / mm[2]);
            }
            out.println();
        }
        out.flush();
    }

    private static double[] medians(List<double[]> rows) {
        if (rows == null || rows.isEmpty()) return new double[] {Double.NaN, Double.NaN, Double.NaN};
        double[] out = new double[rows.get(0).length];
        for (int c = 0; c < out.length; c++) {
            double[] col = new double[rows.size()];
            for (int r = 0; r < col.length; r++) col[r] = rows.get(r)[c];
            java.util.Arrays.sort(col);
            out[c] = col.length % 2 == 1 ? col[col.length / 2] : (col[col.length / 2 - 1] + col[col.length / 2]) / 2;
        }
        return out;
    }

    private List<String> runRanks(AeronDriver driver, int n, long min, long max, String mode, String property) throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("weft-bench-collectives");
        List<Process> procs = new ArrayList<>();
        JobSecret secret = JobSecret.random();
        try {
            List<String> jvm = new ArrayList<>();
            jvm.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments())
                if (!a.startsWith("-Xmx") && !a.startsWith("-agentlib") && !a.startsWith("-javaagent")) jvm.add(a);
            jvm.add("-Xmx" + Math.max(1024, (max >> 20) * 4 + 512) + "m");
            if (property != null) jvm.add(property);
            for (int r = 0; r < n; r++) {
                List<String> cmd = new ArrayList<>(jvm);
                cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Rank.class.getName(),
                        Integer.toString(r), Integer.toString(n), dir.toString(), Long.toString(min), Long.toString(max), Double.toString(minTime), mode));
                ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(dir.resolve("rank" + r + ".log").toFile());
                pb.environment().put(AeronTransport.DRIVER_DIR_ENV, driver.directory());
                pb.environment().put(RankEnv.JOB_SECRET, secret.encoded());
                if (udp) pb.environment().put(UDP_ENV, "true");
                procs.add(pb.start());
            }
            for (int r = 0; r < n; r++) {
                Process p = procs.get(r);
                String log = dir.resolve("rank" + r + ".log").toString();
                if (!p.waitFor(30, TimeUnit.MINUTES) || p.exitValue() != 0)
                    throw new IllegalStateException("benchmark rank " + r + " of " + n + " failed; its log:\n" + Files.readString(Path.of(log)));
            }
            return Files.readAllLines(dir.resolve("rank0.log")).stream().filter(l -> l.startsWith("CASE ") || l.startsWith("MEM ")).toList();
        } finally {
            for (Process p : procs) p.destroyForcibly();
            try (Stream<Path> w = Files.walk(dir)) {
                for (Path q : w.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(q);
            }
        }
    }

    static long parseSize(String option, String s) {
        String t = s.trim().toUpperCase();
        long mult = 1;
        if (t.endsWith("K")) mult = 1L << 10;
        else if (t.endsWith("M")) mult = 1L << 20;
        else if (t.endsWith("G")) mult = 1L << 30;
        if (mult > 1) t = t.substring(0, t.length() - 1);
        try {
            return Long.parseLong(t) * mult;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(option + ": '" + s + "' is not a size (e.g. 4K, 64M, 1G)");
        }
    }

    static String human(long bytes) {
        if (bytes >= 1L << 30 && bytes % (1L << 30) == 0) return (bytes >> 30) + " GiB";
        if (bytes >= 1L << 20 && bytes % (1L << 20) == 0) return (bytes >> 20) + " MiB";
        if (bytes >= 1L << 10 && bytes % (1L << 10) == 0) return (bytes >> 10) + " KiB";
        return bytes + " B";
    }

    /** One benchmark rank process: connects through the driver and times each case; rank 0 prints "CASE op size seconds". */
    public static final class Rank {
        public static void main(String[] args) throws Exception {
            int rank = Integer.parseInt(args[0]), n = Integer.parseInt(args[1]);
            Path dir = Path.of(args[2]);
            long min = Long.parseLong(args[3]), max = Long.parseLong(args[4]);
            double minTime = Double.parseDouble(args[5]);
            String driverDir = System.getenv(AeronTransport.DRIVER_DIR_ENV);
            PeerKey key = JobSecret.decode(System.getenv(RankEnv.JOB_SECRET)).peerKey(0);
            try (AeronTransport t = Boolean.parseBoolean(System.getenv(UDP_ENV)) ? AeronTransport.udpOnly(driverDir, "127.0.0.1", key)
                    : AeronTransport.withDriver(driverDir, "127.0.0.1", key);
                 ProcessGroup g = t.connect(rank, exchange(dir, rank, n, t.localEndpoint()), Duration.ofSeconds(60));
                 Scope scope = Scope.open()) {
                boolean async = args[6].equals("async");
                // Untimed passes over every operation at the smallest size and at 1 MiB until the JIT
                // has stopped compiling on every rank: on 2 cores its compiler threads take a core
                // from the ranks for seconds after start, and the first cases measured (4 KiB) came
                // out 3-20x slower than the same cases measured later in the run.
                for (long size : new long[] {min, Math.min(max, Math.max(min, 1L << 20))}) {
                    int numel = (int) Math.max(n, size / 4 / n * n);
                    try (Scope warm = Scope.open()) {
                        Tensor full = Tensor.full(1f + rank, numel), block = Tensor.full(1f, numel / n);
                        Runnable every = async ? () -> {
                            g.allReduceAsync(full, ReduceOp.SUM).await();
                            g.reduceScatterAsync(full, block, ReduceOp.SUM).await();
                            g.allGatherAsync(block, full).await();
                        } : () -> {
                            g.allReduce(full, ReduceOp.SUM);
                            g.reduceScatter(full, block, ReduceOp.SUM);
                            g.allGather(block, full);
                            pingPong(g, full);
                        };
                        untilCompiled(g, every, agreedIterations(g, every, 0.1));
                    }
                }
                if (async) {
                    asyncCases(g, min, max, minTime);
                    System.out.flush();
                    System.exit(0);
                }
                for (long size = min; size <= max; size *= 4) {
                    int numel = (int) Math.max(n, size / 4 / n * n);
                    Tensor full = Tensor.full(1f + rank, numel);
                    Tensor block = Tensor.full(1f, numel / n);
                    time(g, "all-reduce", numel * 4L, minTime, () -> g.allReduce(full, ReduceOp.SUM));
                    time(g, "reduce-scatter", numel * 4L, minTime, () -> g.reduceScatter(full, block, ReduceOp.SUM));
                    time(g, "all-gather", numel * 4L, minTime, () -> g.allGather(block, full));
                    time(g, "send-recv", numel * 4L, minTime, () -> pingPong(g, full), 2);
                    full.close();
                    block.close();
                }
                if (rank == 0) {
                    long shm = touchedBytes("weft-shm-"), all = touchedBytes("");
                    System.out.println("MEM " + ProcessMemory.rssBytes() + " " + shm + " " + (all - shm));
                }
                g.barrier(); // a rank that closes its group removes the region's file: rank 0 has looked at it

            }
            System.out.flush();
            System.exit(0);
        }

        /**
         * Runs body k times per round until two rounds in a row in which no rank's JIT compiled
         * anything (the JVM's total compilation time stood still), at most 60 rounds. Every rank
         * runs the same rounds: the decision is reduced over the group.
         */
        private static void untilCompiled(ProcessGroup g, Runnable body, int k) {
            java.lang.management.CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
            Tensor busy = Tensor.scalar(0f);
            for (int round = 0, quiet = 0; round < 60 && quiet < 2; round++) {
                long before = jit.getTotalCompilationTime();
                run(g, body, k);
                busy.fill(jit.getTotalCompilationTime() > before ? 1f : 0f);
                g.allReduce(busy, ReduceOp.MAX);
                quiet = busy.item() == 0f ? quiet + 1 : 0;
            }
            busy.close();
        }

        /** Ranks 0 and 1 bounce the tensor (a pipeline's activations forward, gradients back); the others idle. */
        private static void pingPong(ProcessGroup g, Tensor t) {
            if (g.rank() == 0) {
                g.send(t, 1, 0);
                g.recv(t, 1, 0);
            } else if (g.rank() == 1) {
                g.recv(t, 0, 0);
                g.send(t, 0, 0);
            }
        }

        /**
         * Pages actually touched (du) of the files in the driver directory whose names start with
         * prefix (all of them for ""): the weft-shm- regions, and the Aeron log buffers, which
         * are sparse. Other jobs on the same driver would count too; the bench runs alone.
         */
        private static long touchedBytes(String prefix) throws IOException, InterruptedException {
            Path dir = Path.of(System.getenv(AeronTransport.DRIVER_DIR_ENV));
            List<String> cmd = new ArrayList<>(List.of("du", "-k", "-c"));
            try (Stream<Path> files = Files.walk(dir)) {
                files.filter(Files::isRegularFile).filter(f -> f.getFileName().toString().startsWith(prefix)).forEach(f -> cmd.add(f.toString()));
            }
            if (cmd.size() == 3) return 0;
            Process du = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            List<String> lines = new String(du.getInputStream().readAllBytes()).lines().toList();
            du.waitFor();
            String total = lines.isEmpty() ? "0" : lines.getLast().split("\\s+")[0];
            return total.matches("\\d+") ? Long.parseLong(total) * 1024 : -1;
        }

        private static void time(ProcessGroup g, String op, long bytes, double minTime, Runnable body) {
            time(g, op, bytes, minTime, body, 1);
        }

        /**
         * Warms up until the JIT has compiled the path (half of minTime, at least 50 operations), agrees
         * on an iteration count (rank 0's), then times batches of back-to-back operations; prints
         * the median batch's time per operation of the slowest rank, divided by perOp (2 for a
         * ping-pong: the one-way time). A short warm-up leaves interpreted code in the first case of
         * every size: an earlier version warmed up for 3 operations and reported the 4 KiB
         * all-reduce 30x slower than the same operation measured after its first thousand.
         */
        private static void time(ProcessGroup g, String op, long bytes, double minTime, Runnable body, int perOp) {
            run(g, body, Math.max(50, agreedIterations(g, body, minTime / 2)));
            double seconds = medianBatch(g, body, agreedIterations(g, body, minTime)) / perOp;
            if (g.rank() == 0) System.out.println("CASE " + op + " " + bytes + " " + seconds);
            System.out.flush();
        }

        static final int BATCHES = 9;

        /** k operations in BATCHES batches: the median over batches of the slowest rank's seconds per operation. */
        private static double medianBatch(ProcessGroup g, Runnable body, int k) {
            int per = Math.max(1, k / BATCHES);
            float[] mine = new float[BATCHES];
            for (int b = 0; b < BATCHES; b++) {
                g.barrier();
                long start = System.nanoTime();
                for (int i = 0; i < per; i++) body.run();
                mine[b] = (float) ((System.nanoTime() - start) / 1e9 / per);
            }
            Tensor slowest = Tensor.of(mine, BATCHES);
            g.allReduce(slowest, ReduceOp.MAX);
            float[] sorted = slowest.toArray();
            slowest.close();
            java.util.Arrays.sort(sorted);
            return sorted[BATCHES / 2];
        }

        /** Prints "CASE op size alone compute exposed" (seconds) per case; see CollectivesBenchCommand.asyncCases. */
        private static void asyncCases(ProcessGroup g, long min, long max, double minTime) {
            int n = g.size(), rank = g.rank();
            Tensor a = Tensor.full(0.5f, 64, 64), b = Tensor.full(0.25f, 64, 64);
            for (long size = min; size <= max; size *= 4) {
                int numel = (int) Math.max(n, size / 4 / n * n);
                Tensor full = Tensor.full(1f + rank, numel), block = Tensor.full(1f, numel / n);
                int gemms = (int) Math.max(1, size >> 14);
                Runnable compute = () -> {
                    for (int i = 0; i < gemms; i++) try (Scope s = Scope.open()) { Matmul.matmul(a, b); }
                };
                for (String op : new String[] {"all-reduce", "reduce-scatter", "all-gather"}) {
                    java.util.function.Supplier<Work> issue = switch (op) {
                        case "all-reduce" -> () -> g.allReduceAsync(full, ReduceOp.SUM);
                        case "reduce-scatter" -> () -> g.reduceScatterAsync(full, block, ReduceOp.SUM);
                        default -> () -> g.allGatherAsync(block, full);
                    };
                    double alone = timeAgreed(g, () -> issue.get().await(), minTime);
                    double[] exposed = exposed(g, compute, () -> {
                        Work w = issue.get();
                        compute.run();
                        w.await();
                    }, minTime);
                    if (rank == 0) System.out.println("CASE " + op + " " + numel * 4L + " " + alone + " " + exposed[0] + " " + exposed[1]);
                }
                full.close();
                block.close();
            }
        }

        /**
         * {compute, exposed} in seconds: batches that each time a run of compute alone and then as
         * many runs of both (the operation issued, compute, the operation awaited); exposed is a
         * batch's difference, so that a slow phase of a shared machine falls on both halves. The
         * median over batches of the slowest rank's figures.
         */
        private static double[] exposed(ProcessGroup g, Runnable compute, Runnable both, double minTime) {
            run(g, both, Math.max(20, agreedIterations(g, both, minTime / 2)));
            int per = Math.max(3, agreedIterations(g, both, minTime / 2) / BATCHES);
            float[] c = new float[BATCHES], e = new float[BATCHES];
            for (int k = 0; k < BATCHES; k++) {
                g.barrier();
                long t0 = System.nanoTime();
                for (int i = 0; i < per; i++) compute.run();
                long t1 = System.nanoTime();
                g.barrier();
                long t2 = System.nanoTime();
                for (int i = 0; i < per; i++) both.run();
                long t3 = System.nanoTime();
                c[k] = (float) ((t1 - t0) / 1e9 / per);
                e[k] = (float) (((t3 - t2) - (t1 - t0)) / 1e9 / per);
            }
            Tensor tc = Tensor.of(c, BATCHES), te = Tensor.of(e, BATCHES);
            g.allReduce(tc, ReduceOp.MAX);
            g.allReduce(te, ReduceOp.MAX);
            float[] sc = tc.toArray(), se = te.toArray();
            tc.close();
            te.close();
            java.util.Arrays.sort(sc);
            java.util.Arrays.sort(se);
            return new double[] {sc[BATCHES / 2], se[BATCHES / 2]};
        }

        /** Seconds per run of body: warmed up, the count agreed from rank 0, the median batch of the slowest rank. */
        private static double timeAgreed(ProcessGroup g, Runnable body, double minTime) {
            run(g, body, Math.max(20, agreedIterations(g, body, minTime / 2)));
            return medianBatch(g, body, Math.max(3 * BATCHES, agreedIterations(g, body, minTime)));
        }

        /**
         * How many operations fill {@code seconds}: the fastest of five timed on rank 0, broadcast.
         * The fastest, because one operation caught by a stall (another tenant, a GC) had made the
         * count so small that the batches held a handful of operations each.
         */
        private static int agreedIterations(ProcessGroup g, Runnable body, double seconds) {
            body.run();
            g.barrier();
            double one = Double.MAX_VALUE;
            for (int i = 0; i < 5; i++) {
                long t0 = System.nanoTime();
                body.run();
                one = Math.min(one, (System.nanoTime() - t0) / 1e9);
            }
            Tensor iters = Tensor.scalar((float) Math.max(3 * BATCHES, Math.min(200_000, Math.ceil(seconds / Math.max(one, 1e-7)))));
            g.broadcast(iters, 0);
            int k = (int) iters.item();
            iters.close();
            return k;
        }

        private static void run(ProcessGroup g, Runnable body, int k) {
            // k comes from rank 0, so every rank runs the same number of operations
            g.barrier();
            for (int i = 0; i < k; i++) body.run();
        }

        private static List<String> exchange(Path dir, int rank, int n, String endpoint) throws Exception {
            Path tmp = dir.resolve(rank + ".tmp");
            Files.writeString(tmp, endpoint);
            Files.move(tmp, dir.resolve(rank + ".ep"), StandardCopyOption.ATOMIC_MOVE);
            long until = System.nanoTime() + 60_000_000_000L;
            List<String> out = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                Path p = dir.resolve(i + ".ep");
                while (!Files.exists(p)) {
                    if (System.nanoTime() > until) throw new IllegalStateException("rank " + i + " never published its endpoint");
                    Thread.sleep(5);
                }
                out.add(Files.readString(p));
            }
            return out;
        }
    }
}
