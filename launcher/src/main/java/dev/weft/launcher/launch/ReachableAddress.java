package dev.weft.launcher.launch;

import dev.weft.parallel.rendezvous.Rendezvous;

import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketException;

/**
 * The address a node's ranks advertise to peers on other nodes and bind: the local address of the
 * interface the kernel routes the rendezvous endpoint through. Peers reach the coordinator's node
 * the same way, so this is the address they can reach this node at; {@code InetAddress.getLocalHost()}
 * is often 127.0.1.1 from /etc/hosts, which no other node can reach.
 */
public final class ReachableAddress {
    private ReachableAddress() {}

    /**
     * The local address routed towards {@code rdzvEndpoint} (host:port). Connecting a datagram
     * socket sends nothing: it only asks the kernel for the route and its source address.
     */
    public static String towards(String rdzvEndpoint) {
        InetSocketAddress target = Rendezvous.parse(rdzvEndpoint);
        if (target.isUnresolved())
            throw new IllegalArgumentException("--rdzv-endpoint " + rdzvEndpoint + ": cannot resolve " + target.getHostString());
        if (target.getAddress().isLoopbackAddress()) return target.getAddress().getHostAddress();
        try (DatagramSocket probe = new DatagramSocket()) {
            probe.connect(new InetSocketAddress(target.getAddress(), Math.max(1, target.getPort())));
            InetAddress local = probe.getLocalAddress();
            if (local == null || local.isAnyLocalAddress())
                throw new IllegalArgumentException("no local address routes to the rendezvous endpoint " + rdzvEndpoint
                        + "; pass --host ADDR (this node's address that the other nodes reach)");
            return local.getHostAddress();
        } catch (SocketException e) {
            throw new IllegalArgumentException("cannot find a local address that routes to the rendezvous endpoint " + rdzvEndpoint + " ("
                    + e.getMessage() + "); pass --host ADDR (this node's address that the other nodes reach)");
        }
    }
}
