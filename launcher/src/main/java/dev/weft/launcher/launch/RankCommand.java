package dev.weft.launcher.launch;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The command line of a rank JVM: the launcher's own java, the shared config/jvm.options, the same
 * classpath, a compute-thread count that splits this node's cores among its ranks, then the rank
 * entry point and the training arguments.
 */
public final class RankCommand {
    private RankCommand() {}

    /** Extra JVM options for rank processes, replacing {@link #DEFAULT_JAVA_OPTS}. */
    public static final String JAVA_OPTS_ENV = "WEFT_RANK_JAVA_OPTS";

    /**
     * The heap of a rank, as the {@code weft} script sizes a single process: tensors, Aeron buffers
     * and snapshots live off-heap, so the heap holds little (about 15 MB live for the example), and
     * a 64 MB young generation stops ParallelGC from growing it into hundreds of MB of garbage per
     * rank. Eight ranks of a small model then fit a 24 GiB machine with room to spare.
     */
    static final String DEFAULT_JAVA_OPTS = "-Xms96m -Xmx1g -Xmn64m";

    public static List<String> build(int nprocPerNode, Path config, List<String> overrides) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        Path options = jvmOptions();
        if (options != null) {
            cmd.add("@" + options);
        } else {
            // no checkout around (an installed jar): pass on the options this JVM was started with
            for (String a : java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
                if (a.startsWith("--add-") || a.startsWith("--enable-native-access") || a.startsWith("--sun-misc")) cmd.add(a);
        }
        String extra = System.getenv(JAVA_OPTS_ENV);
        cmd.addAll(List.of((extra == null || extra.isBlank() ? DEFAULT_JAVA_OPTS : extra).trim().split("\\s+")));
        cmd.add(threadsFlag(nprocPerNode));
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(RankMain.class.getName());
        cmd.add(config.toAbsolutePath().toString());
        for (String o : overrides) {
            cmd.add("--set");
            cmd.add(o);
        }
        return cmd;
    }

    /**
     * {@code command} with its compute-thread count recomputed for {@code localRanks} ranks sharing
     * this host's cores: for a command built on one machine (a Spark driver) and started on another.
     */
    public static List<String> forLocalRanks(List<String> command, int localRanks) {
        List<String> cmd = new ArrayList<>(command);
        cmd.replaceAll(a -> a.startsWith(THREADS) ? threadsFlag(localRanks) : a);
        return cmd;
    }

    private static final String THREADS = "-Dweft.threads=";

    private static String threadsFlag(int localRanks) {
        return THREADS + Math.max(1, Runtime.getRuntime().availableProcessors() / localRanks);
    }

    /** config/jvm.options of the checkout: -Dweft.jvm.options, else searched upwards from the working directory and the classpath. */
    static Path jvmOptions() {
        String explicit = System.getProperty("weft.jvm.options");
        if (explicit != null && Files.isRegularFile(Path.of(explicit))) return Path.of(explicit).toAbsolutePath();
        List<Path> starts = new ArrayList<>();
        starts.add(Path.of(System.getProperty("user.dir")));
        for (String entry : System.getProperty("java.class.path").split(java.io.File.pathSeparator))
            if (!entry.isBlank()) starts.add(Path.of(entry));
        for (Path start : starts) {
            for (Path p = start.toAbsolutePath(); p != null; p = p.getParent()) {
                Path f = p.resolve("config/jvm.options");
                if (Files.isRegularFile(f)) return f;
            }
        }
        return null;
    }
}
