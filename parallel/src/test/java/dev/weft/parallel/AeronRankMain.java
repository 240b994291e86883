package dev.weft.parallel;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.parallel.rendezvous.JobSecret;
import dev.weft.parallel.rendezvous.PeerKey;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * One rank process of the Aeron tests: publishes its endpoint as a file in a shared directory,
 * waits (bounded) for every other, connects and runs a scenario. Prints "RESULT ..." and exits 0,
 * or prints the failure and exits 1.
 *
 * <p>Arguments: SCENARIO RANK WORLD DIR [udp]. Scenarios: "checks" (every collective against the
 * reference), "timeout" (rank 0 receives from rank 1, which never sends), "dies" (rank 1 halts after a
 * shared-memory all-reduce and message; rank 0's next ones time out naming it).
 */
public final class AeronRankMain {
    /** Direct, ring and (from 65536 floats, same host) shared-memory sizes. */
    static final int[] SIZES = {0, 1, 3, 1001, 16411, 50_003, 300_007};

    public static void main(String[] args) throws Exception {
        String scenario = args[0];
        int rank = Integer.parseInt(args[1]);
        int n = Integer.parseInt(args[2]);
        Path dir = Path.of(args[3]);
        boolean udp = args.length > 4 && args[4].equals("udp");
        PeerKey key = JobSecret.decode(System.getenv("WEFT_JOB_SECRET")).peerKey(0);
        try (AeronTransport t = udp ? AeronTransport.udpOnly(System.getenv(AeronTransport.DRIVER_DIR_ENV), "127.0.0.1", key)
                : AeronTransport.withDriver(System.getenv(AeronTransport.DRIVER_DIR_ENV), "127.0.0.1", key)) {
            List<String> endpoints = exchange(dir, rank, n, t.localEndpoint());
            Duration timeout = Duration.ofSeconds(scenario.equals("timeout") ? 1 : 20);
            try (ProcessGroup g = t.connect(rank, endpoints, Duration.ofSeconds(20))) {
                ProcessGroup world = g;
                switch (scenario) {
                    case "checks" -> {
                        long hash = CollectiveChecks.checkAll(world, SIZES);
                        System.out.println("RESULT " + hash);
                    }
                    case "timeout" -> {
                        ProcessGroup sub = world.subgroup("pair", 0, 1); // a group with a short deadline
                        if (rank == 0) {
                            try (Scope s = Scope.open(); ProcessGroup quick = new FabricGroup(((FabricGroup) sub).fabric, "pair", 99,
                                    new int[]{0, 1}, 0, Duration.ofMillis(500), false)) {
                                quick.recv(Tensor.zeros(3), 1, 4);
                                System.out.println("RESULT received, which should not happen");
                            } catch (CollectiveTimeoutException e) {
                                System.out.println("RESULT " + e.missingRanks() + " " + e.getMessage());
                            }
                        } else {
                            System.out.println("RESULT silent");
                        }
                        world.barrier();
                    }
                    case "dies" -> {
                        // both ranks pass one operation of each kind through shared memory, then rank 1
                        // halts (no shutdown hooks, no close: as a crash leaves it); rank 0's next
                        // all-reduce, send and receive must each time out naming rank 1
                        try (Scope s = Scope.open(); ProcessGroup quick = new FabricGroup(((FabricGroup) world).fabric, "tp", 98,
                                new int[]{0, 1}, rank, Duration.ofMillis(800), false)) {
                            Tensor x = Tensor.full(1f + rank, 1024);
                            quick.allReduce(x, ReduceOp.SUM);
                            if (rank == 0) quick.send(x, 1, 1);
                            else quick.recv(x, 0, 1);
                            if (rank == 1) {
                                System.out.println("RESULT halting after " + x.toArray()[0]);
                                System.out.flush();
                                Runtime.getRuntime().halt(0);
                            }
                            List<String> seen = new ArrayList<>();
                            for (Runnable op : List.<Runnable>of(() -> quick.allReduce(x, ReduceOp.SUM),
                                    () -> quick.send(Tensor.zeros(2 << 20), 1, 2), () -> quick.recv(x, 1, 3))) {
                                try {
                                    op.run();
                                    seen.add("completed");
                                } catch (CollectiveTimeoutException e) {
                                    seen.add(e.operation() + " " + e.missingRanks());
                                }
                            }
                            System.out.println("RESULT " + seen);
                        }
                    }
                    default -> throw new IllegalArgumentException("unknown scenario " + scenario);
                }
            }
            System.out.flush();
            System.exit(0);
        } catch (Throwable e) {
            e.printStackTrace();
            System.exit(1);
        }
    }

    static List<String> exchange(Path dir, int rank, int n, String endpoint) throws Exception {
        Path tmp = dir.resolve(rank + ".tmp");
        Files.writeString(tmp, endpoint);
        Files.move(tmp, dir.resolve(rank + ".ep"), StandardCopyOption.ATOMIC_MOVE);
        long until = System.nanoTime() + 30_000_000_000L;
        List<String> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            Path p = dir.resolve(i + ".ep");
            while (!Files.exists(p)) {
                if (System.nanoTime() > until) throw new IllegalStateException("rank " + i + " never published its endpoint");
                Thread.sleep(10);
            }
            out.add(Files.readString(p));
        }
        return out;
    }
}
