package dev.weft.parallel.rendezvous;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** A rank's side of rendezvous: prove the job secret, publish an endpoint, receive everyone's. */
public final class Rendezvous {
    private Rendezvous() {}

    /**
     * Joins the coordinator at {@code hostPort} as {@code rank} of {@code worldSize} in
     * {@code generation} (the restart count), publishing {@code endpoint}; returns every rank's
     * endpoint, index = rank. Retries while the coordinator is not yet listening; every wait is
     * bounded by {@code timeout}, after which the error says what was missing.
     */
    public static List<String> join(String hostPort, JobSecret secret, int generation, int rank, int worldSize, String endpoint,
                                    Duration timeout) {
        InetSocketAddress addr = parse(hostPort);
        long deadline = System.nanoTime() + timeout.toNanos();
        IOException last = null;
        while (System.nanoTime() < deadline) {
            try (Socket s = new Socket()) {
                int left = (int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000);
                s.connect(addr, Math.min(left, 5000));
                s.setTcpNoDelay(true);
                s.setSoTimeout((int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
                return handshake(s, hostPort, secret, generation, rank, worldSize, endpoint, timeout);
            } catch (ConnectException e) {
                last = e; // coordinator not up yet
                sleep(100);
            } catch (SocketTimeoutException e) {
                throw new RendezvousException("rank " + rank + ": rendezvous at " + hostPort + " did not complete within " + timeout.toSeconds()
                        + " s (the coordinator never answered with the peer list)", e);
            } catch (IOException e) {
                throw new RendezvousException("rank " + rank + ": rendezvous at " + hostPort + " failed: " + e, e);
            }
        }
        throw new RendezvousException("rank " + rank + ": could not reach the rendezvous coordinator at " + hostPort + " within "
                + timeout.toSeconds() + " s" + (last == null ? "" : " (" + last.getMessage() + ")"), last);
    }

    private static List<String> handshake(Socket s, String hostPort, JobSecret secret, int generation, int rank, int worldSize,
                                          String endpoint, Duration timeout) throws IOException {
        DataInputStream in = new DataInputStream(s.getInputStream());
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        byte[] nonce = Wire.readGreeting(in, hostPort, "rank " + rank);
        byte[] mine = JobSecret.nonce();
        byte[] claim = Wire.claim(generation, rank, worldSize, endpoint);
        out.write(claim, 0, 12); // generation, rank, world
        byte[] e = endpoint.getBytes(StandardCharsets.UTF_8);
        out.writeInt(e.length);
        out.write(e);
        out.write(mine);
        out.write(secret.mac(Wire.label("join"), nonce, claim, mine));
        out.flush();
        int status = in.readInt();
        if (status == Wire.REFUSED || status == Wire.FAILED) throw Wire.refusal(in, status, secret, mine, hostPort, "rank " + rank);
        if (status != Wire.OK) throw new RendezvousException("rank " + rank + ": " + hostPort + " sent an unknown rendezvous reply " + status);
        int n = in.readInt();
        if (n != worldSize) throw new RendezvousException("rank " + rank + ": coordinator returned " + n + " endpoints for world size " + worldSize);
        List<String> all = new ArrayList<>(n);
        for (int i = 0; i < n; i++) all.add(Wire.readEndpoint(in));
        byte[] mac = Wire.readBytes(in, 32);
        if (!MessageDigest.isEqual(mac, secret.mac(Wire.replyLabel(Wire.OK), mine, Wire.peers(generation, all))))
            throw new RendezvousException("rank " + rank + ": the coordinator at " + hostPort + " does not hold the job secret; refusing its peer list");
        if (!endpoint.equals(all.get(rank)))
            throw new RendezvousException("rank " + rank + ": the coordinator listed " + all.get(rank) + " for this rank, not " + endpoint);
        return List.copyOf(all);
    }

    /** Parses {@code host:port} (IPv6 hosts in brackets), naming the flag on error. */
    public static InetSocketAddress parse(String hostPort) {
        int colon = hostPort == null ? -1 : hostPort.lastIndexOf(':');
        if (colon <= 0 || colon == hostPort.length() - 1)
            throw new IllegalArgumentException("--rdzv-endpoint must be host:port, got '" + hostPort + "'");
        String host = hostPort.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) host = host.substring(1, host.length() - 1);
        int port;
        try {
            port = Integer.parseInt(hostPort.substring(colon + 1));
        } catch (NumberFormatException ex) {
            throw new IllegalArgumentException("--rdzv-endpoint must be host:port with a numeric port, got '" + hostPort + "'");
        }
        if (port < 0 || port > 65535) throw new IllegalArgumentException("--rdzv-endpoint port must be in [0, 65535], got " + port);
        return new InetSocketAddress(host, port);
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RendezvousException("interrupted while waiting for the rendezvous coordinator");
        }
    }
}
