package dev.weft.launcher;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Two nodes of a job on one host, for tests of {@code weft launch --nnodes 2}: each node is a real
 * {@code weft launch} JVM with its own working directory (so its own config, corpus and
 * {@code train.out_dir}: nothing shared on disk), its own address, and the job secret in
 * common.
 *
 * <p>Where the test runs as root with {@code ip}, each node gets a network namespace of its own
 * ({@code weft<pid>x<n>a} and {@code ...b}), joined by a veth pair with 10.77.0.1/24 and
 * 10.77.0.2/24 (MTU 1500), loopback up in each; the launchers run under {@code ip netns exec} and
 * find their address from the route to the rendezvous endpoint, 10.77.0.1:29500. Names are unique
 * per harness (pid and a counter), so concurrent runs do not collide; addresses may repeat, as each
 * pair of namespaces is a network of its own. Otherwise both nodes share the host's loopback, at
 * 127.0.0.2 and 127.0.0.3 (passed as {@code --host}; {@code -Dweft.twonodes=loopback} picks this
 * even where namespaces work). Where neither works the test is skipped.
 *
 * <p>Use:
 * <pre>
 *   try (TwoNodes nodes = TwoNodes.create(tempDir)) {
 *       Path cfg0 = LaunchTest.config(nodes.dir(0), 8, 2), cfg1 = LaunchTest.config(nodes.dir(1), 8, 2);
 *       TwoNodes.Node n0 = nodes.start(0, cfg0, "--max-restarts", "1"), n1 = nodes.start(1, cfg1, "--max-restarts", "1");
 *       assertTrue(n0.awaitSteps(4, Duration.ofSeconds(120)));
 *       n1.killRank(3);                       // SIGKILL of global rank 3 (node 1's second rank)
 *       assertEquals(0, n0.await(Duration.ofSeconds(120)));
 *       List&lt;Double&gt; losses = n0.losses(); // rank 0 writes metrics, on node 0
 *   }
 * </pre>
 * {@link #close()} kills whatever still runs (launchers and their ranks, SIGKILL) and removes the
 * namespaces, even after a failed assertion.
 */
final class TwoNodes implements AutoCloseable {
    /** Ranks per node. */
    static final int RANKS_PER_NODE = 2;
    private static final AtomicInteger COUNTER = new AtomicInteger();
    private static final String SUBNET = "10.77.0.";
    /** {@code -Dweft.twonodes=loopback} skips the namespaces and uses the loopback addresses (to test that fallback). */
    static final String MODE_PROPERTY = "weft.twonodes";

    private final Path root;
    private final String[] namespaces; // null on loopback
    private final String[] addresses;
    private final int port;
    private final String secret;
    private final List<Node> nodes = new ArrayList<>();

    private TwoNodes(Path root, String[] namespaces, String[] addresses, int port) {
        this.root = root;
        this.namespaces = namespaces;
        this.addresses = addresses;
        this.port = port;
        this.secret = dev.weft.parallel.rendezvous.JobSecret.random().encoded();
    }

    /** Two nodes under {@code root} (node i's working directory is {@code root/node<i>}); skips the test if no way works here. */
    static TwoNodes create(Path root) throws IOException, InterruptedException {
        for (int i = 0; i < 2; i++) Files.createDirectories(root.resolve("node" + i));
        String base = "weft" + ProcessHandle.current().pid() + "x" + COUNTER.incrementAndGet();
        String[] ns = {base + "a", base + "b"};
        if (!"loopback".equals(System.getProperty(MODE_PROPERTY)) && namespaces(ns))
            return new TwoNodes(root, ns, new String[] {SUBNET + "1", SUBNET + "2"}, 29500);
        String[] lo = {"127.0.0.2", "127.0.0.3"};
        assumeTrue(bindable(lo[0]) && bindable(lo[1]), "neither network namespaces (root and ip) nor the loopback addresses 127.0.0.2/3 work here");
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName(lo[0]))) {
            port = s.getLocalPort();
        }
        return new TwoNodes(root, null, lo, port);
    }

    /** Whether the nodes have network namespaces of their own (else they share the host's loopback). */
    boolean isolated() {
        return namespaces != null;
    }

    /** Node {@code node}'s address. */
    String address(int node) {
        return addresses[node];
    }

    /** Where node 0's coordinator listens. */
    String rdzvEndpoint() {
        return addresses[0] + ":" + port;
    }

    /** Node {@code node}'s working directory: put its config there (relative paths in it resolve there). */
    Path dir(int node) {
        return root.resolve("node" + node);
    }

    /**
     * Starts {@code weft launch --nnodes 2 --node-rank node --nproc-per-node 2 --rdzv-endpoint ...
     * ARGS... CONFIG} for {@code node}, in its directory and (where there are) its namespace;
     * {@code args} are further launch flags and {@code --set} overrides, put before the config.
     */
    Node start(int node, Path config, String... args) throws IOException {
        List<String> cmd = new ArrayList<>();
        if (namespaces != null) cmd.addAll(List.of("ip", "netns", "exec", namespaces[node]));
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("@" + repoRoot().resolve("config/jvm.options"));
        cmd.addAll(List.of("-Xms64m", "-Xmx512m", "-cp", System.getProperty("java.class.path"), Main.class.getName(), "launch",
                "--nnodes", "2", "--node-rank", Integer.toString(node), "--nproc-per-node", Integer.toString(RANKS_PER_NODE),
                "--rdzv-endpoint", rdzvEndpoint()));
        if (namespaces == null) cmd.addAll(List.of("--host", addresses[node]));
        cmd.addAll(List.of(args));
        cmd.add(config.toAbsolutePath().toString());
        Path log = dir(node).resolve("launch-" + nodes.size() + ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir(node).toFile()).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("WEFT_JOB_SECRET", secret);
        Node n = new Node(node, pb.start(), log, config);
        nodes.add(n);
        return n;
    }

    /** What a short-lived JVM printed, and its exit code. */
    record Run(int code, String output) {}

    /**
     * Runs {@code main} (a class on the test classpath) with {@code args} in a JVM on {@code node}
     * (inside its namespace, where there are), for at most {@code timeout}; for strangers and probes.
     */
    Run runJava(int node, Class<?> main, Duration timeout, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        if (namespaces != null) cmd.addAll(List.of("ip", "netns", "exec", namespaces[node]));
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("@" + repoRoot().resolve("config/jvm.options"));
        cmd.addAll(List.of("-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"), main.getName()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).directory(dir(node).toFile()).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            p.destroyForcibly();
            return new Run(-1, new String(out, StandardCharsets.UTF_8));
        }
        return new Run(p.exitValue(), new String(out, StandardCharsets.UTF_8));
    }

    /** One node's {@code weft launch} process. */
    final class Node {
        final int node;
        final Process process;
        final Path log;
        final Path config;

        private Node(int node, Process process, Path log, Path config) {
            this.node = node;
            this.process = process;
            this.log = log;
            this.config = config;
        }

        /** Everything the launcher (and, prefixed [rank N], its ranks) printed so far. */
        String output() {
            try {
                return Files.exists(log) ? Files.readString(log, StandardCharsets.UTF_8) : "";
            } catch (IOException e) {
                return "(cannot read " + log + ": " + e.getMessage() + ")";
            }
        }

        /** Waits until the output contains {@code text}; false if the launcher exited or time ran out first. */
        boolean awaitOutput(String text, Duration timeout) throws InterruptedException {
            long until = System.nanoTime() + timeout.toNanos();
            while (System.nanoTime() < until) {
                if (output().contains(text)) return true;
                if (!process.isAlive()) return output().contains(text);
                Thread.sleep(100);
            }
            return false;
        }

        /** Waits until this node's metrics (node 0's: rank 0 writes them) hold {@code steps} steps; false if the launcher exited or time ran out. */
        boolean awaitSteps(int steps, Duration timeout) throws InterruptedException {
            Path metrics = outDir().resolve("metrics.jsonl");
            long until = System.nanoTime() + timeout.toNanos();
            while (System.nanoTime() < until && process.isAlive()) {
                try {
                    if (Files.exists(metrics) && Files.readAllLines(metrics).size() >= steps) return true;
                } catch (IOException e) {
                    // being written: look again
                }
                Thread.sleep(100);
            }
            return false;
        }

        /** The launcher's exit code; -1 (and the launcher killed) if it did not exit within {@code timeout}. */
        int await(Duration timeout) throws InterruptedException {
            if (process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) return process.exitValue();
            kill();
            return -1;
        }

        /** This node's train.out_dir: the config's, resolved against its directory ({@code run} in the tests' tiny config). */
        Path outDir() {
            return dir(node).resolve("run");
        }

        /** The pid of global rank {@code rank} (on this node), from the launcher's pid file. */
        long rankPid(int rank) throws IOException {
            return Long.parseLong(Files.readString(outDir().resolve("logs/rank-" + rank + ".pid")).strip());
        }

        /** SIGKILL of global rank {@code rank}, one of this node's. */
        void killRank(int rank) throws IOException {
            ProcessHandle.of(rankPid(rank)).ifPresent(ProcessHandle::destroyForcibly);
        }

        /** SIGKILL of the launcher and every rank it started: the node is lost. */
        void kill() {
            for (int local = 0; local < RANKS_PER_NODE; local++) {
                try {
                    killRank(node * RANKS_PER_NODE + local);
                } catch (IOException | NumberFormatException e) {
                    // that rank never started
                }
            }
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
        }

        /** The loss per step from this node's metrics (rank 0, on node 0, writes them). */
        List<Double> losses() throws IOException {
            return LaunchTest.losses(outDir());
        }
    }

    @Override
    public void close() {
        for (Node n : nodes) n.kill();
        for (Node n : nodes) {
            try {
                n.process.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (namespaces != null) for (String ns : namespaces) run("ip", "netns", "del", ns);
    }

    /** Sets up the two namespaces and their veth pair; false (with anything half made removed) if this host does not allow it. */
    private static boolean namespaces(String[] ns) {
        if (!run("ip", "netns", "add", ns[0])) return false;
        String va = ns[0].replace("weft", "v"), vb = ns[1].replace("weft", "v"); // interface names: at most 15 characters
        boolean ok = run("ip", "netns", "add", ns[1])
                && run("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
                && run("ip", "link", "set", va, "netns", ns[0])
                && run("ip", "link", "set", vb, "netns", ns[1])
                && run("ip", "-n", ns[0], "addr", "add", SUBNET + "1/24", "dev", va)
                && run("ip", "-n", ns[1], "addr", "add", SUBNET + "2/24", "dev", vb)
                && run("ip", "-n", ns[0], "link", "set", va, "up")
                && run("ip", "-n", ns[1], "link", "set", vb, "up")
                && run("ip", "-n", ns[0], "link", "set", "lo", "up")
                && run("ip", "-n", ns[1], "link", "set", "lo", "up");
        if (!ok) {
            run("ip", "link", "del", va); // if it never moved into a namespace
            for (String n : ns) run("ip", "netns", "del", n);
        }
        return ok;
    }

    private static boolean bindable(String address) {
        try (ServerSocket s = new ServerSocket()) {
            s.bind(new InetSocketAddress(address, 0));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** Runs a short command; whether it exited 0 within 10 s. */
    private static boolean run(String... cmd) {
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return false;
            }
            return p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    static Path repoRoot() {
        Path p = Path.of(System.getProperty("user.dir")).toAbsolutePath();
        while (p != null && !Files.exists(p.resolve("config/jvm.options"))) p = p.getParent();
        if (p == null) throw new IllegalStateException("no config/jvm.options above " + System.getProperty("user.dir"));
        return p;
    }

    /** Deletes {@code dir} and everything in it (a node's disk, for tests that lose a node with its files). */
    static void wipe(Path dir) throws IOException {
        if (!Files.exists(dir)) return;
        try (Stream<Path> w = Files.walk(dir)) {
            for (Path p : w.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }
}
