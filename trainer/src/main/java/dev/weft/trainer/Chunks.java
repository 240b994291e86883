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
 * whole, the block of the whole that the writer's tensor-parallel rank held (all of it, or one of
 * equal blocks along one dimension), and the flat element range of that block it covers (a ZeRO
 * shard), with a CRC32C of its bytes. Nothing is gathered to one rank, and a reader under any other
 * mesh picks out the elements it holds.
 *
 * <p>A chunk's metadata entry is {@code chunk:NAME = shape=AxB;offset=O;length=L;crc32c=C}, with
 * {@code ;box=D:S:E} when it lies in the block of {@code E} entries from {@code S} along dimension
 * {@code D}. A tensor without an entry (model.safetensors, or a single-process checkpoint from
 * before chunks) is the whole of it.
 */
public final class Chunks {
    private Chunks() {}

    static final String SCALAR = "state:", CHUNK = "chunk:";

    /** Where this rank's part of each parameter lies. */
    public interface Placement {
        /** {offset, length} in the flattened elements of this rank's tensor of parameter {@code name}, or null: all of it. */
        long[] shardOf(String name);

        /** The block of the whole parameter this rank's tensor is (tensor parallelism), whole when not split. */
        dev.weft.core.nn.Placement box(String name);

        default int[] globalShape(String name) {
            return box(name).globalShape();
        }
    }

    /**
     * A tensor's place in the whole: the whole's shape, the block along dimension {@code dim}
     * ({@code extent} entries from {@code start}; dim -1: the whole) and the flat element range of
     * that block the tensor covers.
     */
    public record Range(int[] shape, int dim, int start, int extent, long offset, long length) {
        /** Elements [offset, offset + length) of the whole. */
        public Range(int[] shape, long offset, long length) {
            this(shape, -1, 0, 0, offset, length);
        }

        /** Elements [offset, offset + length) of the block {@code box} describes. */
        public static Range of(dev.weft.core.nn.Placement box, long offset, long length) {
            if (box.isReplicated()) return new Range(box.globalShape(), offset, length);
            return new Range(box.globalShape(), box.dim(), box.offsets()[box.dim()], box.localShape()[box.dim()], offset, length);
        }

        public static Range whole(Tensor t) {
            return new Range(t.shape(), 0, t.numel());
        }

        boolean sameBlock(Range o) {
            return dim == o.dim && (dim < 0 || start == o.start && extent == o.extent);
        }

        /**
         * The runs of the whole's flattened elements that this range covers, in order, each as
         * {whole's index, index within this range, count}: a block along dimension d is contiguous
         * for extent x (entries after d) elements at a time.
         */
        List<long[]> runs() {
            List<long[]> out = new ArrayList<>();
            if (dim < 0) {
                out.add(new long[] {offset, 0, length});
                return out;
            }
            long inner = 1;
            for (int i = dim + 1; i < shape.length; i++) inner *= shape[i];
            long block = extent * inner, stride = shape[dim] * inner;
            for (long k = offset, end = offset + length; k < end; ) {
                long r = k % block, n = Math.min(block - r, end - k);
                out.add(new long[] {(k / block) * stride + start * inner + r, k - offset, n});
                k += n;
            }
            return out;
        }

        private String box() {
            return dim < 0 ? "" : ";box=" + dim + ":" + start + ":" + extent;
        }
    }

    /** Where optimizer state tensor {@code stateName} of this rank lies within the whole state. */
    static Range stateRange(String stateName, Tensor local, Optimizer optimizer, Placement where) {
        String param = stateName.substring(0, stateName.indexOf('/'));
        dev.weft.core.nn.Placement box = where.box(param);
        long[] shard = where.shardOf(param);
        long held = Tensor.numel(box.localShape());
        if (shard == null) shard = new long[] {0, held};
        int stride = optimizer.stateStride(stateName);
        // state shaped like its parameter (moments) is addressed in the parameter's shape, whatever view a rank holds
        if (stride == 1 && local.numel() == shard[1]) return Range.of(box, shard[0], shard[1]);
        // other state (projections, 8-bit scales) belongs to the tensor this rank holds: under tensor parallelism,
        // one such tensor per block, addressed as entry [block] of a whole of [blocks, ...] (it reshards over dp, not tp)
        if (shard[0] == 0 && shard[1] == held) return perBlock(box, local.shape(), 0, local.numel());
        if (stride == 1)
            throw new IllegalStateException("optimizer state '" + stateName + "' holds " + local.numel() + " elements for a shard of " + shard[1]);
        if (shard[0] % stride != 0) throw new IllegalStateException("shard of '" + param + "' at " + shard[0] + " is not on a multiple of " + stride);
        return perBlock(box, new int[] {Math.toIntExact((held + stride - 1) / stride)}, shard[0] / stride, local.numel());
    }

    private static Range perBlock(dev.weft.core.nn.Placement box, int[] shape, long offset, long length) {
        if (box.isReplicated()) return new Range(shape, offset, length);
        int[] whole = new int[shape.length + 1];
        whole[0] = box.parts();
        System.arraycopy(shape, 0, whole, 1, shape.length);
        return new Range(whole, 0, box.index(), 1, offset, length);
    }

    /** Writes this rank's optimizer state (tensors and scalars) to {@code file}. */
    static void writeOptimizer(Path file, Optimizer optimizer, Placement where) throws IOException {
        try (Scope s = Scope.open(); var ng = Autograd.noGrad()) {
            Safetensors.write(file, encodeOptimizer(optimizer, where));
        }
    }

    /** Writes {@code tensors}, each as the chunk {@code range} places it, to {@code file}. */
    static void write(Path file, Map<String, Tensor> tensors, java.util.function.Function<String, Range> range, Map<String, String> metadata)
            throws IOException {
        try (Scope s = Scope.open(); var ng = Autograd.noGrad()) {
            Safetensors.write(file, encode(tensors, range, metadata));
        }
    }

    /** The bytes {@link #writeOptimizer} writes. Call it in a scope and without grad, and use the result before the scope closes. */
    static Safetensors.Encoding encodeOptimizer(Optimizer optimizer, Placement where) throws IOException {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("optimizer", optimizer.name());
        optimizer.stateScalars().forEach((k, v) -> meta.put(SCALAR + k, v));
        Map<String, Tensor> state = optimizer.stateTensors();
        return encode(state, name -> stateRange(name, state.get(name), optimizer, where), meta);
    }

    /** The bytes {@link #write} writes. Call it in a scope and without grad, and use the result before the scope closes. */
    static Safetensors.Encoding encode(Map<String, Tensor> tensors, java.util.function.Function<String, Range> range, Map<String, String> metadata)
            throws IOException {
        Map<String, String> meta = new LinkedHashMap<>(metadata);
        Map<String, Tensor> flat = new LinkedHashMap<>();
        for (var e : tensors.entrySet()) {
            Tensor t = e.getValue();
            Range r = range.apply(e.getKey());
            meta.put(CHUNK + e.getKey(), "shape=" + shape(r.shape()) + ";offset=" + r.offset() + ";length=" + r.length() + r.box() + ";crc32c="
                    + Integer.toHexString(crc(t.data())));
            flat.put(e.getKey(), t.detach().view(-1));
        }
        return Safetensors.encoding(flat, meta);
    }

    /** One chunk on disk. */
    private record Chunk(Path file, String name, Range range, String crc) {}

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
                    Chunk c = m == null ? new Chunk(f, n, new Range(sf.shape(n), 0, Tensor.numel(sf.shape(n))), null) : parse(f, n, m);
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
                List<long[]> wanted = want.runs();
                for (Chunk c : chunks) {
                    Range have = c.range();
                    if (!Arrays.equals(have.shape(), want.shape()))
                        throw new IllegalArgumentException(c.file() + ": " + what + " '" + name + "' has shape " + Arrays.toString(have.shape())
                                + ", this configuration expects " + Arrays.toString(want.shape()) + "; do the model and optimizer match the checkpoint?");
                    List<long[]> overlaps = overlaps(have.runs(), wanted);
                    if (overlaps.isEmpty()) continue;
                    Tensor piece = open.computeIfAbsent(c.file(), Chunks::open).load(name);
                    if (c.crc() != null && !Integer.toHexString(crc(piece.data())).equals(c.crc()))
                        throw new IllegalArgumentException(c.file() + ": " + what + " '" + name + "' elements [" + have.offset() + ", "
                                + (have.offset() + have.length()) + ")" + have.box().replace(";box=", " of block ") + " is corrupt (CRC32C "
                                + Integer.toHexString(crc(piece.data())) + ", stored " + c.crc() + ")");
                    // raw bytes: some state (8-bit codes) is packed into float slots and must not be converted
                    for (long[] o : overlaps) {
                        MemorySegment.copy(piece.data(), o[0] * 4, out.data(), o[1] * 4, o[2] * 4);
                        pieces.add(new long[] {want.offset() + o[1], want.offset() + o[1] + o[2]});
                    }
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

    /**
     * Where runs {@code have} (a chunk's) and {@code want} (a target's) cover the same elements of
     * the whole, each as {index in the chunk, index in the target, count}. Both lists ascend.
     */
    private static List<long[]> overlaps(List<long[]> have, List<long[]> want) {
        List<long[]> out = new ArrayList<>();
        int i = 0, j = 0;
        while (i < have.size() && j < want.size()) {
            long[] h = have.get(i), w = want.get(j);
            long from = Math.max(h[0], w[0]), to = Math.min(h[0] + h[2], w[0] + w[2]);
            if (from < to) out.add(new long[] {h[1] + from - h[0], w[1] + from - w[0], to - from});
            if (h[0] + h[2] <= w[0] + w[2]) i++;
            else j++;
        }
        return out;
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

    /** One chunk's check: where it lies in its whole, and its CRC32C as stored and as read (stored null: the file carries none). */
    public record Check(Path file, String name, String range, String stored, String actual) {
        public boolean ok() {
            return stored == null || stored.equals(actual);
        }
    }

    /** Reads every tensor of {@code file} and checks it against the CRC32C its chunk entry stores. */
    static List<Check> verify(Path file) {
        List<Check> out = new ArrayList<>();
        try (SafetensorsFile sf = open(file); Scope s = Scope.open()) {
            for (String n : sf.names()) {
                String m = sf.metadata().get(CHUNK + n);
                Chunk c = m == null ? null : parse(file, n, m);
                String range = c == null ? "whole " + shape(sf.shape(n))
                        : "[" + c.range().offset() + ", " + (c.range().offset() + c.range().length()) + ") of " + shape(c.range().shape()) + c.range().box().replace(";box=", " block ");
                out.add(new Check(file, n, range, c == null ? null : c.crc(), Integer.toHexString(crc(sf.load(n).data()))));
            }
        }
        return out;
    }

    /** The chunk files of {@code part} ("optimizer", "model") in a checkpoint: PART/rank-*.safetensors, or a single PART.safetensors. */
    static List<Path> files(Path dir, String part) {
        Path chunks = dir.resolve(part);
        if (!Files.isDirectory(chunks)) {
            Path single = dir.resolve(part + ".safetensors");
            Path index = dir.resolve(part + ".safetensors.index.json");
            if (!Files.exists(single) && Files.exists(index)) return ShardIndex.files(index);
            return List.of(single);
        }
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
            long offset = Long.parseLong(kv.get("offset")), length = Long.parseLong(kv.get("length"));
            Range r = new Range(shape, offset, length);
            if (kv.containsKey("box")) {
                int[] b = Arrays.stream(kv.get("box").split(":")).mapToInt(Integer::parseInt).toArray();
                r = new Range(shape, b[0], b[1], b[2], offset, length);
            }
            return new Chunk(f, name, r, kv.get("crc32c"));
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(f + ": malformed chunk entry for '" + name + "': " + meta);
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
