package dev.weft.parallel.rendezvous;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.HexFormat;

/**
 * The per-job secret that admits a process to rendezvous. It never travels over the wire: the
 * coordinator sends a fresh nonce and the joiner answers with an HMAC-SHA256 of the nonce and its
 * claim (rank, endpoint, ...), keyed by the secret; the coordinator's answer is MAC'd the same way
 * over the joiner's nonce, so each side proves it holds the secret.
 */
public final class JobSecret {
    static final int NONCE_BYTES = 32;
    private static final SecureRandom RANDOM = new SecureRandom();
    private final byte[] key;

    private JobSecret(byte[] key) {
        this.key = key.clone();
    }

    /** A fresh random 256-bit secret. */
    public static JobSecret random() {
        byte[] k = new byte[32];
        RANDOM.nextBytes(k);
        return new JobSecret(k);
    }

    /** Reads the hex form written by {@link #encoded()} (as handed to ranks in WEFT_JOB_SECRET). */
    public static JobSecret decode(String hex) {
        if (hex == null || hex.isBlank())
            throw new IllegalArgumentException("the job secret is missing (WEFT_JOB_SECRET must be set by weft launch)");
        try {
            byte[] k = HexFormat.of().parseHex(hex.strip());
            if (k.length < 16) throw new IllegalArgumentException("the job secret is too short: " + k.length + " bytes, expected at least 16");
            return new JobSecret(k);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("the job secret is not hexadecimal: " + e.getMessage());
        }
    }

    public String encoded() {
        return HexFormat.of().formatHex(key);
    }

    static byte[] nonce() {
        byte[] n = new byte[NONCE_BYTES];
        RANDOM.nextBytes(n);
        return n;
    }

    /** The data-plane key of {@code generation} (a restart count): peers of that generation prove themselves with it. */
    public PeerKey peerKey(int generation) {
        return new PeerKey(mac(Wire.label("data-plane"), java.nio.ByteBuffer.allocate(4).putInt(generation).array()));
    }

    /** HMAC-SHA256 over the concatenation of {@code parts}. */
    byte[] mac(byte[]... parts) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            for (byte[] p : parts) mac.update(p);
            return mac.doFinal();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is unavailable in this JVM", e);
        }
    }

    @Override
    public String toString() {
        return "JobSecret[hidden]";
    }
}
