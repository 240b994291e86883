package dev.weft.parallel.rendezvous;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

/**
 * The rendezvous point of a job, run by the launcher on node 0: ranks join with proof of the job
 * secret, publish their transport endpoint and receive every rank's endpoint in rank order once
 * all {@code worldSize} ranks of their generation have joined.
 *
 * <p>A generation is one attempt of the job (the restart count): a restarted job rendezvouses
 * again under the next generation, so stale processes of an earlier attempt cannot mix in. A
 * joiner that fails the HMAC challenge, claims a rank outside the world or one already taken, is
 * refused with a log line and the job goes on. If a generation is not complete within
 * {@code joinTimeout} of its first join, every waiting joiner is told which ranks never arrived.
 */
public final class RendezvousCoordinator implements AutoCloseable {
    /** How long a connected peer may take to send its join message. */
    private static final int HANDSHAKE_MILLIS = 10_000;

    private final ServerSocket server;
    private final JobSecret secret;
    private final int worldSize;
    private final Duration joinTimeout;
    private final Consumer<String> log;
    private final Map<Integer, Generation> generations = new HashMap<>();
    private final AtomicInteger refused = new AtomicInteger();
    private final Thread acceptor;
    /** The node launchers' control connections, where restarts are coordinated job-wide; null on one node. */
    private final JobRestarts restarts;
    private volatile boolean closed;

    private final class Generation {
        final int id;
        final String[] endpoints = new String[worldSize];
        int joined;
        long deadline;

        Generation(int id) {
            this.id = id;
        }

        List<Integer> missing() {
            List<Integer> m = new ArrayList<>();
            for (int r = 0; r < worldSize; r++) if (endpoints[r] == null) m.add(r);
            return m;
        }

        List<Integer> present() {
            List<Integer> m = new ArrayList<>();
            for (int r = 0; r < worldSize; r++) if (endpoints[r] != null) m.add(r);
            return m;
        }
    }

    private RendezvousCoordinator(ServerSocket server, JobSecret secret, int worldSize, Duration joinTimeout, Consumer<String> log,
                                  JobRestarts restarts) {
        this.server = server;
        this.restarts = restarts;
        this.secret = secret;
        this.worldSize = worldSize;
        this.joinTimeout = joinTimeout;
        this.log = log;
        this.acceptor = Thread.ofPlatform().daemon().name("weft-rendezvous").unstarted(this::acceptLoop);
    }

    /**
     * Listens on {@code bind} (port 0 picks a free one; see {@link #address()}) for the ranks of a
     * job of {@code worldSize}; {@code log} receives one line per refusal and per completed generation.
     */
    public static RendezvousCoordinator start(InetSocketAddress bind, JobSecret secret, int worldSize, Duration joinTimeout,
                                              Consumer<String> log) {
        return start(bind, secret, worldSize, joinTimeout, log, null);
    }

    /**
     * Like {@link #start(InetSocketAddress, JobSecret, int, Duration, Consumer)}, and also serves
     * the control connections ({@link NodeLink}) of the {@code nnodes} node launchers, restarting
     * the job across all of them up to {@code maxRestarts} times.
     */
    public static RendezvousCoordinator start(InetSocketAddress bind, JobSecret secret, int worldSize, int nnodes, int maxRestarts,
                                              Duration joinTimeout, Consumer<String> log) {
        if (nnodes < 1) throw new IllegalArgumentException("nnodes must be >= 1, got " + nnodes);
        return start(bind, secret, worldSize, joinTimeout, log, new JobRestarts(secret, nnodes, maxRestarts, log));
    }

    private static RendezvousCoordinator start(InetSocketAddress bind, JobSecret secret, int worldSize, Duration joinTimeout,
                                               Consumer<String> log, JobRestarts restarts) {
        if (worldSize < 1) throw new IllegalArgumentException("worldSize must be >= 1, got " + worldSize);
        ServerSocket s;
        try {
            s = new ServerSocket();
            s.setReuseAddress(true);
            s.bind(bind, 128);
        } catch (IOException e) {
            throw new RendezvousException("cannot listen for rendezvous on " + bind + ": " + e.getMessage()
                    + " (is another job using --rdzv-endpoint " + bind.getHostString() + ":" + bind.getPort() + "?)", e);
        }
        RendezvousCoordinator c = new RendezvousCoordinator(s, secret, worldSize, joinTimeout, log, restarts);
        c.acceptor.start();
        return c;
    }

    public InetSocketAddress address() {
        return (InetSocketAddress) server.getLocalSocketAddress();
    }

    /** Joiners refused so far (bad secret or bad claim). */
    public int refusedCount() {
        return refused.get();
    }

    /** Ranks of {@code generation} that have joined so far (for tests). */
    synchronized int joinedCount(int generation) {
        Generation g = generations.get(generation);
        return g == null ? 0 : g.joined;
    }

    private void acceptLoop() {
        while (!closed) {
            try {
                Socket s = server.accept();
                Thread.ofVirtual().name("weft-rendezvous-join").start(() -> serve(s));
            } catch (IOException e) {
                if (!closed) log.accept("rendezvous: accept failed: " + e.getMessage());
            }
        }
    }

    private void serve(Socket socket) {
        String peer = String.valueOf(socket.getRemoteSocketAddress());
        try (socket) {
            socket.setSoTimeout(HANDSHAKE_MILLIS);
            socket.setTcpNoDelay(true);
            DataOutputStream out = new DataOutputStream(socket.getOutputStream());
            DataInputStream in = new DataInputStream(socket.getInputStream());
            byte[] nonce = JobSecret.nonce();
            out.writeUTF(Wire.MAGIC);
            out.writeInt(Wire.VERSION);
            out.write(nonce);
            out.flush();

            int generation = in.readInt();
            if (generation == Wire.CONTROL) {
                if (restarts == null) {
                    in.readInt();
                    in.readInt();
                    refuse(out, Wire.readBytes(in, JobSecret.NONCE_BYTES), peer, "a node", "this job runs on one node: there is no control connection");
                    return;
                }
                restarts.serve(socket, in, out, nonce, peer, this::refuse);
                return;
            }
            int rank = in.readInt(), world = in.readInt();
            String endpoint = Wire.readEndpoint(in);
            byte[] joinerNonce = Wire.readBytes(in, JobSecret.NONCE_BYTES);
            byte[] mac = Wire.readBytes(in, 32);
            byte[] expected = secret.mac(Wire.label("join"), nonce, Wire.claim(generation, rank, world, endpoint), joinerNonce);
            if (!MessageDigest.isEqual(mac, expected)) {
                refuse(out, joinerNonce, peer, "rank " + rank, "it does not hold the job secret (HMAC challenge failed)");
                return;
            }
            if (world != worldSize) {
                refuse(out, joinerNonce, peer, "rank " + rank, "it expects world size " + world + " but this job has " + worldSize);
                return;
            }
            if (rank < 0 || rank >= worldSize) {
                refuse(out, joinerNonce, peer, "rank " + rank, "rank " + rank + " is outside [0, " + worldSize + ")");
                return;
            }
            if (generation < 0) {
                refuse(out, joinerNonce, peer, "rank " + rank, "generation " + generation + " is negative");
                return;
            }
            Generation g;
            synchronized (this) {
                g = generations.computeIfAbsent(generation, Generation::new);
                if (g.endpoints[rank] != null) {
                    String why = "rank " + rank + " already joined generation " + generation + " (from another process)";
                    refuse(out, joinerNonce, peer, "rank " + rank, why);
                    return;
                }
                if (g.joined == 0) g.deadline = System.nanoTime() + joinTimeout.toNanos();
                g.endpoints[rank] = endpoint;
                g.joined++;
                if (g.joined == worldSize) {
                    log.accept("rendezvous: all " + worldSize + " ranks joined (generation " + generation + ")");
                    notifyAll();
                }
                while (g.joined < worldSize && !closed) {
                    long left = g.deadline - System.nanoTime();
                    if (left <= 0) break;
                    wait(Math.max(1, left / 1_000_000));
                }
                if (g.joined < worldSize) {
                    String msg = "rendezvous (generation " + generation + ") timed out after " + joinTimeout.toSeconds() + " s: rank(s) "
                            + g.missing() + " of " + worldSize + " never joined (joined: " + g.present() + ")";
                    if (closed) msg = "rendezvous coordinator shut down before rank(s) " + g.missing() + " joined";
                    reply(out, Wire.FAILED, joinerNonce, msg);
                    return;
                }
            }
            List<String> all = Arrays.asList(g.endpoints.clone());
            out.writeInt(Wire.OK);
            out.writeInt(all.size());
            for (String e : all) {
                byte[] b = e.getBytes(StandardCharsets.UTF_8);
                out.writeInt(b.length);
                out.write(b);
            }
            out.write(secret.mac(Wire.replyLabel(Wire.OK), joinerNonce, Wire.peers(generation, all)));
            out.flush();
        } catch (SocketTimeoutException e) {
            refused.incrementAndGet();
            log.accept("rendezvous: refused a joiner from " + peer + ": it sent no join message within " + HANDSHAKE_MILLIS / 1000 + " s");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IOException e) {
            if (!closed) log.accept("rendezvous: lost the connection from " + peer + " during the handshake: " + e.getMessage());
        }
    }

    private void refuse(DataOutputStream out, byte[] joinerNonce, String peer, String claim, String why) throws IOException {
        refused.incrementAndGet();
        log.accept("rendezvous: refused a joiner from " + peer + " claiming " + claim + ": " + why + "; the job goes on");
        reply(out, Wire.REFUSED, joinerNonce, "refused by the rendezvous coordinator: " + why);
    }

    /** A REFUSED or FAILED reply, MAC'd over the joiner's nonce (a joiner without the secret cannot check it, and says so). */
    private void reply(DataOutputStream out, int status, byte[] joinerNonce, String message) throws IOException {
        out.writeInt(status);
        out.writeUTF(message);
        out.write(secret.mac(Wire.replyLabel(status), joinerNonce, message.getBytes(StandardCharsets.UTF_8)));
        out.flush();
    }

    @Override
    public void close() {
        closed = true;
        synchronized (this) {
            notifyAll();
        }
        try {
            server.close();
        } catch (IOException ignored) {
            // closing
        }
        try {
            acceptor.join(2000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
