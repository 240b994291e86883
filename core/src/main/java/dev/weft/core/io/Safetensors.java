package dev.weft.core.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.weft.core.DType;
import dev.weft.core.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads and writes the Hugging Face safetensors format.
 *
 * <p>Layout: an 8-byte little-endian unsigned header length {@code N}, then {@code N} bytes of
 * UTF-8 JSON mapping each tensor name to {@code {"dtype", "shape", "data_offsets": [begin, end]}}
 * (plus an optional {@code "__metadata__"} object of string to string), then the data buffer.
 * Offsets are relative to the start of the buffer; tensors are row-major, little-endian and
 * packed without gaps or overlaps.
 *
 * <p>The writer pads the header with spaces so the buffer starts 8-byte aligned, and orders the
 * tensors in the buffer (and in the header) by element size, largest first, then by name — the
 * same order the reference implementation uses. That keeps every tensor naturally aligned in a
 * memory-mapped file and makes the output independent of the map's iteration order, so the same
 * tensors always give the same bytes. Readers accept any order.
 */
public final class Safetensors {
    static final ObjectMapper JSON = new ObjectMapper();
    static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final String METADATA_KEY = "__metadata__";

    private Safetensors() {}

    /** Opens {@code file} for reading (memory-mapped); the header is validated here. */
    public static SafetensorsFile open(Path file) throws IOException {
        return SafetensorsFile.open(file);
    }

    /**
     * Writes {@code tensors} (float32 as F32, bf16 as BF16) and {@code metadata} (may be null or
     * empty) to {@code file}. The bytes go to a temporary file in the same directory which is
     * flushed to disk and then moved over {@code file}, so a crash never leaves a half-written
     * file under the final name.
     */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) throws IOException {
        if (file == null) throw new IllegalArgumentException("file must not be null");
        write(file, encoding(tensors, metadata));
    }

    /** Writes laid-out bytes to {@code file}, as {@link #write(Path, Map, Map)} does. */
    public static void write(Path file, Encoding e) throws IOException {
        Path target = file.toAbsolutePath();
        Path dir = target.getParent();
        Files.createDirectories(dir);
        // createFile (not createTempFile) so the result gets the usual umask permissions, not 0600
        Path tmp = Files.createFile(dir.resolve("." + target.getFileName() + "." + ProcessHandle.current().pid()
                + "." + Long.toHexString(System.nanoTime()) + ".tmp"));
        boolean moved = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.READ, StandardOpenOption.WRITE);
                 Arena arena = Arena.ofConfined()) {
                MemorySegment out = ch.map(FileChannel.MapMode.READ_WRITE, 0, e.byteSize(), arena);
                e.writeTo(out);
                out.force();
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException notAtomic) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            moved = true;
        } finally {
            if (!moved) Files.deleteIfExists(tmp);
        }
    }

    /**
     * The safetensors bytes of {@code tensors} and {@code metadata}, laid out but not yet written:
     * {@link #byteSize()} says how much room {@link #writeTo} needs, so a caller can write them
     * into memory it owns (an in-memory snapshot) as well as into a file.
     */
    public static final class Encoding {
        private final byte[] json;
        private final long headerLength, total;
        private final List<Map.Entry<String, Tensor>> order;

        private Encoding(byte[] json, long headerLength, long total, List<Map.Entry<String, Tensor>> order) {
            this.json = json;
            this.headerLength = headerLength;
            this.total = total;
            this.order = order;
        }

        public long byteSize() {
            return total;
        }

        /** Writes the file's bytes at the start of {@code out}, which holds at least {@link #byteSize()}. */
        public void writeTo(MemorySegment out) {
            out.set(LE_LONG, 0, headerLength);
            MemorySegment.copy(json, 0, out, ValueLayout.JAVA_BYTE, 8, json.length);
            out.asSlice(8 + json.length, headerLength - json.length).fill((byte) ' ');
            long pos = 8 + headerLength;
            for (Map.Entry<String, Tensor> e : order) pos += copyOut(e.getValue(), out, pos);
        }
    }

    /** Lays out {@code tensors} (float32 as F32, bf16 as BF16) and {@code metadata} (may be null or empty). */
    public static Encoding encoding(Map<String, Tensor> tensors, Map<String, String> metadata) throws IOException {
        if (tensors == null) throw new IllegalArgumentException("tensors must not be null");
        List<Map.Entry<String, Tensor>> order = new ArrayList<>(tensors.entrySet());
        for (Map.Entry<String, Tensor> e : order) checkTensor(e.getKey(), e.getValue());
        order.sort(Comparator.<Map.Entry<String, Tensor>>comparingInt(e -> -e.getValue().dtype().bytes())
                .thenComparing(Map.Entry::getKey));

        Map<String, Object> header = new LinkedHashMap<>();
        if (metadata != null && !metadata.isEmpty()) {
            for (Map.Entry<String, String> m : metadata.entrySet())
                if (m.getKey() == null || m.getValue() == null)
                    throw new IllegalArgumentException("metadata must not hold null keys or values: " + metadata);
            header.put(METADATA_KEY, new LinkedHashMap<>(metadata));
        }
        long offset = 0;
        for (Map.Entry<String, Tensor> e : order) {
            Tensor t = e.getValue();
            long bytes = t.numel() * t.dtype().bytes();
            Map<String, Object> info = new LinkedHashMap<>();
            info.put("dtype", t.dtype().safetensorsName());
            info.put("shape", t.shape());
            info.put("data_offsets", new long[] {offset, offset + bytes});
            header.put(e.getKey(), info);
            offset += bytes;
        }
        byte[] json = JSON.writeValueAsBytes(header);
        long headerLength = (8 + json.length + 7) / 8 * 8 - 8; // pad so the buffer starts 8-aligned
        return new Encoding(json, headerLength, 8 + headerLength + offset, order);
    }

    private static void checkTensor(String name, Tensor t) {
        if (name == null || name.isEmpty()) throw new IllegalArgumentException("tensor names must be non-empty, got " + (name == null ? "null" : "\"\""));
        if (name.equals(METADATA_KEY)) throw new IllegalArgumentException("'" + METADATA_KEY + "' is reserved for metadata and cannot name a tensor");
        if (t == null) throw new IllegalArgumentException("tensor '" + name + "' is null");
        if (t.isClosed()) throw new IllegalArgumentException("tensor '" + name + "' is closed");
        if (t.dtype() != DType.F32 && t.dtype() != DType.BF16)
            throw new IllegalArgumentException("tensor '" + name + "' has dtype " + t.dtype() + "; safetensors writing supports F32 and BF16");
    }

    /** Copies the elements of {@code t} to {@code out} at {@code pos} as little-endian; returns the bytes written. */
    private static long copyOut(Tensor t, MemorySegment out, long pos) {
        long n = t.numel();
        if (n == 0) return 0;
        Tensor packed = null, detached = null;
        try {
            Tensor src = t;
            if (!t.isContiguous()) {
                detached = t.detach();
                packed = t.dtype() == DType.F32 ? detached.contiguous() : detached.to(DType.BF16);
                src = packed;
            }
            if (src.dtype() == DType.F32)
                MemorySegment.copy(src.data(), ValueLayout.JAVA_FLOAT_UNALIGNED, 0, out, LE_FLOAT, pos, n);
            else
                MemorySegment.copy(src.data(), ValueLayout.JAVA_SHORT_UNALIGNED, 0, out, LE_SHORT, pos, n);
            return n * src.dtype().bytes();
        } finally {
            if (packed != null) packed.close();
            if (detached != null) detached.close();
        }
    }
}
