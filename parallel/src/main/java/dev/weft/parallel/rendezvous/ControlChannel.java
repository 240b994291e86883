package dev.weft.parallel.rendezvous;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;

/**
 * The message stream of a node launcher's control connection, after its handshake: every message
 * carries an HMAC under a key derived from the job secret and both handshake nonces, over its
 * direction and its sequence number, so nothing can be injected, replayed or reordered by someone
 * without the secret.
 */
final class ControlChannel {
    /** Node to coordinator. */
    static final int FAILED = 1, DONE = 2;
    /** Coordinator to node. */
    static final int RESTART = 11, GIVE_UP = 12, FINISHED = 13;

    record Message(int type, int generation, int value, String text) {}

    private final JobSecret secret;
    private final byte[] session;
    private final DataInputStream in;
    private final DataOutputStream out;
    private final String sendLabel, receiveLabel;
    private long sent, received;

    ControlChannel(JobSecret secret, byte[] coordinatorNonce, byte[] nodeNonce, DataInputStream in, DataOutputStream out, boolean coordinator) {
        this.secret = secret;
        this.session = secret.mac(Wire.label("control-session"), coordinatorNonce, nodeNonce);
        this.in = in;
        this.out = out;
        this.sendLabel = coordinator ? "to-node" : "to-coordinator";
        this.receiveLabel = coordinator ? "to-coordinator" : "to-node";
    }

    private byte[] mac(String direction, long seq, Message m) {
        byte[] text = m.text().getBytes(StandardCharsets.UTF_8);
        return secret.mac(Wire.label(direction), session,
                ByteBuffer.allocate(20).putLong(seq).putInt(m.type()).putInt(m.generation()).putInt(m.value()).array(), text);
    }

    synchronized void send(Message m) throws IOException {
        out.writeInt(m.type());
        out.writeInt(m.generation());
        out.writeInt(m.value());
        out.writeUTF(m.text());
        out.write(mac(sendLabel, sent++, m));
        out.flush();
    }

    /** The next message; throws if its MAC does not verify (the connection cannot be trusted any more). */
    Message receive() throws IOException {
        Message m = new Message(in.readInt(), in.readInt(), in.readInt(), in.readUTF());
        byte[] mac = Wire.readBytes(in, 32);
        if (!MessageDigest.isEqual(mac, mac(receiveLabel, received++, m)))
            throw new IOException("a control message failed its HMAC check (not from a holder of the job secret)");
        return m;
    }
}
