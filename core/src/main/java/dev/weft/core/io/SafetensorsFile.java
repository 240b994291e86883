package dev.weft.core.io;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.weft.core.DType;
import dev.weft.core.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * An open, memory-mapped safetensors file. The whole header is validated when the file is
 * opened (every dtype known, offsets matching shapes, tensors packed without gaps or overlaps
 * and within the file), so a bad file fails before any weights are used. Tensors are copied out
 * on {@link #load} as float32; the mapping is released on {@link #close}.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** Element sizes of every dtype the format defines; weft loads F32, BF16 and F16. */
    private static final Map<String, Integer> DTYPE_BYTES = Map.ofEntries(
            Map.entry("BOOL", 1), Map.entry("U8", 1), Map.entry("I8", 1), Map.entry("F8_E5M2", 1), Map.entry("F8_E4M3", 1),
            Map.entry("I16", 2), Map.entry("U16", 2), Map.entry("F16", 2), Map.entry("BF16", 2),
            Map.entry("I32", 4), Map.entry("U32", 4), Map.entry("F32", 4),
            Map.entry("I64", 8), Map.entry("U64", 8), Map.entry("F64", 8));
    private static final Set<String> LOADABLE = Set.of("F32", "BF16", "F16");
    /** The reference implementation refuses headers over 100 MB; so do we, before allocating. */
    private static final long MAX_HEADER = 100L << 20;
    private static final ObjectMapper STRICT_JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private record Entry(String name, String dtype, int elementBytes, int[] shape, long begin, long end) {
        long numel() {
            return Tensor.numel(shape);
        }
    }

    private final Path file;
    private final Arena arena;
    private final MemorySegment buffer;
    private final Map<String, Entry> entries;
    private final Map<String, String> metadata;
    private boolean closed;

    private SafetensorsFile(Path file, Arena arena, MemorySegment buffer, Map<String, Entry> entries, Map<String, String> metadata) {
        this.file = file;
        this.arena = arena;
        this.buffer = buffer;
        this.entries = entries;
        this.metadata = metadata;
    }

    static SafetensorsFile open(Path file) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw new SafetensorsFormatException(file, "file has " + size + " bytes, too short for the 8-byte header length");
            MemorySegment mapped = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            long n = mapped.get(Safetensors.LE_LONG, 0);
            if (n < 0 || n > size - 8)
                throw new SafetensorsFormatException(file, "header length " + Long.toUnsignedString(n) + " is larger than the "
                        + (size - 8) + " bytes that follow it (file size " + size + "); not a safetensors file or truncated");
            if (n > MAX_HEADER) throw new SafetensorsFormatException(file, "header length " + n + " exceeds the 100 MB limit");
            byte[] json = mapped.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
            MemorySegment buffer = mapped.asSlice(8 + n);
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, Entry> entries = parseHeader(file, json, buffer.byteSize(), metadata);
            return new SafetensorsFile(file, arena, buffer, entries, Collections.unmodifiableMap(metadata));
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static Map<String, Entry> parseHeader(Path file, byte[] json, long bufferSize, Map<String, String> metadata) {
        JsonNode root;
        try {
            root = STRICT_JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new SafetensorsFormatException(file, "header is not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new SafetensorsFormatException(file, "header is not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject())
            throw new SafetensorsFormatException(file, "header must be a JSON object, got " + (root == null ? "nothing" : root.getNodeType()));

        Map<String, Entry> entries = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> field = it.next();
            String name = field.getKey();
            JsonNode node = field.getValue();
            if (name.equals(Safetensors.METADATA_KEY)) {
                if (!node.isObject()) throw new SafetensorsFormatException(file, "__metadata__ must be an object of strings, got " + node.getNodeType());
                for (Iterator<Map.Entry<String, JsonNode>> m = node.fields(); m.hasNext(); ) {
                    Map.Entry<String, JsonNode> kv = m.next();
                    if (!kv.getValue().isTextual())
                        throw new SafetensorsFormatException(file, "__metadata__ value of '" + kv.getKey() + "' must be a string, got " + kv.getValue());
                    metadata.put(kv.getKey(), kv.getValue().textValue());
                }
                continue;
            }
            entries.put(name, parseEntry(file, name, node));
        }
        checkLayout(file, entries.values(), bufferSize);
        return entries;
    }

    private static Entry parseEntry(Path file, String name, JsonNode node) {
        String where = "tensor '" + name + "'";
        if (!node.isObject()) throw new SafetensorsFormatException(file, where + ": expected an object with dtype, shape and data_offsets, got " + node);
        JsonNode dt = node.get("dtype");
        if (dt == null || !dt.isTextual()) throw new SafetensorsFormatException(file, where + ": missing or non-string \"dtype\"");
        Integer elementBytes = DTYPE_BYTES.get(dt.textValue());
        if (elementBytes == null)
            throw new SafetensorsFormatException(file, where + ": unknown dtype '" + dt.textValue() + "' (known: "
                    + DTYPE_BYTES.keySet().stream().sorted().collect(Collectors.joining(", ")) + ")");

        JsonNode sh = node.get("shape");
        if (sh == null || !sh.isArray()) throw new SafetensorsFormatException(file, where + ": missing or non-array \"shape\"");
        int[] shape = new int[sh.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToInt() || d.intValue() < 0)
                throw new SafetensorsFormatException(file, where + ": shape " + sh + " must hold integers in [0, " + Integer.MAX_VALUE + "]");
            shape[i] = d.intValue();
            numel = multiply(file, where, numel, shape[i]);
        }

        JsonNode off = node.get("data_offsets");
        if (off == null || !off.isArray() || off.size() != 2)
            throw new SafetensorsFormatException(file, where + ": \"data_offsets\" must be [begin, end], got " + off);
        for (JsonNode o : off)
            if (!o.isIntegralNumber() || !o.canConvertToLong() || o.longValue() < 0)
                throw new SafetensorsFormatException(file, where + ": data_offsets " + off + " must be non-negative integers");
        long begin = off.get(0).longValue(), end = off.get(1).longValue();
        if (end < begin) throw new SafetensorsFormatException(file, where + ": data_offsets " + off + " end before they begin");
        long need = multiply(file, where, numel, elementBytes);
        if (end - begin != need)
            throw new SafetensorsFormatException(file, where + ": data_offsets " + off + " span " + (end - begin) + " bytes but shape "
                    + Arrays.toString(shape) + " of " + dt.textValue() + " needs " + need);
        return new Entry(name, dt.textValue(), elementBytes, shape, begin, end);
    }

    private static long multiply(Path file, String where, long a, long b) {
        try {
            return Math.multiplyExact(a, b);
        } catch (ArithmeticException e) {
            throw new SafetensorsFormatException(file, where + ": size overflows a 64-bit byte count");
        }
    }

    /** Tensors must tile the data buffer exactly: starting at 0, no gaps, no overlaps, ending at its end. */
    private static void checkLayout(Path file, java.util.Collection<Entry> entries, long bufferSize) {
        List<Entry> sorted = new ArrayList<>(entries);
        sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long expected = 0;
        Entry previous = null;
        for (Entry e : sorted) {
            if (e.end > bufferSize)
                throw new SafetensorsFormatException(file, "tensor '" + e.name + "' data_offsets [" + e.begin + ", " + e.end
                        + "] run past the end of the " + bufferSize + "-byte data buffer (file truncated?)");
            if (e.begin < expected)
                throw new SafetensorsFormatException(file, "tensor '" + e.name + "' data_offsets [" + e.begin + ", " + e.end
                        + "] overlap tensor '" + previous.name + "' [" + previous.begin + ", " + previous.end + "]");
            if (e.begin > expected)
                throw new SafetensorsFormatException(file, "gap in the data buffer: bytes [" + expected + ", " + e.begin
                        + ") before tensor '" + e.name + "' belong to no tensor");
            expected = e.end;
            previous = e;
        }
        if (expected != bufferSize)
            throw new SafetensorsFormatException(file, "data buffer has " + bufferSize + " bytes but the tensors cover only " + expected);
    }

    // ---- queries ----------------------------------------------------------------------------------

    public Path file() {
        return file;
    }

    /** Tensor names in the order of the file's header. */
    public Set<String> names() {
        return Collections.unmodifiableSet(entries.keySet());
    }

    public boolean contains(String name) {
        return entries.containsKey(name);
    }

    public int[] shape(String name) {
        return entry(name).shape.clone();
    }

    /**
     * The weft dtype that holds the tensor without loss: F32 or BF16 as stored; F16 reports F32
     * (weft has no F16 type, and every F16 value is exactly a float32).
     */
    public DType dtype(String name) {
        Entry e = entry(name);
        return switch (e.dtype) {
            case "F32", "F16" -> DType.F32;
            case "BF16" -> DType.BF16;
            default -> throw unsupported(e);
        };
    }

    /** The dtype exactly as written in the header ("F32", "BF16", "F16", "I64", ...). */
    public String dtypeName(String name) {
        return entry(name).dtype;
    }

    /** The {@code __metadata__} map (empty when the file has none). */
    public Map<String, String> metadata() {
        return metadata;
    }

    // ---- loading ----------------------------------------------------------------------------------

    /**
     * Copies a tensor out as a new float32 tensor (BF16 and F16 widened exactly). It is registered
     * with the current {@link dev.weft.core.Scope}, if any; otherwise the caller closes it.
     */
    public Tensor load(String name) {
        Entry e = entry(name);
        if (!LOADABLE.contains(e.dtype)) throw unsupported(e);
        Tensor out = Tensor.empty(DType.F32, name, e.shape);
        try {
            decode(e, out.data(), DType.F32);
        } catch (RuntimeException ex) {
            out.close();
            throw ex;
        }
        return out;
    }

    /**
     * Copies a tensor into an existing contiguous tensor of the same shape (F32 or BF16; values
     * are converted to the target's dtype, rounding to nearest-even when narrowing to BF16).
     */
    public void loadInto(String name, Tensor target) {
        Entry e = entry(name);
        if (!LOADABLE.contains(e.dtype)) throw unsupported(e);
        if (!Arrays.equals(e.shape, target.shape()))
            throw new IllegalArgumentException("loadInto: tensor '" + name + "' in " + file + " has shape " + Arrays.toString(e.shape)
                    + " but the target has shape " + Arrays.toString(target.shape()));
        if (!target.isContiguous()) throw new IllegalArgumentException("loadInto: the target for '" + name + "' must be contiguous");
        decode(e, target.data(), target.dtype());
    }

    private void decode(Entry e, MemorySegment dst, DType to) {
        checkOpen();
        long n = e.numel();
        if (n == 0) return;
        MemorySegment src = buffer.asSlice(e.begin, e.end - e.begin);
        if (e.dtype.equals("F32") && to == DType.F32) {
            MemorySegment.copy(src, Safetensors.LE_FLOAT, 0, dst, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, n);
        } else if (e.dtype.equals("BF16") && to == DType.BF16) {
            MemorySegment.copy(src, Safetensors.LE_SHORT, 0, dst, ValueLayout.JAVA_SHORT_UNALIGNED, 0, n);
        } else {
            for (long i = 0; i < n; i++) {
                float v = switch (e.dtype) {
                    case "F32" -> src.getAtIndex(Safetensors.LE_FLOAT, i);
                    case "BF16" -> DType.fromBf16(src.getAtIndex(Safetensors.LE_SHORT, i));
                    default -> Float.float16ToFloat(src.getAtIndex(Safetensors.LE_SHORT, i)); // F16
                };
                if (to == DType.F32) dst.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
                else dst.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, DType.toBf16(v));
            }
        }
    }

    private Entry entry(String name) {
        checkOpen();
        Entry e = entries.get(name);
        if (e == null) throw new SafetensorsFormatException(file, "no tensor named '" + name + "' (the file holds " + entries.size()
                + " tensors" + (entries.isEmpty() ? "" : "; closest: " + String.join(", ", closest(name, 5))) + ")");
        return e;
    }

    /** Names sharing the longest prefix with {@code name}, so a typo or a prefix mismatch shows at once. */
    private List<String> closest(String name, int count) {
        List<String> all = new ArrayList<>(entries.keySet());
        all.sort(Comparator.comparingInt((String s) -> -commonPrefix(s, name)).thenComparing(Comparator.naturalOrder()));
        return all.subList(0, Math.min(count, all.size())).stream().map(s -> "'" + s + "'").toList();
    }

    private static int commonPrefix(String a, String b) {
        int i = 0;
        while (i < a.length() && i < b.length() && a.charAt(i) == b.charAt(i)) i++;
        return i;
    }

    private SafetensorsFormatException unsupported(Entry e) {
        return new SafetensorsFormatException(file, "tensor '" + e.name + "' has dtype " + e.dtype + "; weft loads F32, BF16 and F16");
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("safetensors file " + file + " is closed");
    }

    /** Unmaps the file; tensors already loaded stay valid. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        arena.close();
    }

    @Override
    public String toString() {
        return "SafetensorsFile[" + file + ", " + entries.size() + " tensors]";
    }
}
