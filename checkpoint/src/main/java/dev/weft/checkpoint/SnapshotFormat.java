package dev.weft.checkpoint;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The byte image of a {@link Snapshot} (the "payload" that is split into data pieces):
 * <pre>
 *   "WEFTSNP1"  int headerLength  header  (pad to 64)  chunk bytes, each padded to 64
 *   header = step dataPosition nRng rng[] nSchedule (key value)* nChunks
 *            (name rank shape[] offsets[] lengths[] byteLength)*       (big-endian, UTF-8 strings)
 * </pre>
 * Chunk data offsets are implied by the order, so the header has no pointers to get wrong.
 */
final class SnapshotFormat {
    static final long ALIGN = 64;
    private static final byte[] MAGIC = "WEFTSNP1".getBytes(StandardCharsets.US_ASCII);

    private SnapshotFormat() {}

    static long align(long n) {
        return (n + ALIGN - 1) / ALIGN * ALIGN;
    }

    static byte[] header(Snapshot s) {
        try {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            DataOutputStream out = new DataOutputStream(bytes);
            SnapshotRecord r = s.record();
            out.writeLong(r.step());
            out.writeLong(r.dataPosition());
            long[] rng = r.rngStates();
            out.writeInt(rng.length);
            for (long v : rng) out.writeLong(v);
            out.writeInt(r.schedule().size());
            for (Map.Entry<String, String> e : r.schedule().entrySet()) {
                out.writeUTF(e.getKey());
                out.writeUTF(e.getValue());
            }
            out.writeInt(s.chunks().size());
            for (Chunk c : s.chunks()) {
                out.writeUTF(c.name());
                long[] shape = c.globalShape(), off = c.offsets(), len = c.lengths();
                out.writeInt(shape.length);
                for (long v : shape) out.writeLong(v);
                for (long v : off) out.writeLong(v);
                for (long v : len) out.writeLong(v);
                out.writeLong(c.bytes().byteSize());
            }
            return bytes.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Bytes the payload of {@code s} needs, given its header. */
    static long payloadSize(Snapshot s, byte[] header) {
        long n = align(MAGIC.length + 4 + header.length);
        for (Chunk c : s.chunks()) n += align(c.bytes().byteSize());
        return n;
    }

    /** Writes the payload into {@code dst} (at least {@link #payloadSize} bytes, zeroed beyond). */
    static void write(Snapshot s, byte[] header, MemorySegment dst) {
        MemorySegment.copy(MAGIC, 0, dst, ValueLayout.JAVA_BYTE, 0, MAGIC.length);
        dst.set(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), MAGIC.length, header.length);
        MemorySegment.copy(header, 0, dst, ValueLayout.JAVA_BYTE, MAGIC.length + 4, header.length);
        long at = align(MAGIC.length + 4 + header.length);
        for (Chunk c : s.chunks()) {
            MemorySegment.copy(c.bytes(), 0, dst, at, c.bytes().byteSize());
            at += align(c.bytes().byteSize());
        }
    }

    /** Parses a payload; chunk bytes are slices of {@code src}, which must stay alive. */
    static Snapshot read(MemorySegment src) {
        byte[] magic = src.asSlice(0, MAGIC.length).toArray(ValueLayout.JAVA_BYTE);
        if (!java.util.Arrays.equals(magic, MAGIC))
            throw new IllegalArgumentException("not a weft snapshot payload (bad magic " + new String(magic, StandardCharsets.ISO_8859_1) + ")");
        int headerLength = src.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), MAGIC.length);
        try {
            return parse(src, headerLength, new java.io.DataInputStream(new java.io.ByteArrayInputStream(
                    src.asSlice(MAGIC.length + 4, headerLength).toArray(ValueLayout.JAVA_BYTE))));
        } catch (IOException e) {
            throw new IllegalArgumentException("corrupt snapshot header: " + e, e);
        }
    }

    private static Snapshot parse(MemorySegment src, int headerLength, java.io.DataInputStream h) throws IOException {
        long step = h.readLong(), dataPosition = h.readLong();
        long[] rng = new long[h.readInt()];
        for (int i = 0; i < rng.length; i++) rng[i] = h.readLong();
        Map<String, String> schedule = new TreeMap<>();
        for (int i = h.readInt(); i > 0; i--) schedule.put(h.readUTF(), h.readUTF());
        int n = h.readInt();
        List<Chunk> chunks = new ArrayList<>(n);
        long at = align(MAGIC.length + 4 + headerLength);
        for (int i = 0; i < n; i++) {
            String name = h.readUTF();
            int rank = h.readInt();
            long[] shape = new long[rank], off = new long[rank], len = new long[rank];
            for (int d = 0; d < rank; d++) shape[d] = h.readLong();
            for (int d = 0; d < rank; d++) off[d] = h.readLong();
            for (int d = 0; d < rank; d++) len[d] = h.readLong();
            long size = h.readLong();
            chunks.add(new Chunk(name, shape, off, len, src.asSlice(at, size)));
            at += align(size);
        }
        return new Snapshot(new SnapshotRecord(step, dataPosition, rng, schedule), chunks);
    }

    static MemorySegment allocate(Arena arena, long bytes) {
        return arena.allocate(Math.max(1, bytes), ALIGN).asSlice(0, bytes);
    }
}
