package dev.weft.checkpoint;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * One row of a store's index: the piece {@code piece} (or the commit record, piece ==
 * {@link SnapshotStore#COMMIT}) of owner {@code owner}'s snapshot of {@code job} at {@code step},
 * with the file that holds its bytes (relative to the store's data directory), their length and
 * CRC32C. A commit record carries the codec metadata in {@code record}.
 */
public record IndexEntry(String job, long step, String owner, int piece, String location, long length, int crc32c,
                         byte[] record) {
    public boolean isCommit() {
        return piece == SnapshotStore.COMMIT;
    }

    String key() {
        return key(job, step, owner, piece);
    }

    static String key(String job, long step, String owner, int piece) {
        return job + '\u0001' + step + '\u0001' + owner + '\u0001' + piece;
    }

    byte[] encodeValue() {
        try {
            ByteArrayOutputStream b = new ByteArrayOutputStream(64 + record.length);
            DataOutputStream out = new DataOutputStream(b);
            out.writeByte(1); // format version
            out.writeUTF(location);
            out.writeLong(length);
            out.writeInt(crc32c);
            out.writeInt(record.length);
            out.write(record);
            return b.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static IndexEntry decode(String key, byte[] value) {
        String[] k = key.split("\u0001");
        try {
            DataInputStream in = new DataInputStream(new ByteArrayInputStream(value));
            int version = in.readByte();
            if (version != 1) throw new IllegalStateException("index entry " + key + " has unknown format version " + version);
            String location = in.readUTF();
            long length = in.readLong();
            int crc = in.readInt();
            byte[] record = in.readNBytes(in.readInt());
            return new IndexEntry(k[0], Long.parseLong(k[1]), k[2], Integer.parseInt(k[3]), location, length, crc, record);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public String toString() {
        return job + " step " + step + " " + owner + (isCommit() ? " commit" : " piece " + piece) + " (" + length + " bytes)";
    }
}
