package dev.weft.parallel;

import dev.weft.parallel.rendezvous.PeerKey;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Ranks over plain TCP sockets: one connection per pair of ranks, frames written whole with a
 * small header and copied into the receiver's inbox by a reader thread per peer. It runs the same
 * collective algorithms as every transport. It needs no media driver and crosses hosts, which
 * makes it the simple, dependable choice for the launcher's tests and for small models; Aeron (or
 * a shared-memory path) is faster for large payloads.
 *
 * <p>Endpoints read {@code tcp:HOST:PORT}. A peer whose connection drops is reported at once as
 * missing instead of after the full deadline.
 *
 * <p>Each connection opens with a mutual hello under the generation's {@link PeerKey}: the dialer
 * sends its rank and a fresh nonce, the acceptor answers with its own nonce and its proof over the
 * dialer's, the dialer with its proof over the acceptor's. A connection whose hello does not
 * verify (a stranger, another job, another generation) is closed with one line on standard error
 * and the transport keeps accepting, so the job goes on. Once every peer is connected the listening
 * socket is closed.
 */
public final class TcpTransport implements Transport {
    public static final int MAX_FRAME_BYTES = 1 << 20;
    private static final long POLL_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
    /** How long an accepted connection may take to say hello; a silent one cannot hold up the rest for longer. */
    private static final int HELLO_MILLIS = 5000;
    private static final int NONCE_BYTES = 32;
    private static final SecureRandom RANDOM = new SecureRandom();

    private final ServerSocket server;
    private final String host;
    private final PeerKey key;
    private final AtomicInteger refused = new AtomicInteger();
    private final Inbox inbox = new Inbox();
    private final FramePool pool = new FramePool();
    private Socket[] sockets;
    private DataOutputStream[] outs;
    private byte[][] sendBuffers;
    private volatile boolean[] lost;
    private volatile boolean closed;

    /**
     * Listens on {@code host} (an address peers can reach; 127.0.0.1 on one host), on a free port,
     * admitting only peers that prove {@code key} (their generation's, see {@link dev.weft.parallel.rendezvous.JobSecret#peerKey}).
     */
    public TcpTransport(String host, PeerKey key) {
        this.host = host;
        this.key = key;
        try {
            server = new ServerSocket();
            server.bind(new InetSocketAddress(host, 0), 64);
        } catch (IOException e) {
            throw new IllegalStateException("cannot listen for peers on " + host + ": " + e.getMessage(), e);
        }
    }

    @Override
    public String localEndpoint() {
        return "tcp:" + host + ":" + server.getLocalPort();
    }

    /**
     * Connects to every peer: rank i dials each lower rank and accepts each higher one, so every
     * pair makes exactly one connection; the whole exchange is bounded by {@code timeout}, which is
     * also the deadline of the group's operations.
     */
    @Override
    public ProcessGroup connect(int rank, List<String> endpoints, Duration timeout) {
        int n = endpoints.size();
        if (rank < 0 || rank >= n) throw new IllegalArgumentException("rank " + rank + " is outside the " + n + " endpoints");
        if (!endpoints.get(rank).equals(localEndpoint()))
            throw new IllegalArgumentException("endpoint of rank " + rank + " is " + endpoints.get(rank) + ", not this transport's " + localEndpoint());
        sockets = new Socket[n];
        outs = new DataOutputStream[n];
        sendBuffers = new byte[n][];
        lost = new boolean[n];
        long deadline = System.nanoTime() + timeout.toNanos();
        try {
            for (int peer = 0; peer < rank; peer++) sockets[peer] = dial(endpoints.get(peer), peer, rank, deadline);
            for (int accepted = 0; accepted < n - 1 - rank; ) {
                server.setSoTimeout((int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
                Socket s = server.accept();
                int peer = admit(s, rank, n, deadline);
                if (peer < 0) continue;
                sockets[peer] = s;
                accepted++;
            }
            server.close(); // nobody else is expected: a late stranger finds the port closed
        } catch (SocketTimeoutException e) {
            List<Integer> missing = new java.util.ArrayList<>();
            for (int p = 0; p < n; p++) if (p != rank && sockets[p] == null) missing.add(p);
            throw new CollectiveTimeoutException("connect", "world", 0, missing, timeout);
        } catch (IOException e) {
            throw new IllegalStateException("rank " + rank + ": connecting to peers failed: " + e.getMessage(), e);
        }
        for (int p = 0; p < n; p++) {
            if (p == rank) continue;
            try {
                outs[p] = new DataOutputStream(new BufferedOutputStream(sockets[p].getOutputStream(), 1 << 16));
                sendBuffers[p] = new byte[MAX_FRAME_BYTES];
                DataInputStream in = new DataInputStream(new BufferedInputStream(sockets[p].getInputStream(), 1 << 16));
                int src = p;
                Thread.ofPlatform().daemon().name("weft-tcp-r" + rank + "-from-" + p).start(() -> read(src, in));
            } catch (IOException e) {
                throw new IllegalStateException("rank " + rank + ": cannot open the connection to rank " + p + ": " + e.getMessage(), e);
            }
        }
        int[] world = new int[n];
        for (int i = 0; i < n; i++) world[i] = i;
        return new FabricGroup(new Fabric(rank, n), "world", 0, world, rank, timeout, false);
    }

    /**
     * The acceptor's half of the hello: the peer's rank if it proved the key and is a higher rank
     * not yet connected, else -1 with the socket closed and one line said.
     */
    private int admit(Socket s, int rank, int n, long deadline) {
        String from = String.valueOf(s.getRemoteSocketAddress());
        int peer = -1;
        try {
            s.setTcpNoDelay(true);
            s.setSoTimeout((int) Math.max(1, Math.min(HELLO_MILLIS, (deadline - System.nanoTime()) / 1_000_000)));
            DataInputStream in = new DataInputStream(s.getInputStream());
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            peer = in.readInt();
            byte[] theirs = new byte[NONCE_BYTES];
            in.readFully(theirs);
            byte[] mine = nonce();
            out.write(mine);
            out.write(key.proof("tcp-accept", rank, peer, theirs));
            out.flush();
            byte[] proof = new byte[PeerKey.proofBytes()];
            in.readFully(proof);
            String why = !key.verifies(proof, "tcp-dial", peer, rank, mine) ? "it does not hold this generation's job key (hello failed)"
                    : peer <= rank || peer >= n ? "rank " + peer + " does not dial rank " + rank
                    : sockets[peer] != null ? "rank " + peer + " is already connected" : null;
            if (why == null) {
                s.setSoTimeout(0);
                return peer;
            }
            refuse(s, rank, from, peer, why);
        } catch (IOException e) {
            refuse(s, rank, from, peer, "its hello did not complete (" + e.getMessage() + ")");
        }
        return -1;
    }

    private void refuse(Socket s, int rank, String from, int peer, String why) {
        refused.incrementAndGet();
        System.err.println("weft rank " + rank + ": refused a data-plane connection from " + from + " claiming rank " + peer + ": " + why
                + "; the job goes on");
        try {
            s.close();
        } catch (IOException ignored) {
            // refusing anyway
        }
    }

    /** Connections refused so far for a failed hello or a bad claim. */
    public int refusedCount() {
        return refused.get();
    }

    private static byte[] nonce() {
        byte[] b = new byte[NONCE_BYTES];
        RANDOM.nextBytes(b);
        return b;
    }

    private Socket dial(String endpoint, int peer, int rank, long deadline) throws IOException {
        if (!endpoint.startsWith("tcp:")) throw new IllegalArgumentException("endpoint of rank " + peer + " '" + endpoint + "' is not tcp:HOST:PORT");
        String hp = endpoint.substring(4);
        int colon = hp.lastIndexOf(':');
        InetSocketAddress addr = new InetSocketAddress(hp.substring(0, colon), Integer.parseInt(hp.substring(colon + 1)));
        IOException last = null;
        while (System.nanoTime() < deadline) {
            Socket s = new Socket();
            try {
                s.connect(addr, (int) Math.max(1, Math.min(5000, (deadline - System.nanoTime()) / 1_000_000)));
                s.setTcpNoDelay(true);
                s.setSoTimeout((int) Math.max(1, Math.min(HELLO_MILLIS, (deadline - System.nanoTime()) / 1_000_000)));
                DataOutputStream o = new DataOutputStream(s.getOutputStream());
                DataInputStream in = new DataInputStream(s.getInputStream());
                byte[] mine = nonce();
                o.writeInt(rank);
                o.write(mine);
                o.flush();
                byte[] theirs = new byte[NONCE_BYTES], proof = new byte[PeerKey.proofBytes()];
                in.readFully(theirs);
                in.readFully(proof);
                if (!key.verifies(proof, "tcp-accept", peer, rank, mine)) {
                    s.close();
                    throw new IllegalStateException("rank " + rank + ": the peer at " + endpoint + " (listed for rank " + peer
                            + ") does not hold this generation's job key; refusing to send it anything");
                }
                o.write(key.proof("tcp-dial", rank, peer, theirs));
                o.flush();
                s.setSoTimeout(0);
                return s;
            } catch (IOException e) {
                s.close();
                last = e;
                try {
                    Thread.sleep(50);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted", ie);
                }
            }
        }
        throw new SocketTimeoutException("rank " + peer + " at " + endpoint + " did not accept" + (last == null ? "" : ": " + last.getMessage()));
    }

    private void read(int src, DataInputStream in) {
        byte[] b = new byte[MAX_FRAME_BYTES]; // this reader's landing buffer, reused for every frame
        try {
            while (true) {
                int group = in.readInt(), kind = in.readInt();
                long seq = in.readLong();
                int step = in.readInt(), chunk = in.readInt();
                int len = in.readInt();
                if (len < 0 || len > MAX_FRAME_BYTES) throw new IOException("frame of " + len + " bytes from rank " + src);
                in.readFully(b, 0, len);
                Frame f = pool.take(len).addressed(src, group, kind, seq, step, chunk);
                MemorySegment.copy(b, 0, f.data, ValueLayout.JAVA_BYTE, 0, len);
                inbox.put(f);
            }
        } catch (IOException e) {
            lost[src] = true;
            inbox.wakeAll();
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException ignored) {
            // closing
        }
        if (sockets != null) for (Socket s : sockets) {
            if (s == null) continue;
            try {
                s.close();
            } catch (IOException ignored) {
                // closing
            }
        }
    }

    private final class Fabric implements dev.weft.parallel.Fabric {
        private final int rank, size;

        Fabric(int rank, int size) {
            this.rank = rank;
            this.size = size;
        }

        @Override public int rank() { return rank; }
        @Override public int size() { return size; }
        @Override public int maxFrameBytes(int peer) { return MAX_FRAME_BYTES; }

        @Override
        public void send(int dst, Msg msg, MemorySegment payload, long offset, int length, long deadlineNanos) {
            if (dst == rank) {
                inbox.put(Inbox.copyOf(pool, rank, msg, payload, offset, length));
                return;
            }
            if (lost[dst] || closed) throw new PeerTimeout(dst);
            DataOutputStream o = outs[dst];
            synchronized (o) {
                try {
                    byte[] b = sendBuffers[dst]; // this connection's staging buffer, under its lock
                    MemorySegment.copy(payload, ValueLayout.JAVA_BYTE, offset, b, 0, length);
                    o.writeInt(msg.group);
                    o.writeInt(msg.kind);
                    o.writeLong(msg.seq);
                    o.writeInt(msg.step);
                    o.writeInt(msg.chunk);
                    o.writeInt(length);
                    o.write(b, 0, length);
                    o.flush();
                } catch (IOException e) {
                    lost[dst] = true;
                    throw new PeerTimeout(dst);
                }
            }
        }

        @Override
        public Frame receive(int src, Msg msg, long deadlineNanos) {
            while (true) {
                Frame f = inbox.take(src, msg, deadlineNanos, POLL_NANOS);
                if (f != null) return f;
                if (lost[src] || closed || System.nanoTime() - deadlineNanos >= 0) throw new PeerTimeout(src);
            }
        }

        @Override
        public void release(Frame frame) {
            pool.give(frame);
        }

        @Override
        public FramePool framePool() {
            return pool;
        }

        @Override
        public void close() {
            TcpTransport.this.close();
        }
    }
}
