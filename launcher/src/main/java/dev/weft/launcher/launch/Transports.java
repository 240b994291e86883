package dev.weft.launcher.launch;

import dev.weft.parallel.AeronTransport;
import dev.weft.parallel.TcpTransport;
import dev.weft.parallel.Transport;
import dev.weft.parallel.rendezvous.PeerKey;

/** Creates a rank's transport from the config's distributed.transport. */
public final class Transports {
    /** An older name for {@link AeronTransport#HOST_ENV}, still read by the TCP transport. */
    public static final String LEGACY_TCP_HOST_ENV = "WEFT_RANK_HOST";

    private Transports() {}

    /** The transport of {@code env}'s rank, admitting only peers that prove {@code key}. */
    static Transport create(RankEnv env, String kind, PeerKey key) {
        return switch (kind) {
            case "tcp" -> new TcpTransport(host(env), key);
            case "aeron" -> AeronTransport.fromEnvironment(host(env), key);
            default -> throw new IllegalArgumentException("distributed.transport = " + kind + " is not available; expected tcp or aeron");
        };
    }

    /**
     * The address a rank advertises and binds: {@code WEFT_HOST} (set by {@code weft launch}, from
     * its --host or the route to the rendezvous endpoint), else loopback on one node, else the
     * address that routes to the rendezvous endpoint.
     */
    static String host(RankEnv env) {
        for (String name : new String[] {AeronTransport.HOST_ENV, LEGACY_TCP_HOST_ENV}) {
            String h = System.getenv(name);
            if (h != null && !h.isBlank()) return h.strip();
        }
        if (env.worldSize() == env.localWorldSize()) return "127.0.0.1";
        return ReachableAddress.towards(env.rdzvEndpoint());
    }
}
