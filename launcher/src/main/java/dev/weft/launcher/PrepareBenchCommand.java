package dev.weft.launcher;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.weft.core.Bytes;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code weft bench prepare}: the local prepare against the Spark prepare in {@code local[2]}
 * and {@code local-cluster[2,1,1024]}, on one generated corpus, in one run.
 *
 * <p>The corpus is documents of random lines of the bundled Shakespeare (so two documents share
 * few shingles), among which a known share are planted exact copies and edited copies of an
 * earlier document: the measured dedup rate can be held against what was planted.
 *
 * <p>Spark runs once without dedup, its cost against the local prepare for the same work, and
 * twice with near dedup.
 *
 * <p>Each case is a fresh JVM running {@code weft prepare}, as a user would run it: its wall time
 * includes JVM start (measured alone as the first row) and, for Spark, the session's start
 * (reported apart as the job's own time). Memory is the peak resident set of the case's JVM and
 * the JVMs it started (local-cluster's executors), sampled every 50 ms.
 */
@Command(name = "prepare", mixinStandardHelpOptions = true,
        description = {"Measure weft prepare on a generated corpus: the local prepare, then Spark local[2] without dedup, and",
                "local[2] and local-cluster[2,1,1024] with near dedup, each a fresh JVM; MB/s, tokens/s, ratios against the local prepare, peak memory and the dedup rate",
                "against the planted duplicates. Reported, never asserted."})
public final class PrepareBenchCommand implements Callable<Integer> {
    @Option(names = "--mib", defaultValue = "100", description = "Corpus size in MiB (default: ${DEFAULT-VALUE})")
    int mib;
    @Option(names = "--doc-kib", defaultValue = "48", description = "Mean document size in KiB; one file per document (default: ${DEFAULT-VALUE})")
    int docKib;
    @Option(names = "--exact-share", defaultValue = "0.05", description = "Share of documents that are exact copies of an earlier one (default: ${DEFAULT-VALUE})")
    double exactShare;
    @Option(names = "--near-share", defaultValue = "0.05", description = "Share that are an earlier document with 1 word in 100 replaced (default: ${DEFAULT-VALUE})")
    double nearShare;
    @Option(names = "--tokenizer", defaultValue = "gpt2", description = "Tokenizer (default: ${DEFAULT-VALUE})")
    String tokenizer;
    @Option(names = "--java-opts", defaultValue = "-Xms256m -Xmx3g", description = "Heap options of each case's JVM (default: ${DEFAULT-VALUE})")
    String javaOpts;
    @Option(names = "--out", defaultValue = "runs/bench-prepare", description = "Working directory: corpus, shards and logs (default: ${DEFAULT-VALUE})")
    Path out;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** What one case measured. */
    record Measured(String name, double wallSeconds, double jobSeconds, long peakRss, long tokens, long docsRead, long docsKept,
                    long exactDropped, long nearDropped) {}

    @Override
    public Integer call() throws Exception {
        PrintWriter w = spec.commandLine().getOut();
        if (mib < 1 || docKib < 1) throw new IllegalArgumentException("--mib and --doc-kib must be >= 1");
        Path corpus = out.resolve("corpus");
        Planted planted = writeCorpus(corpus);
        long bytes = planted.bytes();
        w.printf("corpus: %d documents, %s in %s (planted: %d exact copies, %d edited copies)%n", planted.docs(), Bytes.human(bytes),
                corpus, planted.exact(), planted.near());
        w.flush();
        Path sparkHome = Files.createDirectories(out.resolve("spark-home/jars"));
        List<Measured> rows = new ArrayList<>();
        rows.add(run("JVM start (weft --version)", List.of("--version"), null));
        rows.add(run("local prepare", List.of("prepare", "--input", corpus.toString(), "--out", out.resolve("local").toString(),
                "--tokenizer", tokenizer), null));
        rows.add(run("spark local[2], no dedup", sparkArgs("local[2]", "spark-local-nodedup", "none"), null));
        rows.add(run("spark local[2]", sparkArgs("local[2]", "spark-local", "near"), null));
        List<String> cluster = new ArrayList<>(sparkArgs("local-cluster[2,1,1024]", "spark-cluster", "near"));
        cluster.addAll(List.of("--spark-conf", "spark.executor.extraClassPath=" + System.getProperty("java.class.path"),
                "--spark-conf", "spark.executor.memory=1024m"));
        rows.add(run("spark local-cluster[2,1,1024]", cluster, sparkHome.getParent()));
        w.println();
        w.println(table(rows, bytes));
        w.printf("dedup: planted %.1f%% of documents (%d exact, %d edited copies)%n", 100.0 * (planted.exact() + planted.near()) / planted.docs(),
                planted.exact(), planted.near());
        for (Measured m : rows.subList(3, rows.size())) {
            w.printf("dedup: %s removed %.1f%% of documents (%d exact, %d near duplicates)%n", m.name(),
                    100.0 * (m.docsRead() - m.docsKept()) / m.docsRead(), m.exactDropped(), m.nearDropped());
        }
        w.flush();
        return 0;
    }

    private List<String> sparkArgs(String master, String outName, String dedup) {
        return List.of("prepare", "--spark-master", master, "--input", out.resolve("corpus").toString(),
                "--out", out.resolve(outName).toString(), "--tokenizer", tokenizer, "--dedup", dedup);
    }

    record Planted(int docs, int exact, int near, long bytes) {}

    /** Documents of random Shakespeare lines, with planted exact and edited copies; seeded, so every run gets the same corpus. */
    private Planted writeCorpus(Path dir) throws IOException {
        Path source = Path.of("examples/data/tinyshakespeare.txt");
        if (!Files.isRegularFile(source)) throw new IllegalArgumentException("run from the repository root: " + source + " not found");
        List<String> lines = Files.readAllLines(source).stream().filter(l -> !l.isBlank()).toList();
        if (Files.isDirectory(dir)) {
            try (var old = Files.list(dir)) {
                for (Path p : old.toList()) Files.delete(p);
            }
        }
        Files.createDirectories(dir);
        Random rnd = new Random(20261201);
        long target = (long) mib << 20;
        long bytes = 0;
        int exact = 0, near = 0;
        List<String> docs = new ArrayList<>();
        while (bytes < target) {
            double u = rnd.nextDouble();
            String doc;
            if (docs.size() > 10 && u < exactShare) {
                doc = docs.get(rnd.nextInt(docs.size()));
                exact++;
            } else if (docs.size() > 10 && u < exactShare + nearShare) {
                String[] words = docs.get(rnd.nextInt(docs.size())).split(" ");
                for (int i = rnd.nextInt(100); i < words.length; i += 100) words[i] = "edited";
                doc = String.join(" ", words);
                near++;
            } else {
                StringBuilder sb = new StringBuilder();
                int size = docKib * 1024 / 2 + rnd.nextInt(docKib * 1024);
                while (sb.length() < size) sb.append(lines.get(rnd.nextInt(lines.size()))).append('\n');
                doc = sb.toString();
            }
            docs.add(doc);
            Files.writeString(dir.resolve(String.format("doc-%06d.txt", docs.size())), doc);
            bytes += doc.length();
        }
        return new Planted(docs.size(), exact, near, bytes);
    }

    private static final Pattern SPARK_SECONDS = Pattern.compile("^prepare: .* -> .* \\(([0-9.]+) s\\)$", Pattern.MULTILINE);
    private static final Pattern TOKENS = Pattern.compile("^(train|val) tokens: +(\\d+)$", Pattern.MULTILINE);

    private Measured run(String name, List<String> args, Path sparkHome) throws Exception {
        PrintWriter w = spec.commandLine().getOut();
        w.printf("running: %s%n", name);
        w.flush();
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            // this JVM's module and system flags (the shared JVM options), not its heap or diagnostics
            if (a.startsWith("--") || a.startsWith("-XX:") || (a.startsWith("-D") && !a.startsWith("-Djava.class.path"))) cmd.add(a);
        }
        cmd.addAll(List.of(javaOpts.trim().split("\\s+")));
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName()));
        cmd.addAll(args);
        Path log = out.resolve(name.replaceAll("[^A-Za-z0-9]+", "-") + ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        if (sparkHome != null) {
            pb.environment().put("SPARK_HOME", sparkHome.toAbsolutePath().toString());
            pb.environment().put("SPARK_SCALA_VERSION", "2.13");
        }
        long start = System.nanoTime();
        Process p = pb.start();
        long peak = 0;
        while (!p.waitFor(50, TimeUnit.MILLISECONDS)) {
            long rss = rssOf(p.toHandle());
            for (ProcessHandle d : p.toHandle().descendants().toList()) rss += rssOf(d);
            peak = Math.max(peak, rss);
        }
        double wall = (System.nanoTime() - start) / 1e9;
        String text = Files.readString(log);
        if (p.exitValue() != 0) {
            throw new IllegalStateException(name + " failed (exit " + p.exitValue() + "); its output is in " + log);
        }
        double job = Double.NaN;
        Matcher sm = SPARK_SECONDS.matcher(text);
        if (args.contains("--spark-master") && sm.find()) job = Double.parseDouble(sm.group(1));
        long tokens = 0;
        for (Matcher tm = TOKENS.matcher(text); tm.find(); ) tokens += Long.parseLong(tm.group(2));
        long read = 0, kept = 0, exact = 0, near = 0;
        Path manifest = null;
        if (args.contains("--spark-master")) manifest = Path.of(args.get(args.indexOf("--out") + 1), "manifest.json");
        if (manifest != null) {
            JsonNode m = new ObjectMapper().readTree(manifest.toFile());
            read = m.at("/documents/read").asLong();
            kept = m.at("/documents/kept").asLong();
            exact = m.at("/documents/dropped/exact_duplicate").asLong();
            near = m.at("/documents/dropped/near_duplicate").asLong();
            // every document is tokenised, kept or not: count the dropped ones' tokens as work done
            tokens = m.at("/tokens/kept").asLong();
            for (JsonNode d : m.at("/tokens/dropped")) tokens += d.asLong();
        }
        w.printf("  %.1f s wall%s, peak RSS %s%n", wall, Double.isNaN(job) ? "" : String.format(Locale.ROOT, " (%.1f s job)", job), Bytes.human(peak));
        w.flush();
        return new Measured(name, wall, job, peak, tokens, read, kept, exact, near);
    }

    /** Resident bytes of a live process from /proc, 0 once it is gone or where /proc is absent. */
    private static long rssOf(ProcessHandle h) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc", Long.toString(h.pid()), "status"))) {
                if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        } catch (IOException | UncheckedIOException | NumberFormatException e) {
            return 0;
        }
        return 0;
    }

    static String table(List<Measured> rows, long bytes) {
        Measured local = rows.get(1);
        double localRate = bytes / local.wallSeconds();
        StringBuilder sb = new StringBuilder();
        sb.append("| case | wall s | MB/s (wall) | tokens/s (wall) | vs local | Spark job s | MB/s (job) | peak RSS, all JVMs |\n");
        sb.append("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Measured m : rows) {
            boolean work = m != rows.get(0);
            double rate = bytes / m.wallSeconds();
            sb.append(String.format(Locale.ROOT, "| %s | %.1f | %s | %s | %s | %s | %s | %s |%n", m.name(), m.wallSeconds(),
                    work ? String.format(Locale.ROOT, "%.2f", rate / 1e6) : "",
                    work ? String.format(Locale.ROOT, "%.0f", m.tokens() / m.wallSeconds()) : "",
                    work ? String.format(Locale.ROOT, "%.2fx", rate / localRate) : "",
                    Double.isNaN(m.jobSeconds()) ? "" : String.format(Locale.ROOT, "%.1f", m.jobSeconds()),
                    Double.isNaN(m.jobSeconds()) ? "" : String.format(Locale.ROOT, "%.2f", bytes / m.jobSeconds() / 1e6),
                    Bytes.human(m.peakRss())));
        }
        return sb.toString();
    }
}
