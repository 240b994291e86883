package dev.weft.parallel.rendezvous;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * The coordinator's side of the node launchers' control connections: the job-wide generation and
 * restart count. The first failure reported in a generation (a rank, or a whole node whose
 * launcher's connection closed) moves every connected node to the next generation, or, with the
 * restarts spent, tells them all to give up; later reports of the same generation are the cascade
 * and are ignored. A node that connects (again) is told the current generation, so a relaunched
 * node joins the others there.
 */
final class JobRestarts {
    private final JobSecret secret;
    private final int nnodes;
    private final int maxRestarts;
    private final Consumer<String> log;
    private final ControlChannel[] links;
    private final boolean[] done;
    private int generation, restarts;
    private boolean over;

    JobRestarts(JobSecret secret, int nnodes, int maxRestarts, Consumer<String> log) {
        this.secret = secret;
        this.nnodes = nnodes;
        this.maxRestarts = maxRestarts;
        this.log = log;
        this.links = new ControlChannel[nnodes];
        this.done = new boolean[nnodes];
    }

    synchronized int generation() {
        return generation;
    }

    /** Serves one node's control connection (the coordinator's greeting and nonce already sent, CONTROL read) until it closes. */
    void serve(Socket socket, DataInputStream in, DataOutputStream out, byte[] nonce, String peer, Refusal refuse) throws IOException {
        int node = in.readInt(), claimedNodes = in.readInt();
        byte[] nodeNonce = Wire.readBytes(in, JobSecret.NONCE_BYTES);
        byte[] mac = Wire.readBytes(in, 32);
        if (!MessageDigest.isEqual(mac, secret.mac(Wire.label("control"), nonce, Wire.node(node, claimedNodes), nodeNonce))) {
            refuse.refuse(out, nodeNonce, peer, "node " + node, "it does not hold the job secret (HMAC challenge failed)");
            return;
        }
        ControlChannel channel = new ControlChannel(secret, nonce, nodeNonce, in, out, true);
        synchronized (this) {
            String why = claimedNodes != nnodes ? "it expects " + claimedNodes + " nodes but this job has " + nnodes
                    : node < 0 || node >= nnodes ? "node " + node + " is outside [0, " + nnodes + ")"
                    : links[node] != null ? "node " + node + "'s launcher is already connected"
                    : over ? "the job is over" : null;
            if (why != null) {
                refuse.refuse(out, nodeNonce, peer, "node " + node, why);
                return;
            }
            out.writeInt(Wire.OK);
            out.writeInt(generation);
            out.writeInt(restarts);
            out.write(secret.mac(Wire.label("control-ok"), nodeNonce, ByteBuffer.allocate(8).putInt(generation).putInt(restarts).array()));
            out.flush();
            links[node] = channel;
            done[node] = false;
            log.accept("rendezvous: node " + node + "'s launcher connected from " + peer + " (generation " + generation + ")");
        }
        socket.setSoTimeout(0);
        socket.setKeepAlive(true); // a node whose machine vanishes without a FIN is noticed too, if slowly
        try {
            while (true) {
                ControlChannel.Message m = channel.receive();
                switch (m.type()) {
                    case ControlChannel.FAILED -> failed(m.generation(), "rank " + m.value() + " on node " + node + " failed: " + m.text());
                    case ControlChannel.DONE -> finished(node, m.generation());
                    default -> throw new IOException("unknown control message " + m.type());
                }
            }
        } catch (IOException e) {
            lost(node, channel, e);
        }
    }

    /** How the coordinator refuses a connection (a MAC'd REFUSED with a log line). */
    interface Refusal {
        void refuse(DataOutputStream out, byte[] nonce, String peer, String claim, String why) throws IOException;
    }

    private synchronized void failed(int gen, String what) {
        if (over || gen != generation) return; // the cascade of a failure already handled
        List<Integer> absent = new ArrayList<>();
        for (int n = 0; n < nnodes; n++) if (links[n] == null) absent.add(n);
        String reason = what + (absent.isEmpty() ? "" : " (node(s) " + absent + " have no launcher connected)");
        if (restarts >= maxRestarts) {
            over = true;
            log.accept("rendezvous: " + reason + "; restarts spent (" + restarts + " of " + maxRestarts + "): every node gives up");
            broadcast(new ControlChannel.Message(ControlChannel.GIVE_UP, generation, restarts, reason));
            return;
        }
        restarts++;
        generation++;
        java.util.Arrays.fill(done, false);
        log.accept("rendezvous: " + reason + "; every node restarts its ranks into generation " + generation + " (restart " + restarts + " of "
                + maxRestarts + ")");
        broadcast(new ControlChannel.Message(ControlChannel.RESTART, generation, restarts, reason));
    }

    private synchronized void finished(int node, int gen) {
        if (over || gen != generation) return;
        done[node] = true;
        for (boolean d : done) if (!d) return;
        over = true;
        log.accept("rendezvous: every node's ranks finished generation " + generation);
        broadcast(new ControlChannel.Message(ControlChannel.FINISHED, generation, restarts, ""));
    }

    private void lost(int node, ControlChannel channel, IOException e) {
        boolean failure;
        synchronized (this) {
            if (links[node] != channel) return;
            links[node] = null;
            failure = !over && !done[node];
            if (failure) log.accept("rendezvous: lost node " + node + "'s launcher (" + e.getMessage() + ")");
        }
        if (failure) failed(generation(), "node " + node + "'s launcher is gone (its control connection closed), and with it all its ranks");
    }

    /** Whether the job has finished or given up. */
    synchronized boolean over() {
        return over;
    }

    private void broadcast(ControlChannel.Message m) {
        for (ControlChannel c : links) {
            if (c == null) continue;
            try {
                c.send(m);
            } catch (IOException e) {
                // that node's reader notices the loss
            }
        }
    }
}
