package dev.weft.trainer.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.zip.CRC32C;

/**
 * A read-only, memory-mapped sequence of token ids stored in one file.
 *
 * <p>File layout (all integers little-endian), a 128-byte header followed by the payload:
 * <pre>
 *   0  magic            8 bytes  "WEFTTOKS"
 *   8  format version   u32      1
 *  12  bytes per token  u32      2 (uint16, vocab &lt;= 65536) or 4 (uint32)
 *  16  token count      u64
 *  24  vocab size       u32
 *  28  payload CRC32C   u32      over bytes [128, end)
 *  32  name length      u32      UTF-8 bytes of the tokenizer name, at most 84
 *  36  tokenizer name   84 bytes zero padded
 * 120  reserved         4 bytes  zero
 * 124  header CRC32C    u32      over bytes [0, 124)
 * 128  payload          count x bytes-per-token
 * </pre>
 * {@link #open(Path)} checks all of it, including every token id against the vocabulary, so a
 * shard that opens is one the model can consume.
 */
public final class TokenShard implements AutoCloseable {
    static final int HEADER_BYTES = 128;
    static final int VERSION = 1;
    static final int MAX_NAME_BYTES = 84;
    private static final byte[] MAGIC = "WEFTTOKS".getBytes(StandardCharsets.US_ASCII);
    private static final int HEADER_CRC_AT = 124;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** CRC32C and ByteBuffer views take at most 2 GiB at a time. */
    private static final long CHUNK_BYTES = 1L << 30;

    private final Path file;
    private final Arena arena;
    private final MemorySegment payload;
    private final int bytesPerToken;
    private final long count;
    private final int vocabSize;
    private final String tokenizer;
    private final int payloadCrc;

    private TokenShard(Path file, Arena arena, MemorySegment payload, int bytesPerToken, long count,
                       int vocabSize, String tokenizer, int payloadCrc) {
        this.file = file;
        this.arena = arena;
        this.payload = payload;
        this.bytesPerToken = bytesPerToken;
        this.count = count;
        this.vocabSize = vocabSize;
        this.tokenizer = tokenizer;
        this.payloadCrc = payloadCrc;
    }

    /** Bytes per token for a vocabulary: uint16 while every id fits, uint32 beyond. */
    static int bytesPerToken(int vocabSize) {
        return vocabSize <= 65536 ? 2 : 4;
    }

    /**
     * Writes {@code tokens} as a shard at {@code file}. The bytes go to a temporary file in the same
     * directory first and are moved into place atomically, so a crash never leaves a partial shard
     * under the real name.
     */
    public static void write(Path file, int[] tokens, int vocabSize, String tokenizer) {
        if (vocabSize <= 0) throw new IllegalArgumentException("vocabSize must be positive, got " + vocabSize);
        byte[] name = tokenizer.getBytes(StandardCharsets.UTF_8);
        if (name.length == 0 || name.length > MAX_NAME_BYTES) {
            throw new IllegalArgumentException("tokenizer name must be 1.." + MAX_NAME_BYTES
                    + " UTF-8 bytes, got " + name.length + " ('" + tokenizer + "')");
        }
        TokenIds.check(tokens, vocabSize, tokenizer);
        int bpt = bytesPerToken(vocabSize);
        Path dir = file.toAbsolutePath().getParent();
        Path tmp = null;
        try {
            Files.createDirectories(dir);
            tmp = Files.createTempFile(dir, file.getFileName() + ".", ".tmp");
            int crc;
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                // Payload first (computing its CRC on the way), then the header that records it.
                ch.position(HEADER_BYTES);
                CRC32C payloadCrc = new CRC32C();
                ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
                for (int t : tokens) {
                    if (buf.remaining() < bpt) drain(ch, buf, payloadCrc);
                    if (bpt == 2) buf.putShort((short) t); else buf.putInt(t);
                }
                drain(ch, buf, payloadCrc);
                crc = (int) payloadCrc.getValue();
                ByteBuffer header = header(bpt, tokens.length, vocabSize, crc, name);
                while (header.hasRemaining()) ch.write(header, header.position());
                ch.force(true);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write token shard " + file + ": " + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                try { Files.deleteIfExists(tmp); } catch (IOException ignored) { /* best effort */ }
            }
        }
    }

    private static void drain(FileChannel ch, ByteBuffer buf, CRC32C crc) throws IOException {
        buf.flip();
        crc.update(buf.duplicate());
        while (buf.hasRemaining()) ch.write(buf);
        buf.clear();
    }

    static ByteBuffer header(int bpt, long count, int vocabSize, int payloadCrc, byte[] name) {
        ByteBuffer h = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
        h.put(MAGIC).putInt(VERSION).putInt(bpt).putLong(count).putInt(vocabSize).putInt(payloadCrc)
                .putInt(name.length).put(name);
        CRC32C crc = new CRC32C();
        crc.update(h.array(), 0, HEADER_CRC_AT);
        h.putInt(HEADER_CRC_AT, (int) crc.getValue());
        h.position(0).limit(HEADER_BYTES);
        return h;
    }

    /** Maps {@code file} and validates it; any inconsistency is a {@link ShardFormatException}. */
    public static TokenShard open(Path file) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < HEADER_BYTES) {
                throw new ShardFormatException(file, "truncated: expected at least the " + HEADER_BYTES
                        + "-byte header, found " + size + " bytes");
            }
            MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            TokenShard shard = validate(file, all, size, arena);
            arena = null; // owned by the shard now
            return shard;
        } catch (NoSuchFileException e) {
            throw new UncheckedIOException("token shard " + file + " does not exist"
                    + " (create shards with 'weft prepare --input TEXT --out DIR')", e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read token shard " + file + ": " + e, e);
        } finally {
            if (arena != null) arena.close();
        }
    }

    private static TokenShard validate(Path file, MemorySegment all, long size, Arena arena) {
        MemorySegment h = all.asSlice(0, HEADER_BYTES);
        byte[] magic = h.asSlice(0, MAGIC.length).toArray(ValueLayout.JAVA_BYTE);
        if (!java.util.Arrays.equals(magic, MAGIC)) {
            throw new ShardFormatException(file, "not a weft token shard: expected magic "
                    + hex(MAGIC) + " (\"WEFTTOKS\"), found " + hex(magic));
        }
        int version = h.get(U32, 8);
        if (version != VERSION) {
            throw new ShardFormatException(file, "unsupported format version: expected " + VERSION + ", found " + version);
        }
        int storedHeaderCrc = h.get(U32, HEADER_CRC_AT);
        int headerCrc = crc(h.asSlice(0, HEADER_CRC_AT));
        if (storedHeaderCrc != headerCrc) {
            throw new ShardFormatException(file, "header checksum mismatch: expected CRC32C "
                    + hex(storedHeaderCrc) + " (stored), found " + hex(headerCrc) + " (computed); the header is corrupt");
        }
        int bpt = h.get(U32, 12);
        long count = h.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 16);
        int vocab = h.get(U32, 24);
        int storedPayloadCrc = h.get(U32, 28);
        int nameLen = h.get(U32, 32);
        if (vocab <= 0) throw new ShardFormatException(file, "vocab size must be positive, found " + vocab);
        if (bpt != bytesPerToken(vocab)) {
            throw new ShardFormatException(file, "token width does not fit the vocabulary: expected "
                    + bytesPerToken(vocab) + " bytes per token for vocab " + vocab + ", found " + bpt);
        }
        if (nameLen <= 0 || nameLen > MAX_NAME_BYTES) {
            throw new ShardFormatException(file, "tokenizer name length: expected 1.." + MAX_NAME_BYTES + ", found " + nameLen);
        }
        String tokenizer = new String(h.asSlice(36, nameLen).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
        if (count < 0 || count > (Long.MAX_VALUE - HEADER_BYTES) / bpt) {
            throw new ShardFormatException(file, "token count out of range: found " + count);
        }
        long expectedSize = HEADER_BYTES + count * bpt;
        if (size != expectedSize) {
            throw new ShardFormatException(file, (size < expectedSize ? "truncated" : "trailing bytes")
                    + ": header says " + count + " tokens of " + bpt + " bytes, so expected " + expectedSize
                    + " bytes, found " + size);
        }
        MemorySegment payload = all.asSlice(HEADER_BYTES);
        int payloadCrc = crc(payload);
        if (payloadCrc != storedPayloadCrc) {
            throw new ShardFormatException(file, "payload checksum mismatch: expected CRC32C "
                    + hex(storedPayloadCrc) + " (from header), found " + hex(payloadCrc) + "; the token data is corrupt");
        }
        TokenShard shard = new TokenShard(file, arena, payload, bpt, count, vocab, tokenizer, payloadCrc);
        // A writer bug (not bit rot: the CRC matched) could still store ids the model cannot embed.
        for (long i = 0; i < count; i++) {
            int t = shard.get(i);
            if (t < 0 || t >= vocab) {
                throw new ShardFormatException(file, "token " + i + " is out of the vocabulary: expected an id in [0, "
                        + vocab + "), found " + Integer.toUnsignedString(t));
            }
        }
        return shard;
    }

    private static int crc(MemorySegment seg) {
        CRC32C crc = new CRC32C();
        for (long off = 0; off < seg.byteSize(); off += CHUNK_BYTES) {
            crc.update(seg.asSlice(off, Math.min(CHUNK_BYTES, seg.byteSize() - off)).asByteBuffer());
        }
        return (int) crc.getValue();
    }

    private static String hex(int v) {
        return String.format("0x%08x", v);
    }

    private static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x));
        return sb.toString();
    }

    /** Number of tokens. */
    public long count() {
        return count;
    }

    /** Token {@code i}, {@code 0 <= i < count()}. */
    public int get(long i) {
        if (i < 0 || i >= count) throw new IndexOutOfBoundsException("token index " + i + " outside [0, " + count + ") of " + file);
        return bytesPerToken == 2
                ? Short.toUnsignedInt(payload.get(U16, i * 2))
                : payload.get(U32, i * 4);
    }

    /** Copies tokens {@code [from, from + len)} into {@code dst[dstOff ..]}. */
    public void read(long from, int[] dst, int dstOff, int len) {
        if (from < 0 || len < 0 || from + len > count) {
            throw new IndexOutOfBoundsException("tokens [" + from + ", " + (from + len) + ") outside [0, " + count + ") of " + file);
        }
        java.util.Objects.checkFromIndexSize(dstOff, len, dst.length);
        if (bytesPerToken == 4) {
            MemorySegment.copy(payload, U32, from * 4, dst, dstOff, len);
        } else {
            for (int k = 0; k < len; k++) dst[dstOff + k] = Short.toUnsignedInt(payload.get(U16, (from + k) * 2));
        }
    }

    public int vocabSize() {
        return vocabSize;
    }

    /** Name of the tokenizer that produced the ids (see {@link Tokenizer#byName(String)}). */
    public String tokenizer() {
        return tokenizer;
    }

    /** CRC32C of the payload, as recorded in the header and verified on open. */
    public int payloadCrc32c() {
        return payloadCrc;
    }

    public Path file() {
        return file;
    }

    /** Unmaps the file; the shard must not be used afterwards. */
    @Override
    public void close() {
        arena.close();
    }

    @Override
    public String toString() {
        return "TokenShard[" + file + ", " + count + " " + tokenizer + " tokens, vocab " + vocabSize + "]";
    }
}
