package dev.weft.parallel.rendezvous;

import java.io.DataInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * The rendezvous protocol, one TCP connection per join:
 * <pre>
 *   coordinator: MAGIC, VERSION, nonce[32]
 *   joiner:      generation, rank, worldSize, endpoint, joinerNonce[32], HMAC("join", nonce, claim, joinerNonce)
 *   coordinator: OK, n, endpoint[0..n), HMAC("peers", joinerNonce, generation, endpoints)
 *             or REFUSED / FAILED, message, HMAC("refused" / "failed", joinerNonce, message)
 * </pre>
 * or, from a node launcher ({@link NodeLink}):
 * <pre>
 *   node:        CONTROL, nodeRank, nnodes, nodeNonce[32], HMAC("control", nonce, nodeRank, nnodes, nodeNonce)
 *   coordinator: OK, generation, restarts, HMAC("control-ok", nodeNonce, generation, restarts)
 *             or REFUSED, message, HMAC("refused", nodeNonce, message)
 *   then MAC'd messages both ways ({@code ControlChannel})
 * </pre>
 * Every reply is MAC'd over the joiner's fresh nonce, so a process that does not hold the secret
 * can neither hand out a peer list nor make a rank give up with a forged refusal, and no reply can
 * be replayed to another join.
 */
final class Wire {
    static final String MAGIC = "weft-rendezvous";
    static final int VERSION = 2;
    static final int OK = 0, REFUSED = 1, FAILED = 2;
    /** Sent in place of a join's generation: a node launcher opening its control connection (see {@link NodeLink}). */
    static final int CONTROL = -1;
    static final int MAX_ENDPOINT_BYTES = 4096;

    private Wire() {}

    static byte[] claim(int generation, int rank, int worldSize, String endpoint) {
        byte[] e = endpoint.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(16 + e.length).putInt(generation).putInt(rank).putInt(worldSize).putInt(e.length).put(e).array();
    }

    static byte[] node(int nodeRank, int nnodes) {
        return ByteBuffer.allocate(8).putInt(nodeRank).putInt(nnodes).array();
    }

    static byte[] peers(int generation, List<String> endpoints) {
        int n = 8;
        for (String s : endpoints) n += 4 + s.getBytes(StandardCharsets.UTF_8).length;
        ByteBuffer b = ByteBuffer.allocate(n).putInt(generation).putInt(endpoints.size());
        for (String s : endpoints) {
            byte[] e = s.getBytes(StandardCharsets.UTF_8);
            b.putInt(e.length).put(e);
        }
        return b.array();
    }

    /** The label a reply's MAC starts with, so an OK cannot pass for a refusal or the other way round. */
    static byte[] replyLabel(int status) {
        return label(switch (status) {
            case OK -> "peers";
            case REFUSED -> "refused";
            case FAILED -> "failed";
            default -> throw new IllegalArgumentException("unknown reply status " + status);
        });
    }

    static byte[] label(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Reads the coordinator's greeting (MAGIC, VERSION, nonce) and returns its nonce; {@code who}
     * ("rank 3", "node 1") names the caller in the errors.
     */
    static byte[] readGreeting(DataInputStream in, String hostPort, String who) throws IOException {
        String magic;
        try {
            magic = in.readUTF();
        } catch (java.io.EOFException e) {
            throw new RendezvousException(who + ": " + hostPort + " closed the connection before greeting", e);
        }
        if (!MAGIC.equals(magic)) throw new RendezvousException(who + ": " + hostPort + " is not a weft rendezvous coordinator");
        int version = in.readInt();
        if (version != VERSION)
            throw new RendezvousException(who + ": coordinator speaks rendezvous version " + version + ", this " + who.split(" ")[0] + " " + VERSION);
        return readBytes(in, JobSecret.NONCE_BYTES);
    }

    /**
     * After a REFUSED or FAILED status: reads the coordinator's message and its MAC over
     * {@code mine} (the joiner's nonce) and throws, naming a fake coordinator when the MAC does not
     * verify. {@code who} ("rank 3", "node 1") names the caller.
     */
    static RendezvousException refusal(DataInputStream in, int status, JobSecret secret, byte[] mine, String hostPort, String who) throws IOException {
        String message = in.readUTF();
        byte[] mac = readBytes(in, 32);
        if (!java.security.MessageDigest.isEqual(mac, secret.mac(replyLabel(status), mine, message.getBytes(StandardCharsets.UTF_8))))
            return new RendezvousException(who + ": the coordinator at " + hostPort + " does not hold the job secret (its "
                    + (status == REFUSED ? "refusal" : "failure report") + " is not authenticated; either it is not this job's"
                    + " coordinator or this " + who.split(" ")[0] + "'s WEFT_JOB_SECRET differs); it said: " + message.replaceAll("\\s+", " "));
        return new RendezvousException(who + ": " + message);
    }

    static byte[] readBytes(DataInputStream in, int n) throws IOException {
        byte[] b = new byte[n];
        in.readFully(b);
        return b;
    }

    static String readEndpoint(DataInputStream in) throws IOException {
        int len = in.readInt();
        if (len < 0 || len > MAX_ENDPOINT_BYTES) throw new IOException("endpoint length " + len + " outside [0, " + MAX_ENDPOINT_BYTES + "]");
        return new String(readBytes(in, len), StandardCharsets.UTF_8);
    }
}
