package dev.weft.launcher;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.parallel.AeronDriver;
import dev.weft.parallel.AeronTransport;
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
 * {@code weft bench collectives}: all-reduce, reduce-scatter and all-gather between rank processes
 * on this host (one media driver, as the launcher sets up), for each world size and payload size:
 * time per operation, algorithm bandwidth (size / time) and bus bandwidth (the nccl-tests
 * convention: algbw x 2(n-1)/n for all-reduce, x (n-1)/n for the other two), and the ratio of bus
 * bandwidth to a plain memory copy measured in the same run. For reduce-scatter the size is the
 * input (all blocks), for all-gather the output.
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

    @Option(names = "--async", description = "Also time 2-rank asynchronous reduce-scatter and all-gather, through frames and through shared memory, alone and beside a compute loop.")
    boolean async;

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        long min = parseSize("--min-size", minSize), max = parseSize("--max-size", maxSize);
        if (min < 4 || max < min) throw new CommandLine.ParameterException(spec.commandLine(),
                "--min-size must be at least 4 bytes and --max-size at least --min-size; got " + minSize + ", " + maxSize);
        for (int n : ranks)
            if (n < 1 || n > 64) throw new CommandLine.ParameterException(spec.commandLine(), "--ranks: " + n + " is not in 1..64");
        double copyGBs = MemoryBaselines.copy(Math.max(max, 64L << 20));
        out.printf("memory copy (one core, %d MiB): %.2f GB/s; the machine may be shared while measuring%n",
                Math.max(max, 64L << 20) >> 20, copyGBs);
        double exchangeGBs = MemoryBaselines.exchange(64L << 20, 1L << 20);
        out.printf("shared-memory exchange (2 threads swap 64 MiB in 1 MiB pieces, no reduction): %.2f GB/s each (%.0f%% of the copy)%n",
                exchangeGBs, 100 * exchangeGBs / copyGBs);
        try (AeronDriver driver = AeronDriver.launch()) {
            for (int n : ranks) {
                out.printf("%n%d ranks on this host (Aeron driver %s)%n", n, driver.directory());
                out.printf("%-14s %10s %12s %12s %12s %9s%n", "op", "size", "time (us)", "algbw GB/s", "busbw GB/s", "bus/copy");
                out.flush();
                for (String line : runRanks(driver, n, min, max, "sync", null)) {
                    String[] f = line.split(" ");
                    String op = f[1];
                    long size = Long.parseLong(f[2]);
                    double seconds = Double.parseDouble(f[3]);
                    double alg = size / seconds / 1e9;
                    double factor = op.equals("all-reduce") ? 2.0 * (n - 1) / n : (n - 1.0) / n;
                    double bus = alg * factor;
                    out.printf("%-14s %10s %12.1f %12.2f %12.2f %8.0f%%%n", op, human(size), seconds * 1e6, alg, bus, 100 * bus / copyGBs);
                    out.flush();
                }
            }
            if (async) asyncCases(out, driver);
        }
        return 0;
    }

    /**
     * ZeRO's pattern: an asynchronous reduce-scatter (gradients) or all-gather (parameters) issued
     * and then a compute loop (GEMMs on the compute threads) run before it is awaited. For each
     * path (frames: -Dweft.shm.async=false; shared memory) and size: the operation alone, the
     * compute alone, both together, and what the operation added to the compute ("exposed").
     * The two paths alternate, three rounds each, so that a slow phase of a shared machine falls
     * on both.
     */
    private void asyncCases(PrintWriter out, AeronDriver driver) throws IOException, InterruptedException {
        out.printf("%n2 ranks, asynchronous, beside a compute loop of 256x256x256 GEMMs (one per MiB of payload)%n");
        out.printf("%-14s %8s %7s %5s %12s %12s %12s %12s%n", "op", "size", "path", "round", "alone (us)", "compute (us)", "both (us)", "exposed (us)");
        for (int round = 1; round <= 3; round++) for (String path : new String[] {"frames", "shm"}) {
            for (String line : runRanks(driver, 2, 4L << 20, 16L << 20, "async", "-Dweft.shm.async=" + path.equals("shm"))) {
                String[] f = line.split(" ");
                long size = Long.parseLong(f[2]);
                double alone = Double.parseDouble(f[3]), compute = Double.parseDouble(f[4]), both = Double.parseDouble(f[5]);
                out.printf("%-14s %8s %7s %5d %12.0f %12.0f %12.0f %12.0f%n", f[1], human(size), path, round, alone * 1e6, compute * 1e6, both * 1e6,
                        (both - compute) * 1e6);
                out.flush();
            }
        }
    }

    private List<String> runRanks(AeronDriver driver, int n, long min, long max, String mode, String property) throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("weft-bench-collectives");
        List<Process> procs = new ArrayList<>();
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
                procs.add(pb.start());
            }
            for (int r = 0; r < n; r++) {
                Process p = procs.get(r);
                String log = dir.resolve("rank" + r + ".log").toString();
                if (!p.waitFor(30, TimeUnit.MINUTES) || p.exitValue() != 0)
                    throw new IllegalStateException("benchmark rank " + r + " of " + n + " failed; its log:\n" + Files.readString(Path.of(log)));
            }
            return Files.readAllLines(dir.resolve("rank0.log")).stream().filter(l -> l.startsWith("CASE ")).toList();
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
            try (AeronTransport t = AeronTransport.withDriver(System.getenv(AeronTransport.DRIVER_DIR_ENV), "127.0.0.1");
                 ProcessGroup g = t.connect(rank, exchange(dir, rank, n, t.localEndpoint()), Duration.ofSeconds(60));
                 Scope scope = Scope.open()) {
                if (args[6].equals("async")) {
                    asyncCases(g, min, max, minTime);
                    System.out.flush();
                    System.exit(0);
                }
                // One untimed pass over every operation at the smallest size and at 1 MiB first: the
                // JIT compiles the shared code paths there, not inside the first case measured.
                for (long size : new long[] {min, Math.min(max, Math.max(min, 1L << 20))}) {
                    int numel = (int) Math.max(n, size / 4 / n * n);
                    try (Scope warm = Scope.open()) {
                        Tensor full = Tensor.full(1f + rank, numel), block = Tensor.full(1f, numel / n);
                        int k = agreedIterations(g, () -> g.allReduce(full, ReduceOp.SUM), minTime);
                        run(g, () -> g.allReduce(full, ReduceOp.SUM), k);
                        run(g, () -> g.reduceScatter(full, block, ReduceOp.SUM), k);
                        run(g, () -> g.allGather(block, full), k);
                    }
                }
                for (long size = min; size <= max; size *= 4) {
                    int numel = (int) Math.max(n, size / 4 / n * n);
                    Tensor full = Tensor.full(1f + rank, numel);
                    Tensor block = Tensor.full(1f, numel / n);
                    time(g, "all-reduce", numel * 4L, minTime, () -> g.allReduce(full, ReduceOp.SUM));
                    time(g, "reduce-scatter", numel * 4L, minTime, () -> g.reduceScatter(full, block, ReduceOp.SUM));
                    time(g, "all-gather", numel * 4L, minTime, () -> g.allGather(block, full));
                    full.close();
                    block.close();
                }
            }
            System.out.flush();
            System.exit(0);
        }

        /**
         * Warms up until the JIT has compiled the path (half of minTime, at least 50 operations), agrees
         * on an iteration count (rank 0's), then times back-to-back operations; the slowest rank's
         * time counts. A short warm-up leaves interpreted code in the first case of every size: an
         * earlier version warmed up for 3 operations and reported the 4 KiB all-reduce 30x slower
         * than the same operation measured after its first thousand.
         */
        private static void time(ProcessGroup g, String op, long bytes, double minTime, Runnable body) {
            run(g, body, Math.max(50, agreedIterations(g, body, minTime / 2)));
            int k = agreedIterations(g, body, minTime);
            g.barrier();
            long start = System.nanoTime();
            for (int i = 0; i < k; i++) body.run();
            Tensor elapsed = Tensor.scalar((float) ((System.nanoTime() - start) / 1e9 / k));
            g.allReduce(elapsed, ReduceOp.MAX);
            if (g.rank() == 0) System.out.println("CASE " + op + " " + bytes + " " + elapsed.item());
            System.out.flush();
        }

        /** Prints "CASE op size alone compute both" (seconds) per case; see CollectivesBenchCommand.asyncCases. */
        private static void asyncCases(ProcessGroup g, long min, long max, double minTime) {
            int n = g.size(), rank = g.rank();
            Tensor a = Tensor.full(0.5f, 256, 256), b = Tensor.full(0.25f, 256, 256);
            for (long size = min; size <= max; size *= 4) {
                int numel = (int) (size / 4 / n * n);
                Tensor full = Tensor.full(1f + rank, numel), block = Tensor.full(1f, numel / n);
                int gemms = (int) Math.max(1, size >> 20);
                Runnable compute = () -> {
                    for (int i = 0; i < gemms; i++) try (Scope s = Scope.open()) { Matmul.matmul(a, b); }
                };
                for (String op : new String[] {"reduce-scatter", "all-gather"}) {
                    java.util.function.Supplier<Work> issue = op.equals("reduce-scatter")
                            ? () -> g.reduceScatterAsync(full, block, ReduceOp.SUM) : () -> g.allGatherAsync(block, full);
                    double alone = timeAgreed(g, () -> issue.get().await(), minTime);
                    double alu = timeAgreed(g, compute, minTime);
                    double both = timeAgreed(g, () -> {
                        Work w = issue.get();
                        compute.run();
                        w.await();
                    }, minTime);
                    if (rank == 0) System.out.println("CASE " + op + " " + numel * 4L + " " + alone + " " + alu + " " + both);
                }
                full.close();
                block.close();
            }
        }

        /** Seconds per run of body: warmed up, the count agreed from rank 0, the slowest rank's time. */
        private static double timeAgreed(ProcessGroup g, Runnable body, double minTime) {
            run(g, body, Math.max(20, agreedIterations(g, body, minTime / 2)));
            int k = agreedIterations(g, body, minTime);
            g.barrier();
            long start = System.nanoTime();
            for (int i = 0; i < k; i++) body.run();
            Tensor elapsed = Tensor.scalar((float) ((System.nanoTime() - start) / 1e9 / k));
            g.allReduce(elapsed, ReduceOp.MAX);
            return elapsed.item();
        }

        /** How many operations fill {@code seconds}, from one timed on rank 0 and broadcast. */
        private static int agreedIterations(ProcessGroup g, Runnable body, double seconds) {
            body.run();
            g.barrier();
            long t0 = System.nanoTime();
            body.run();
            double one = (System.nanoTime() - t0) / 1e9;
            Tensor iters = Tensor.scalar((float) Math.max(3, Math.min(20_000, Math.ceil(seconds / Math.max(one, 1e-7)))));
            g.broadcast(iters, 0);
            return (int) iters.item();
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
