package dev.weft.trainer;

import dev.weft.core.Autograd;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.io.Safetensors;
import dev.weft.core.io.SafetensorsFile;
import dev.weft.optimizers.Optimizer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import java.util.zip.CRC32C;

/**
 * Weights and optimizer state as layout-independent chunks. Each rank writes what it holds to its
 * own file; every chunk is addressed by its name ("FQN" or "FQN/exp_avg"), the global shape of the
 * whole, and the flat element range it covers, with a CRC32C of its bytes. Nothing is gathered to
 * one rank, and a reader under any other data-parallel size or ZeRO stage picks out the ranges it
 * holds.
 *
 * <p>A chunk's metadata entry is {@code chunk:NAME = shape=AxB;offset=O;length=L;crc32c=C}. A
 * tensor without one (model.safetensors, or a single-process checkpoint from before chunks) is the
 * whole of it.
 */
public final class Chunks {
    private Chunks() {}

    static final String SCALAR = "state:", CHUNK = "chunk:";

    /** Where this rank's part of each parameter lies. */
    public interface Placement {
        /** {offset, length} in the flattened elements of parameter {@code name}. */
        long[] shardOf(String name);

        int[] globalShape(String name);
    }

    /** A tensor's place in the whole: the whole's shape and the flat element range the tensor covers. */
    public record Range(int[] shape, long offset, long length) {
        public static Range whole(Tensor t) {
            return new Range(t.shape(), 0, t.numel());
        }
    }

    /** Where optimizer state tensor {@code stateName} of this rank lies within the whole state. */
    static Range stateRange(String stateName, Tensor local, Optimizer optimizer, Placement where) {
        String param = stateName.substring(0, stateName.indexOf('/'));
        long[] shard = where.shardOf(param);
        if (shard == null) return new Range(local.shape(), 0, local.numel());
        int[] paramShape = where.globalShape(param);
        long n = Tensor.numel(paramShape);
        int stride = optimizer.stateStride(stateName);
        // state shaped like its parameter (moments) is addressed in the parameter's shape, whatever view a rank holds
        if (stride == 1 && local.numel() == shard[1]) return new Range(paramShape, shard[0], shard[1]);
        if (shard[0] == 0 && shard[1] == n) return new Range(local.shape(), 0, local.numel());
        if (stride == 1)
            throw new IllegalStateException("optimizer state '" + stateName + "' holds " + local.numel() + " elements for a shard of " + shard[1]);
        if (shard[0] % stride != 0) throw new IllegalStateException("shard of '" + param + "' at " + shard[0] + " is not on a multiple of " + stride);
        return new Range(new int[] {Math.toIntExact((n + stride - 1) / stride)}, shard[0] / stride, local.numel());
    }

    /** Writes this rank's optimizer state (tensors and scalars) to {@code file}. */
    static void writeOptimizer(Path file, Optimizer optimizer, Placement where) throws IOException {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("optimizer", optimizer.name());
        optimizer.stateScalars().forEach((k, v) -> meta.put(SCALAR + k, v));
        Map<String, Tensor> state = optimizer.stateTensors();
        write(file, state, name -> stateRange(name, state.get(name), optimizer, where), meta);
    }

    /** Writes {@code tensors}, each as the chunk {@code range} places it, to {@code file}. */
    static void write(Path file, Map<String, Tensor> tensors, java.util.function.Function<String, Range> range, Map<String, String> metadata)
            throws IOException {
        Map<String, String> meta = new LinkedHashMap<>(metadata);
        Map<String, Tensor> flat = new LinkedHashMap<>();
        try (Scope s = Scope.open(); var ng = Autograd.noGrad()) {
            for (var e : tensors.entrySet()) {
                Tensor t = e.getValue();
                Range r = range.apply(e.getKey());
                meta.put(CHUNK + e.getKey(), "shape=" + shape(r.shape()) + ";offset=" + r.offset() + ";length=" + r.length() + ";crc32c="
                        + Integer.toHexString(crc(t.data())));
                flat.put(e.getKey(), t.detach().view(-1));
            }
            Safetensors.write(file, flat, meta);
        }
    }

    /** One chunk on disk. */
    private record Chunk(Path file, String name, int[] shape, long offset, long length, String crc) {}

    /**
     * Loads into {@code optimizer} the state it holds under this layout, from every chunk file in
     * {@code files}; the error names what is missing, or the file, tensor and range that is corrupt.
     */
    static void readOptimizer(List<Path> files, Optimizer optimizer, Placement where, long steps) {
        Map<String, String> scalars = new LinkedHashMap<>();
        for (Path f : files) {
            try (SafetensorsFile sf = open(f)) {
                sf.metadata().forEach((k, v) -> {
                    if (k.startsWith(SCALAR)) scalars.putIfAbsent(k.substring(SCALAR.length()), v);
                });
            }
        }
        Map<String, Tensor> local = optimizer.stateTensors();
        try (Scope s = Scope.open()) {
            Map<String, Tensor> assembled = new LinkedHashMap<>();
            for (var e : local.entrySet()) assembled.put(e.getKey(), Tensor.empty(e.getValue().shape()));
            read(files, assembled, name -> stateRange(name, local.get(name), optimizer, where), "optimizer state");
            optimizer.loadState(assembled, scalars, steps);
        }
    }

    /**
     * Fills each of {@code targets} with the range of its whole that {@code range} names, from the
     * chunks in {@code files} ({@code what}: "optimizer state", "weight", for the errors).
     */
    static void read(List<Path> files, Map<String, Tensor> targets, java.util.function.Function<String, Range> range, String what) {
        Map<String, List<Chunk>> index = new LinkedHashMap<>();
        for (Path f : files) {
            try (SafetensorsFile sf = open(f)) {
                for (String n : sf.names()) {
                    String m = sf.metadata().get(CHUNK + n);
                    Chunk c = m == null ? new Chunk(f, n, sf.shape(n), 0, Tensor.numel(sf.shape(n)), null) : parse(f, n, m);
                    index.computeIfAbsent(n, k -> new ArrayList<>()).add(c);
                }
            }
        }
        Path where = files.getFirst().getParent();
        Map<Path, SafetensorsFile> open = new LinkedHashMap<>();
        try (Scope s = Scope.open()) {
            for (var e : targets.entrySet()) {
                String name = e.getKey();
                Range want = range.apply(name);
                List<Chunk> chunks = index.get(name);
                if (chunks == null) throw new IllegalArgumentException(what + " '" + name + "' missing from checkpoint " + where);
                Tensor out = e.getValue();
                List<long[]> pieces = new ArrayList<>();
                for (Chunk c : chunks) {
                    if (!Arrays.equals(c.shape(), want.shape()))
                        throw new IllegalArgumentException(c.file() + ": " + what + " '" + name + "' has shape " + Arrays.toString(c.shape())
                                + ", this configuration expects " + Arrays.toString(want.shape()) + "; do the model and optimizer match the checkpoint?");
                    long from = Math.max(c.offset(), want.offset()), to = Math.min(c.offset() + c.length(), want.offset() + want.length());
                    if (from >= to) continue;
                    Tensor piece = open.computeIfAbsent(c.file(), Chunks::open).load(name);
                    if (c.crc() != null && !Integer.toHexString(crc(piece.data())).equals(c.crc()))
                        throw new IllegalArgumentException(c.file() + ": " + what + " '" + name + "' elements [" + c.offset() + ", "
                                + (c.offset() + c.length()) + ") is corrupt (CRC32C " + Integer.toHexString(crc(piece.data())) + ", stored " + c.crc() + ")");
                    // raw bytes: some state (8-bit codes) is packed into float slots and must not be converted
                    MemorySegment.copy(piece.data(), (from - c.offset()) * 4, out.data(), (from - want.offset()) * 4, (to - from) * 4);
                    pieces.add(new long[] {from, to});
                }
                long covered = covered(pieces);
                if (covered != want.length())
                    throw new IllegalArgumentException(what + " '" + name + "' elements [" + want.offset() + ", " + (want.offset() + want.length())
                            + ") are not all in checkpoint " + where + " (" + covered + " of " + want.length() + " found)");
            }
        } finally {
            for (SafetensorsFile f : open.values()) f.close();
        }
    }

    /** Elements covered by the union of [from, to) ranges (replicas of one range count once). */
    private static long covered(List<long[]> ranges) {
        ranges.sort((a, b) -> Long.compare(a[0], b[0]));
        long total = 0, end = Long.MIN_VALUE;
        for (long[] r : ranges) {
            long from = Math.max(r[0], end);
            if (r[1] > from) total += r[1] - from;
            end = Math.max(end, r[1]);
        }
        return total;
    }

    /** The chunk files of {@code part} ("optimizer", "model") in a checkpoint: PART/rank-*.safetensors, or a single PART.safetensors. */
    static List<Path> files(Path dir, String part) {
        Path chunks = dir.resolve(part);
        if (!Files.isDirectory(chunks)) return List.of(dir.resolve(part + ".safetensors"));
        try (Stream<Path> s = Files.list(chunks)) {
            List<Path> out = s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().toList();
            if (out.isEmpty()) throw new IllegalArgumentException(chunks + " holds no " + part + " files");
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + chunks + ": " + e.getMessage(), e);
        }
    }

    private static Chunk parse(Path f, String name, String meta) {
        Map<String, String> kv = new LinkedHashMap<>();
        for (String part : meta.split(";")) {
            int eq = part.indexOf('=');
            if (eq > 0) kv.put(part.substring(0, eq), part.substring(eq + 1));
        }
        try {
            int[] shape = kv.get("shape").isEmpty() ? new int[0] : Arrays.stream(kv.get("shape").split("x")).mapToInt(Integer::parseInt).toArray();
            return new Chunk(f, name, shape, Long.parseLong(kv.get("offset")), Long.parseLong(kv.get("length")), kv.get("crc32c"));
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(f + ": malformed chunk entry for optimizer state '" + name + "': " + meta);
        }
    }

    private static String shape(int[] s) {
        return String.join("x", Arrays.stream(s).mapToObj(Integer::toString).toList());
    }

    private static int crc(MemorySegment bytes) {
        CRC32C c = new CRC32C();
        c.update(bytes.asByteBuffer());
        return (int) c.getValue();
    }

    private static SafetensorsFile open(Path file) {
        try {
            return Safetensors.open(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }
}
