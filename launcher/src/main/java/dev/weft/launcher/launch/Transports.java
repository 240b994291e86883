package dev.weft.launcher.launch;

import dev.weft.parallel.AeronTransport;
import dev.weft.parallel.TcpTransport;
import dev.weft.parallel.Transport;

import java.net.InetAddress;
import java.net.UnknownHostException;

/** Creates a rank's transport from the config's distributed.transport. */
public final class Transports {
    /** The address a rank listens on for peers; default loopback on one node, this host's address on several. */
    public static final String HOST_ENV = "WEFT_RANK_HOST";

    private Transports() {}

    static Transport create(RankEnv env, String kind) {
        return switch (kind) {
            case "tcp" -> new TcpTransport(host(env));
            case "aeron" -> AeronTransport.fromEnvironment();
            default -> throw new IllegalArgumentException("distributed.transport = " + kind + " is not available; expected tcp or aeron");
        };
    }

    static String host(RankEnv env) {
        String h = System.getenv(HOST_ENV);
        if (h != null && !h.isBlank()) return h.strip();
        if (env.worldSize() == env.localWorldSize()) return "127.0.0.1";
        try {
            return InetAddress.getLocalHost().getHostAddress();
        } catch (UnknownHostException e) {
            throw new IllegalStateException("cannot find this host's address for peers to reach; set " + HOST_ENV, e);
        }
    }
}
