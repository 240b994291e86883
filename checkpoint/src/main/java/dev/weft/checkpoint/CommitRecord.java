package dev.weft.checkpoint;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * What a commit record says about an erasure-coded snapshot: the code RS(k, m), the piece and
 * payload lengths, which domain holds each piece (by the name of its store directory, so a reader
 * may list the surviving domains in any order), and each piece's CRC32C.
 */
record CommitRecord(long step, int k, int m, long pieceLength, long payloadLength, String[] domains, int[] crcs) {
    byte[] encode() {
        try {
            ByteArrayOutputStream b = new ByteArrayOutputStream();
            DataOutputStream out = new DataOutputStream(b);
            out.writeInt(0x57454331); // "WEC1"
            out.writeLong(step);
            out.writeInt(k);
            out.writeInt(m);
            out.writeLong(pieceLength);
            out.writeLong(payloadLength);
            for (int i = 0; i < k + m; i++) {
                out.writeUTF(domains[i]);
                out.writeInt(crcs[i]);
            }
            return b.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static CommitRecord decode(byte[] bytes) {
        try {
            DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes));
            if (in.readInt() != 0x57454331) throw new IllegalArgumentException("not an erasure-coded commit record");
            long step = in.readLong();
            int k = in.readInt(), m = in.readInt();
            long pieceLength = in.readLong(), payloadLength = in.readLong();
            String[] domains = new String[k + m];
            int[] crcs = new int[k + m];
            for (int i = 0; i < k + m; i++) {
                domains[i] = in.readUTF();
                crcs[i] = in.readInt();
            }
            return new CommitRecord(step, k, m, pieceLength, payloadLength, domains, crcs);
        } catch (IOException e) {
            throw new IllegalArgumentException("truncated commit record", e);
        }
    }
}
