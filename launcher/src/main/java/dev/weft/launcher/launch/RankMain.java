package dev.weft.launcher.launch;

import dev.weft.core.ProcessMemory;
import dev.weft.core.UserError;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.Transport;
import dev.weft.parallel.rendezvous.JobSecret;
import dev.weft.parallel.rendezvous.Rendezvous;
import dev.weft.trainer.DistributedContext;
import dev.weft.trainer.Trainer;
import dev.weft.trainer.config.TrainConfig;

import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongConsumer;

/**
 * The entry point of a rank JVM started by {@code weft launch}: reads its {@link RankEnv}, creates
 * its transport, joins rendezvous, connects the world group and trains as one data-parallel rank
 * (resuming from the newest checkpoint on a restart). Exits 0 on success, 1 with the cause on
 * standard output otherwise, which the launcher shows in its failure report.
 *
 * <p>Arguments: {@code CONFIG [--set KEY=VALUE]... [--resume]}.
 */
public final class RankMain {
    /** Test-only fault injection: rank WEFT_TEST_FAIL_RANK exits with code 3 before 0-based step index WEFT_TEST_FAIL_STEP. */
    static final String FAIL_RANK_ENV = "WEFT_TEST_FAIL_RANK", FAIL_STEP_ENV = "WEFT_TEST_FAIL_STEP";
    /** Test-only: every rank sleeps this many milliseconds before each step, so a test can kill a rank mid-run however fast the machine. */
    static final String STEP_PAUSE_ENV = "WEFT_TEST_STEP_PAUSE_MS";
    static final int INJECTED_FAILURE_EXIT = 3;
    /**
     * The pid of the process whose task this rank is (a Spark executor). The rank exits when it is
     * gone: an executor killed outright leaves no one else to stop its rank, which would otherwise
     * train on as an orphan beside the retried stage's ranks.
     */
    public static final String PARENT_PID_ENV = "WEFT_PARENT_PID";
    static final int ORPHANED_EXIT = 4;

    private RankMain() {}

    public static void main(String[] args) {
        int rank = -1;
        try {
            RankEnv env = RankEnv.from(System.getenv());
            rank = env.rank();
            exitWithParent(rank);
            Path config = null;
            List<String> overrides = new ArrayList<>();
            boolean resume = false;
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "--set" -> {
                        if (i + 1 >= args.length) throw new IllegalArgumentException("--set needs KEY=VALUE");
                        overrides.add(args[++i]);
                    }
                    case "--resume" -> resume = true;
                    default -> {
                        if (config != null) throw new IllegalArgumentException("unexpected argument '" + args[i] + "'");
                        config = Path.of(args[i]);
                    }
                }
            }
            if (config == null) throw new IllegalArgumentException("usage: RankMain CONFIG [--set KEY=VALUE]... [--resume]");
            TrainConfig cfg = TrainConfig.load(config, overrides);
            for (String notice : cfg.notices()) System.out.println("weft rank " + rank + ": notice: " + notice);
            train(env, cfg, resume || env.restartCount() > 0);
            System.out.flush();
            System.exit(0);
        } catch (Throwable e) {
            reportFailure(rank >= 0 ? "weft rank " + rank : "weft rank", e, System.out);
            System.out.flush();
            System.exit(1);
        }
    }

    static void train(RankEnv env, TrainConfig cfg, boolean resume) {
        JobSecret secret = JobSecret.decode(env.jobSecret());
        Duration rdzvTimeout = Duration.ofSeconds(cfg.distributed().rendezvousTimeoutSeconds());
        Duration opTimeout = Duration.ofSeconds(cfg.distributed().timeoutSeconds());
        try (Transport transport = Transports.create(env, cfg.distributed().transport(), secret.peerKey(env.restartCount()))) {
            List<String> endpoints = Rendezvous.join(env.rdzvEndpoint(), secret, env.restartCount(), env.rank(), env.worldSize(),
                    transport.localEndpoint(), rdzvTimeout);
            try (ProcessGroup world = transport.connect(env.rank(), endpoints, opTimeout)) {
                System.out.println("joined: rank " + env.rank() + " of " + env.worldSize() + " (local rank " + env.localRank() + ", node "
                        + env.nodeRank() + ", attempt " + env.restartCount() + ")");
                try (Trainer trainer = new Trainer(cfg, System.out, new DistributedContext(world, faultInjection(env.rank()), env.localWorldSize()))) {
                    trainer.run(resume);
                }
                // the kernel's count (heap, off-heap tensors, code) beside the pool's: what the rank really cost
                System.out.println(ProcessMemory.summary());
                world.barrier(); // nobody tears down transport state a slower peer still reads
            }
        }
    }

    private static void exitWithParent(int rank) {
        String pid = System.getenv(PARENT_PID_ENV);
        if (pid == null || pid.isBlank()) return;
        ProcessHandle.of(Long.parseLong(pid.strip())).ifPresentOrElse(parent -> parent.onExit().thenRun(() -> {
            System.out.println("weft rank " + rank + ": error: the process that started this rank (pid " + pid.strip() + ") is gone; stopping");
            System.out.flush();
            Runtime.getRuntime().halt(ORPHANED_EXIT);
        }), () -> Runtime.getRuntime().halt(ORPHANED_EXIT));
    }

    private static LongConsumer faultInjection(int rank) {
        String pause = System.getenv(STEP_PAUSE_ENV);
        LongConsumer failure = failureInjection(rank);
        if (pause == null || pause.isBlank()) return failure;
        long millis = Long.parseLong(pause.strip());
        return step -> {
            try {
                Thread.sleep(millis);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            failure.accept(step);
        };
    }

    private static LongConsumer failureInjection(int rank) {
        String r = System.getenv(FAIL_RANK_ENV), s = System.getenv(FAIL_STEP_ENV);
        if (r == null || s == null) return step -> {};
        int failRank = Integer.parseInt(r.strip());
        long failStep = Long.parseLong(s.strip());
        return step -> {
            if (rank == failRank && step == failStep) {
                System.out.println("injected failure at step " + (step + 1) + " (" + FAIL_RANK_ENV + "=" + failRank + ", " + FAIL_STEP_ENV + "=" + failStep + ")");
                System.out.flush();
                Runtime.getRuntime().halt(INJECTED_FAILURE_EXIT);
            }
        };
    }

    /**
     * Bad input gets its message on one line; a bug gets its stack trace. A rank also keeps an
     * IllegalStateException to one line: here it is the transport's set-up failing (a port in use,
     * a host that does not resolve, a media driver that will not start), and the launcher's failure
     * report quotes only the log's last {@value RankProcess#TAIL_LINES} lines, which a stack trace
     * would fill before the message.
     */
    static void reportFailure(String who, Throwable e, PrintStream out) {
        if (UserError.isUserError(e) || e instanceof IllegalStateException) {
            out.println(who + ": error: " + e.getMessage());
        } else {
            out.println(who + ": failed: " + e);
            e.printStackTrace(out);
        }
    }
}
