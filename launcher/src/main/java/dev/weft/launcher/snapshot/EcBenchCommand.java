package dev.weft.launcher.snapshot;

import dev.weft.checkpoint.Chunk;
import dev.weft.checkpoint.ErasureCodedSnapshots;
import dev.weft.checkpoint.ReedSolomon;
import dev.weft.checkpoint.Snapshot;
import dev.weft.checkpoint.SnapshotRecord;
import dev.weft.checkpoint.SnapshotStore;
import dev.weft.core.kernels.Parallel;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

/**
 * {@code weft bench ec}: Reed-Solomon encode/decode throughput per core, vector kernel against the
 * reference kernel, and snapshot-store write/read throughput against a plain memory copy, all
 * measured in the same run. Throughput counts data bytes (k shards), as storage codecs usually do.
 */
@Command(name = "ec", mixinStandardHelpOptions = true,
        description = "Erasure-coding and snapshot-store throughput (reported, not asserted).")
public final class EcBenchCommand implements Callable<Integer> {
    @Option(names = "--shard-kib", split = ",", defaultValue = "1024,16384", description = "Shard sizes in KiB (default: ${DEFAULT-VALUE}).")
    int[] shardKib;

    @Option(names = "--codes", split = ",", defaultValue = "4:2,6:3,8:2", description = "Codes as k:m (default: ${DEFAULT-VALUE}).")
    String[] codes;

    @Option(names = "--store-mib", defaultValue = "64", description = "Bytes per store write/read, MiB (default: ${DEFAULT-VALUE}).")
    int storeMib;

    @Option(names = "--min-time", defaultValue = "0.4", description = "Seconds measured per case (default: ${DEFAULT-VALUE}).")
    double minTime;

    @Option(names = "--store", paramLabel = "DIR", description = "Where to put the scratch stores (default: /dev/shm if present, else the temp dir).")
    Path store;

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        out.printf("Reed-Solomon over GF(2^8), one core (GB/s of data bytes; ratio = vector / reference)%n");
        out.printf("%-9s %9s  %14s %14s %7s  %14s %14s %7s%n", "code", "shard", "encode vector", "encode ref", "ratio",
                "decode vector", "decode ref", "ratio");
        SplittableRandom rnd = new SplittableRandom(1);
        warmUp(rnd);
        for (String code : codes) {
            String[] km = code.split(":");
            if (km.length != 2) throw new IllegalArgumentException("--codes: expected k:m, got '" + code + "'");
            int k = Integer.parseInt(km[0].trim()), m = Integer.parseInt(km[1].trim());
            for (int kib : shardKib) {
                long len = kib * 1024L;
                try (Arena arena = Arena.ofShared()) {
                    MemorySegment[] pieces = new MemorySegment[k + m];
                    for (int i = 0; i < k + m; i++) pieces[i] = fill(arena.allocate(len, 64), rnd);
                    MemorySegment[] data = Arrays.copyOf(pieces, k), parity = Arrays.copyOfRange(pieces, k, k + m);
                    double[] gbs = new double[4];
                    int c = 0;
                    for (ReedSolomon.Kernel kernel : ReedSolomon.Kernel.values()) {
                        ReedSolomon rs = ReedSolomon.of(k, m, kernel).serial();
                        gbs[c] = rate(k * len, () -> rs.encode(data, parity));
                        boolean[] present = new boolean[k + m];
                        Arrays.fill(present, true);
                        for (int i = 0; i < Math.min(k, m); i++) present[i] = false; // worst case: lose data pieces
                        gbs[c + 2] = rate(k * len, () -> rs.reconstruct(pieces, present));
                        c++;
                    }
                    out.printf("%-9s %9s  %14.2f %14.2f %6.1fx  %14.2f %14.2f %6.1fx%n", "RS(" + k + "," + m + ")", size(len),
                            gbs[0], gbs[1], gbs[0] / gbs[1], gbs[2], gbs[3], gbs[2] / gbs[3]);
                }
            }
        }
        long big = shardKib[shardKib.length - 1] * 1024L;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment[] p = new MemorySegment[6];
            for (int i = 0; i < 6; i++) p[i] = fill(arena.allocate(big, 64), rnd);
            ReedSolomon rs = ReedSolomon.of(4, 2);
            double all = rate(4 * big, () -> rs.encode(Arrays.copyOf(p, 4), Arrays.copyOfRange(p, 4, 6)));
            out.printf("RS(4,2) %s encode on %d threads (striped): %.2f GB/s%n", size(big), Parallel.threads(), all);
        }
        storeBench(out, rnd);
        return 0;
    }

    private void storeBench(PrintWriter out, SplittableRandom rnd) throws IOException {
        Path base = store != null ? store : Files.isDirectory(Path.of("/dev/shm")) && Files.isWritable(Path.of("/dev/shm"))
                ? Path.of("/dev/shm") : Path.of(System.getProperty("java.io.tmpdir"));
        Path dir = Files.createTempDirectory(base, "weft-bench-ec-");
        long len = storeMib * (1L << 20);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment src = fill(arena.allocate(len, 64), rnd), dst = arena.allocate(len, 64);
            double copy = rate(len, () -> MemorySegment.copy(src, 0, dst, 0, len));
            out.printf("%nsnapshot store in %s, %s pieces (GB/s; ratio = store / plain memory copy)%n", base, size(len));
            out.printf("  memory copy                         %8.2f%n", copy);
            try (SnapshotStore s = SnapshotStore.open(dir.resolve("one"), SnapshotStore.Options.defaults().withBudget(4 * len))) {
                double write = rate(len, () -> io(() -> s.putPiece("bench", 1, "r", 0, src)));
                double read = rate(len, () -> io(() -> s.readPiece("bench", 1, "r", 0, dst)));
                out.printf("  store write (pwrite + CRC32C)       %8.2f  %5.2fx%n", write, write / copy);
                out.printf("  store read  (copy + CRC32C check)   %8.2f  %5.2fx%n", read, read / copy);
            }
            List<SnapshotStore> domains = new ArrayList<>();
            try {
                for (int i = 0; i < 6; i++) domains.add(SnapshotStore.open(dir.resolve("node" + i), SnapshotStore.Options.defaults().withBudget(4 * len)));
                ErasureCodedSnapshots ec = new ErasureCodedSnapshots(domains, 4, 2);
                Snapshot snap = new Snapshot(new SnapshotRecord(1, 0, new long[0], Map.of()),
                        List.of(new Chunk("weights", new long[]{len}, new long[]{0}, new long[]{len}, src)));
                double save = rate(len, () -> io(() -> { ec.save("bench", "r", snap); return null; }));
                double restore = rate(len, () -> io(() -> { ec.restore("bench", "r").close(); return null; }));
                out.printf("  EC save RS(4,2) over 6 domains      %8.2f  %5.2fx%n", save, save / copy);
                out.printf("  EC restore, all pieces present      %8.2f  %5.2fx%n", restore, restore / copy);
                Files.delete(domains.get(ec.domainOf("r", 0)).pieceFile(domains.get(ec.domainOf("r", 0)).entry("bench", 1, "r", 0).orElseThrow()));
                Files.delete(domains.get(ec.domainOf("r", 1)).pieceFile(domains.get(ec.domainOf("r", 1)).entry("bench", 1, "r", 1).orElseThrow()));
                double degraded = rate(len, () -> io(() -> { ec.restore("bench", "r").close(); return null; }));
                out.printf("  EC restore, 2 data pieces lost      %8.2f  %5.2fx%n", degraded, degraded / copy);
            } finally {
                for (SnapshotStore s : domains) s.close();
            }
        } finally {
            try (var w = Files.walk(dir)) {
                for (Path p : w.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
            }
        }
    }

    /** Compiles the kernels (C2) on small shards first, so the first measured case is not the slow one. */
    private void warmUp(SplittableRandom rnd) {
        try (Arena arena = Arena.ofShared()) {
            for (String code : codes) {
                String[] km = code.split(":");
                int k = Integer.parseInt(km[0].trim()), m = Integer.parseInt(km[1].trim());
                MemorySegment[] p = new MemorySegment[k + m];
                for (int i = 0; i < k + m; i++) p[i] = fill(arena.allocate(64 * 1024 + 64, 64), rnd);
                boolean[] present = new boolean[k + m];
                Arrays.fill(present, true);
                for (int i = 0; i < Math.min(k, m); i++) present[i] = false;
                ReedSolomon rs = ReedSolomon.of(k, m).serial();
                long t0 = System.nanoTime();
                while (System.nanoTime() - t0 < 300_000_000L) {
                    rs.encode(Arrays.copyOf(p, k), Arrays.copyOfRange(p, k, k + m));
                    rs.reconstruct(p, present);
                }
            }
        }
    }

    interface IoOp { Object run() throws IOException; }

    private static void io(IoOp op) {
        try {
            op.run();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** GB/s for {@code bytes} per run: warms up, then runs until {@link #minTime} seconds have passed. */
    private double rate(long bytes, Runnable op) {
        long warm = System.nanoTime();
        for (int i = 0; i < 3 && System.nanoTime() - warm < minTime * 0.5e9; i++) op.run();
        long t0 = System.nanoTime(), n = 0;
        do {
            op.run();
            n++;
        } while (System.nanoTime() - t0 < minTime * 1e9);
        return (double) bytes * n / (System.nanoTime() - t0);
    }

    private static MemorySegment fill(MemorySegment s, SplittableRandom rnd) {
        for (long i = 0; i + 8 <= s.byteSize(); i += 8) s.set(ValueLayout.JAVA_LONG_UNALIGNED, i, rnd.nextLong());
        return s;
    }

    private static String size(long bytes) {
        return bytes >= 1 << 20 && bytes % (1 << 20) == 0 ? bytes / (1 << 20) + " MiB" : bytes / 1024 + " KiB";
    }
}
