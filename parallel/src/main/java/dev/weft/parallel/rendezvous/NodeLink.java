package dev.weft.parallel.rendezvous;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.function.Consumer;

/**
 * A node launcher's control connection to the job's rendezvous coordinator (on node 0), which
 * makes restarts job-wide: a node reports a rank's failure (or that its ranks finished), and the
 * coordinator tells every node to restart its ranks into the next generation, to give up, or that
 * the job has finished. A node whose launcher is gone is noticed by its connection closing. Both
 * ends prove the job secret, and every message is MAC'd (see {@code ControlChannel}).
 */
public final class NodeLink implements AutoCloseable {
    /** What the coordinator tells a node. */
    public record Command(Kind kind, int generation, int restarts, String reason) {
        public enum Kind {
            /** Stop the ranks and start them again in {@code generation}; {@code restarts} of the job so far. */
            RESTART,
            /** Stop the ranks: the job failed ({@code reason}) with its restarts spent. */
            GIVE_UP,
            /** Every node's ranks finished. */
            FINISHED,
            /** The connection to the coordinator is gone: node 0's launcher has stopped. */
            LOST
        }
    }

    private final Socket socket;
    private final ControlChannel channel;
    private final int generation, restarts;
    private final Thread reader;
    private volatile boolean closed;

    private NodeLink(Socket socket, ControlChannel channel, int generation, int restarts, Consumer<Command> commands) {
        this.socket = socket;
        this.channel = channel;
        this.generation = generation;
        this.restarts = restarts;
        this.reader = Thread.ofPlatform().daemon().name("weft-node-link").unstarted(() -> read(commands));
    }

    /**
     * Connects node {@code nodeRank} of {@code nnodes} to the coordinator at {@code hostPort},
     * retrying while it is not yet listening, for at most {@code timeout}; {@code commands} then
     * receives each command, on a thread of the link's own.
     */
    public static NodeLink connect(String hostPort, JobSecret secret, int nodeRank, int nnodes, Duration timeout, Consumer<Command> commands) {
        InetSocketAddress addr = Rendezvous.parse(hostPort);
        long deadline = System.nanoTime() + timeout.toNanos();
        IOException last = null;
        while (System.nanoTime() < deadline) {
            Socket s = new Socket();
            try {
                s.connect(addr, (int) Math.max(1, Math.min(5000, (deadline - System.nanoTime()) / 1_000_000)));
                s.setTcpNoDelay(true);
                s.setKeepAlive(true);
                s.setSoTimeout((int) Math.max(1, Math.min(30_000, (deadline - System.nanoTime()) / 1_000_000)));
                NodeLink link = handshake(s, hostPort, secret, nodeRank, nnodes, commands);
                s.setSoTimeout(0);
                link.reader.start();
                return link;
            } catch (ConnectException e) {
                close(s);
                last = e;
                try {
                    Thread.sleep(100);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new RendezvousException("interrupted while connecting to the rendezvous coordinator");
                }
            } catch (IOException e) {
                close(s);
                throw new RendezvousException("node " + nodeRank + ": the control connection to " + hostPort + " failed: " + e.getMessage(), e);
            } catch (RuntimeException e) {
                close(s);
                throw e;
            }
        }
        throw new RendezvousException("node " + nodeRank + ": could not reach the rendezvous coordinator (node 0's weft launch) at " + hostPort
                + " within " + timeout.toSeconds() + " s" + (last == null ? "" : " (" + last.getMessage() + ")"), last);
    }

    private static NodeLink handshake(Socket s, String hostPort, JobSecret secret, int nodeRank, int nnodes, Consumer<Command> commands)
            throws IOException {
        DataInputStream in = new DataInputStream(s.getInputStream());
        DataOutputStream out = new DataOutputStream(s.getOutputStream());
        byte[] nonce = Wire.readGreeting(in, hostPort, "node " + nodeRank);
        byte[] mine = JobSecret.nonce();
        out.writeInt(Wire.CONTROL);
        out.writeInt(nodeRank);
        out.writeInt(nnodes);
        out.write(mine);
        out.write(secret.mac(Wire.label("control"), nonce, Wire.node(nodeRank, nnodes), mine));
        out.flush();
        int status = in.readInt();
        if (status == Wire.REFUSED || status == Wire.FAILED) throw Wire.refusal(in, status, secret, mine, hostPort, "node " + nodeRank);
        if (status != Wire.OK) throw new RendezvousException("node " + nodeRank + ": " + hostPort + " sent an unknown reply " + status);
        int generation = in.readInt(), restarts = in.readInt();
        byte[] mac = Wire.readBytes(in, 32);
        if (!MessageDigest.isEqual(mac, secret.mac(Wire.label("control-ok"), mine, ByteBuffer.allocate(8).putInt(generation).putInt(restarts).array())))
            throw new RendezvousException("node " + nodeRank + ": the coordinator at " + hostPort + " does not hold the job secret; refusing its control");
        return new NodeLink(s, new ControlChannel(secret, nonce, mine, in, out, false), generation, restarts, commands);
    }

    /** The job's generation when this node connected: the one its ranks start in. */
    public int generation() {
        return generation;
    }

    /** Restarts the job had made when this node connected. */
    public int restarts() {
        return restarts;
    }

    /** Reports that {@code rank} failed in {@code generation} with {@code cause}; the coordinator answers with a command. */
    public void reportFailure(int generation, int rank, String cause) {
        send(new ControlChannel.Message(ControlChannel.FAILED, generation, rank, cause));
    }

    /** Reports that every rank of this node finished {@code generation}. */
    public void reportDone(int generation) {
        send(new ControlChannel.Message(ControlChannel.DONE, generation, 0, ""));
    }

    private void send(ControlChannel.Message m) {
        try {
            channel.send(m);
        } catch (IOException e) {
            // the reader sees the connection go and says LOST
        }
    }

    private void read(Consumer<Command> commands) {
        try {
            while (true) {
                ControlChannel.Message m = channel.receive();
                Command.Kind kind = switch (m.type()) {
                    case ControlChannel.RESTART -> Command.Kind.RESTART;
                    case ControlChannel.GIVE_UP -> Command.Kind.GIVE_UP;
                    case ControlChannel.FINISHED -> Command.Kind.FINISHED;
                    default -> throw new IOException("unknown control message " + m.type());
                };
                commands.accept(new Command(kind, m.generation(), m.value(), m.text()));
                if (kind != Command.Kind.RESTART) return;
            }
        } catch (IOException e) {
            if (!closed) commands.accept(new Command(Command.Kind.LOST, -1, -1, e instanceof EOFException ? "the connection closed" : e.getMessage()));
        }
    }

    @Override
    public void close() {
        closed = true;
        close(socket);
    }

    private static void close(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // closing
        }
    }
}
