package dev.weft.parallel.rendezvous;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;

/**
 * The key the ranks of one generation of a job prove to each other with when a data-plane
 * connection opens (see {@link JobSecret#peerKey}). It is derived from the job secret and the
 * generation, so a hello recorded in another job or another generation of this one does not
 * verify; each proof also names the sending and receiving rank and a binding chosen by the
 * transport (the receiver's fresh nonce over TCP, the publication's session over Aeron).
 *
 * <p>It authenticates who opened a connection, not every frame: an attacker on the path who can
 * rewrite packets of a live connection is outside what it defends against.
 */
public final class PeerKey {
    private final byte[] key;

    PeerKey(byte[] key) {
        this.key = key.clone();
    }

    /** The proof that rank {@code src} opens {@code channel} to rank {@code dst} under {@code binding}. */
    public byte[] proof(String channel, int src, int dst, byte[] binding) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            mac.update(channel.getBytes(StandardCharsets.UTF_8));
            mac.update(ByteBuffer.allocate(8).putInt(src).putInt(dst).array());
            mac.update(binding);
            return mac.doFinal();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is unavailable in this JVM", e);
        }
    }

    /** Whether {@code proof} is {@link #proof}'s answer for these arguments (in constant time). */
    public boolean verifies(byte[] proof, String channel, int src, int dst, byte[] binding) {
        return proof != null && MessageDigest.isEqual(proof, proof(channel, src, dst, binding));
    }

    /** Bytes in a proof. */
    public static int proofBytes() {
        return 32;
    }

    @Override
    public String toString() {
        return "PeerKey[hidden]";
    }
}
