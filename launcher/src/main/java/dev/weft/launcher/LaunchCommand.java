package dev.weft.launcher;

import dev.weft.launcher.launch.NodeLauncher;
import dev.weft.launcher.launch.RankCommand;
import dev.weft.launcher.spark.BarrierLaunch;
import dev.weft.launcher.launch.ReachableAddress;
import dev.weft.parallel.AeronDriver;
import dev.weft.parallel.AeronTransport;
import dev.weft.trainer.config.TrainConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code weft launch}: trains data-parallel on several rank processes, in the manner of torchrun. */
@Command(name = "launch", mixinStandardHelpOptions = true,
        description = {"Train data-parallel on several rank JVMs (in the manner of torchrun).",
                "train.micro_batch is per rank: the global batch is micro_batch x grad_accum x world size.",
                "Each rank's output is prefixed [rank N] and written to train.out_dir/logs/rank-N.log; rank 0 writes metrics and checkpoints.",
                "When a rank fails the others are stopped, the first failure is reported, and the job restarts (up to --max-restarts)",
                "from the newest checkpoint. On several nodes restarts are job-wide: every node restarts into the same generation,",
                "counted against node 0's --max-restarts, and a relaunched node joins the current generation.",
                "Ranks get WEFT_RANK, WEFT_LOCAL_RANK, WEFT_WORLD_SIZE, WEFT_LOCAL_WORLD_SIZE, WEFT_NODE_RANK, WEFT_RDZV_ENDPOINT,",
                "WEFT_JOB_SECRET and WEFT_RESTART_COUNT.",
                "With --spark-master MASTER --nproc N the N ranks run as one Spark barrier stage on that cluster instead",
                "(local[N], local-cluster[W,C,MB], spark://HOST:PORT, yarn, k8s://...); each failed stage is submitted again, up to --max-restarts."})
public final class LaunchCommand implements Callable<Integer> {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--nproc-per-node", paramLabel = "N", defaultValue = "1", description = "Rank processes on this node (default: ${DEFAULT-VALUE})")
    int nprocPerNode;

    @Option(names = "--nnodes", paramLabel = "M", defaultValue = "1", description = "Nodes in the job (default: ${DEFAULT-VALUE})")
    int nnodes;

    @Option(names = "--node-rank", paramLabel = "R", defaultValue = "0", description = "This node's index, 0 .. M-1 (default: ${DEFAULT-VALUE})")
    int nodeRank;

    @Option(names = "--rdzv-endpoint", paramLabel = "HOST:PORT",
            description = "Where node 0's rendezvous coordinator listens (default on one node: a free loopback port)")
    String rdzvEndpoint;

    @Option(names = "--host", paramLabel = "ADDR",
            description = "The address this node's ranks advertise to peers and bind (default: 127.0.0.1 on one node; with --nnodes > 1,"
                    + " the local address that routes to --rdzv-endpoint)")
    String host;

    @Option(names = "--max-restarts", paramLabel = "K", defaultValue = "0",
            description = "Restart the job up to K times after a failure, resuming from the newest checkpoint (default: ${DEFAULT-VALUE})")
    int maxRestarts;

    @Option(names = "--resume", description = "Start from the newest checkpoint in train.out_dir")
    boolean resume;

    @Option(names = "--rank-env", paramLabel = "KEY=VALUE",
            description = "An extra environment variable for every rank process (repeatable)")
    List<String> rankEnv = new ArrayList<>();

    @Option(names = "--spark-master", paramLabel = "MASTER",
            description = "Run the ranks as one Spark barrier stage on this master (local[N], spark://HOST:PORT, yarn, k8s://...)")
    String sparkMaster;

    @Option(names = "--nproc", paramLabel = "N", description = "Ranks in the job, with --spark-master")
    Integer nproc;

    @Option(names = "--spark-conf", paramLabel = "KEY=VALUE",
            description = "A Spark setting for the barrier job, with --spark-master, e.g. spark.authenticate.secret.file=PATH (repeatable)")
    List<String> sparkConf = new ArrayList<>();

    @Parameters(index = "0", paramLabel = "CONFIG", description = "YAML config (see examples/tinyshakespeare.yaml)")
    Path config;

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a config value, e.g. --set train.steps=100 (repeatable)")
    List<String> overrides = new ArrayList<>();

    @Override
    public Integer call() {
        if (sparkMaster != null) return onSpark();
        if (nproc != null || !sparkConf.isEmpty())
            throw new IllegalArgumentException((nproc != null ? "--nproc" : "--spark-conf") + " needs --spark-master; on this machine use --nproc-per-node");
        if (nprocPerNode < 1) throw new IllegalArgumentException("--nproc-per-node must be >= 1, got " + nprocPerNode);
        TrainConfig cfg = TrainConfig.load(config, overrides); // fail on a bad config here, not N times in the ranks
        if (nnodes >= 1) cfg.meshShape(nprocPerNode * nnodes); // and on a mesh that cannot work on this many ranks
        List<String> args = new ArrayList<>(overrides);
        List<String> command = RankCommand.build(nprocPerNode, config, args);
        if (resume) command.add("--resume");
        NodeLauncher.Spec s = new NodeLauncher.Spec(nprocPerNode, nnodes, nodeRank, rdzvEndpoint, maxRestarts,
                cfg.train().outDir().resolve("logs"), Duration.ofSeconds(cfg.distributed().rendezvousTimeoutSeconds()), command, nodeEnv());
        PrintWriter out = spec.commandLine().getOut();
        if (nnodes > 1) out.println("[launch] ranks on node " + nodeRank + " advertise and bind " + s.extraEnv().get(AeronTransport.HOST_ENV)
                + (host == null ? " (the local address that routes to " + rdzvEndpoint + "; --host overrides)" : ""));
        if (!"aeron".equals(cfg.distributed().transport())) return new NodeLauncher(s, out).run();
        // one media driver per node, shared by its ranks (they talk over IPC through it)
        try (AeronDriver driver = AeronDriver.launch()) {
            Map<String, String> env = new LinkedHashMap<>(s.extraEnv());
            env.putIfAbsent(AeronTransport.DRIVER_DIR_ENV, driver.directory());
            out.println("[launch] Aeron media driver for this node in " + driver.directory());
            NodeLauncher.Spec withDriver = new NodeLauncher.Spec(s.nprocPerNode(), s.nnodes(), s.nodeRank(), s.rdzvEndpoint(), s.maxRestarts(),
                    s.logDir(), s.rendezvousTimeout(), s.rankCommand(), env);
            return new NodeLauncher(withDriver, out).run();
        }
    }

    /** The ranks as a Spark barrier stage; the Spark classes load only on this path, so plain launches never pay for them. */
    private int onSpark() {
        for (String flag : List.of("--nproc-per-node", "--nnodes", "--node-rank", "--rdzv-endpoint"))
            if (spec.commandLine().getParseResult().hasMatchedOption(flag))
                throw new IllegalArgumentException(flag + " does not apply with --spark-master: Spark places the ranks; give their count with --nproc");
        if (nproc == null) throw new IllegalArgumentException("--spark-master needs --nproc N, the number of ranks");
        if (nproc < 1) throw new IllegalArgumentException("--nproc must be >= 1, got " + nproc);
        TrainConfig cfg = TrainConfig.load(config, overrides);
        cfg.meshShape(nproc);
        List<String> command = RankCommand.build(nproc, config, new ArrayList<>(overrides));
        if (resume) command.add("--resume");
        BarrierLaunch.Spec s = new BarrierLaunch.Spec(sparkMaster, nproc, maxRestarts, cfg.train().outDir().resolve("logs"),
                Duration.ofSeconds(cfg.distributed().rendezvousTimeoutSeconds()), command, env(), pairs("--spark-conf", sparkConf),
                "weft launch " + config.getFileName());
        return new BarrierLaunch(s, spec.commandLine().getOut()).run();
    }

    /** What --rank-env adds to every rank's environment (on Spark, each task adds the address of its own host). */
    private Map<String, String> env() {
        return pairs("--rank-env", rankEnv);
    }

    /** The ranks' environment on this node: --rank-env, and the address they advertise and bind. */
    private Map<String, String> nodeEnv() {
        Map<String, String> env = env();
        env.putIfAbsent(AeronTransport.HOST_ENV, rankHost());
        return env;
    }

    private static Map<String, String> pairs(String flag, List<String> given) {
        Map<String, String> env = new LinkedHashMap<>();
        for (String kv : given) {
            int eq = kv.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException(flag + " expects KEY=VALUE, got '" + kv + "'");
            env.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        return env;
    }

    /** --host, checked to be this machine's; else loopback on one node; else the address that routes to node 0. */
    private String rankHost() {
        if (host != null) {
            try {
                InetAddress a = InetAddress.getByName(host.strip());
                if (!a.isLoopbackAddress() && NetworkInterface.getByInetAddress(a) == null)
                    throw new IllegalArgumentException("--host " + host + " is not an address of this machine (ranks bind it)");
                return a.getHostAddress();
            } catch (UnknownHostException | SocketException e) {
                throw new IllegalArgumentException("--host " + host + ": cannot resolve it (" + e.getMessage() + ")");
            }
        }
        if (nnodes <= 1 || rdzvEndpoint == null) return "127.0.0.1";
        return ReachableAddress.towards(rdzvEndpoint);
    }
}
