package dev.weft.launcher.snapshot;

import dev.weft.checkpoint.ErasureCodedSnapshots;
import dev.weft.checkpoint.ErasureCodedSnapshots.SnapshotStatus;
import dev.weft.checkpoint.SnapshotStore;
import dev.weft.checkpoint.UnrecoverableSnapshotException;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;

/** {@code weft snapshot ls|verify|restore}: look inside erasure-coded snapshot stores. */
@Command(name = "snapshot", mixinStandardHelpOptions = true,
        description = "Inspect, verify and restore erasure-coded snapshots in shared-memory stores.",
        subcommands = {SnapshotCommand.Ls.class, SnapshotCommand.Verify.class, SnapshotCommand.Restore.class})
public final class SnapshotCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** Options every subcommand shares. */
    static class StoreOptions {
        @Option(names = "--store", required = true, paramLabel = "DIR",
                description = "A store directory, or a directory of per-domain stores (node0, node1, ...). Repeat for several domains. Domains are known by directory name.")
        List<Path> stores;
    }

    abstract static class Base implements Callable<Integer> {
        @CommandLine.Mixin StoreOptions opts;
        @CommandLine.Spec CommandLine.Model.CommandSpec spec;

        PrintWriter out() { return spec.commandLine().getOut(); }

        List<Path> dirs;

        List<SnapshotStore> open() throws Exception {
            dirs = Domains.resolve(opts.stores);
            List<SnapshotStore> stores = Domains.open(dirs);
            out().println(dirs.size() + " failure domain" + (dirs.size() == 1 ? "" : "s") + ":");
            for (Path d : dirs) out().println("  " + d.getFileName() + "  " + d);
            return stores;
        }

        static void close(List<SnapshotStore> stores) {
            for (SnapshotStore s : stores) s.close();
        }

        /** Prints the survey; returns {intact, degraded, unrecoverable, partial}. */
        int[] report(List<SnapshotStatus> all) {
            int[] counts = new int[4];
            if (all.isEmpty()) out().println("no snapshots");
            for (SnapshotStatus s : all) {
                String id = s.job() + " / " + s.owner() + " / step " + s.step();
                if (!s.committed()) {
                    counts[3]++;
                    out().println(id + ": PARTIAL (no commit record; a writer died or is still writing; restores ignore it) pieces "
                            + s.pieces().stream().map(p -> p.piece() + "@" + p.domain()).collect(Collectors.joining(" ")));
                    continue;
                }
                long ok = s.pieces().stream().filter(p -> p.state().equals("ok")).count();
                String state = !s.recoverable() ? "UNRECOVERABLE" : ok == s.pieces().size() ? "committed, intact" : "committed, DEGRADED (recoverable)";
                counts[!s.recoverable() ? 2 : ok == s.pieces().size() ? 0 : 1]++;
                out().println(id + ": " + state + ", RS(" + s.k() + ", " + s.m() + "), " + ok + "/" + s.pieces().size() + " pieces readable");
                for (var p : s.pieces())
                    if (!p.state().equals("ok")) out().println("    piece " + p.piece() + " on domain " + p.domain() + ": " + p.state());
            }
            return counts;
        }
    }

    /** One line per job: the newest step a restart would restore (every rank's snapshot of it committed). */
    static void globals(PrintWriter out, ErasureCodedSnapshots ec, List<SnapshotStatus> all) throws java.io.IOException {
        for (String job : new java.util.TreeSet<>(all.stream().map(SnapshotStatus::job).toList())) {
            long g = ec.newestGloballyCommitted(job);
            out.println("job " + job + ": " + (g < 0 ? "no step committed by every rank (written by weft snapshot tools, or never finished)"
                    : "newest step committed by every rank: " + g + " (what a restart restores)"));
        }
    }

    @Command(name = "ls", mixinStandardHelpOptions = true, description = "List committed and partial snapshots (index only, no checksums).")
    static final class Ls extends Base {
        @Override
        public Integer call() throws Exception {
            List<SnapshotStore> stores = open();
            try {
                ErasureCodedSnapshots ec = ErasureCodedSnapshots.forReading(stores);
                List<SnapshotStatus> all = ec.survey(false);
                report(all);
                globals(out(), ec, all);
                return 0;
            } finally {
                close(stores);
            }
        }
    }

    @Command(name = "verify", mixinStandardHelpOptions = true,
            description = "Check every piece's CRC32C; exit 1 if any committed snapshot is degraded or unrecoverable.")
    static final class Verify extends Base {
        @Override
        public Integer call() throws Exception {
            List<SnapshotStore> stores = open();
            try {
                int[] c = report(ErasureCodedSnapshots.forReading(stores).survey(true));
                out().println("summary: " + c[0] + " intact, " + c[1] + " degraded but recoverable, " + c[2] + " unrecoverable, "
                        + c[3] + " partial (ignored)");
                return c[1] + c[2] == 0 ? 0 : 1;
            } finally {
                close(stores);
            }
        }
    }

    @Command(name = "restore", mixinStandardHelpOptions = true,
            description = "Reconstruct the latest committed snapshot of each (job, owner) from any k live pieces and say which pieces were rebuilt.")
    static final class Restore extends Base {
        @Option(names = "--job", description = "Only this job.") String job;
        @Option(names = "--owner", description = "Only this owner (rank).") String owner;
        @Option(names = "--repair", description = "Write rebuilt pieces back to their domains.") boolean repair;
        @Option(names = "--out", paramLabel = "DIR", description = "Write the newest step every rank committed as a persistent checkpoint: "
                + "DIR/checkpoints/step-N (loadable by weft generate, export, and weft train --set train.out_dir=DIR --resume).") Path outDir;

        @Override
        public Integer call() throws Exception {
            List<SnapshotStore> stores = open();
            try {
                ErasureCodedSnapshots ec = ErasureCodedSnapshots.forReading(stores);
                if (outDir != null) return writeCheckpoint(ec);
                LinkedHashSet<List<String>> targets = new LinkedHashSet<>();
                for (SnapshotStatus s : ec.survey(false))
                    if (s.committed() && (job == null || job.equals(s.job())) && (owner == null || owner.equals(s.owner())))
                        targets.add(List.of(s.job(), s.owner()));
                if (targets.isEmpty()) {
                    if (job != null && owner != null) ec.restore(job, owner).close(); // throws the precise "no committed snapshot" error
                    throw new IllegalArgumentException("no committed snapshot" + (job == null ? "" : " of job '" + job + "'")
                            + (owner == null ? "" : " owner '" + owner + "'") + " in " + dirs.size() + " domain(s)");
                }
                List<String> failed = new ArrayList<>();
                for (List<String> t : targets) {
                    try (var r = ec.restore(t.get(0), t.get(1), repair)) {
                        out().println(t.get(0) + " / " + t.get(1) + ": restored step " + r.step() + " (" + r.snapshot().chunks().size()
                                + " chunks, " + r.snapshot().dataBytes() + " bytes), "
                                + (r.rebuiltPieces().length == 0 ? "no pieces rebuilt" : "rebuilt pieces " + java.util.Arrays.toString(r.rebuiltPieces())
                                + (repair ? " and wrote them back" : " (not written back; use --repair)")));
                        for (String p : r.problems()) out().println("    " + p);
                    } catch (UnrecoverableSnapshotException e) {
                        failed.add(e.getMessage());
                        out().println(t.get(0) + " / " + t.get(1) + ": UNRECOVERABLE: " + e.getMessage());
                    }
                }
                if (!failed.isEmpty()) throw new UnrecoverableSnapshotException(failed.size() + " of " + targets.size()
                        + " snapshots could not be restored: " + String.join(" | ", failed));
                return 0;
            } finally {
                close(stores);
            }
        }

        /**
         * Every rank's snapshot of the job's newest globally committed step, written out: each
         * snapshot holds its rank's files of a checkpoint (model/rank-N, optimizer/rank-N,
         * trainer.yaml, config.json), so together they are one.
         */
        private int writeCheckpoint(ErasureCodedSnapshots ec) throws Exception {
            List<SnapshotStatus> all = ec.survey(false);
            List<String> jobs = all.stream().map(SnapshotStatus::job).distinct().filter(j -> job == null || j.equals(job)).toList();
            if (jobs.size() != 1)
                throw new IllegalArgumentException(jobs.isEmpty() ? "no snapshots" + (job == null ? "" : " of job '" + job + "'") + " in " + dirs.size() + " domain(s)"
                        : "the stores hold several jobs " + jobs + ": choose one with --job");
            String j = jobs.getFirst();
            long step = ec.newestGloballyCommitted(j);
            if (step < 0) throw new IllegalArgumentException("job '" + j + "' has no step that every rank committed; nothing to restore");
            List<String> owners = all.stream().filter(st -> st.job().equals(j) && st.step() == step && st.committed()).map(SnapshotStatus::owner).sorted().toList();
            String name = String.format("step-%08d", step);
            Path root = outDir.resolve("checkpoints"), tmp = root.resolve(name + ".tmp"), dest = root.resolve(name);
            if (Files.exists(dest)) throw new IllegalArgumentException(dest + " exists; choose another --out");
            Files.createDirectories(tmp);
            long bytes = 0;
            for (String o : owners) {
                try (var r = ec.restore(j, o, step)) {
                    for (var c : r.snapshot().chunks()) {
                        Path f = tmp.resolve(c.name()).normalize();
                        if (!f.startsWith(tmp)) throw new IllegalArgumentException("snapshot of " + o + " names a file outside the checkpoint: " + c.name());
                        Files.createDirectories(f.getParent());
                        try (var ch = java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.TRUNCATE_EXISTING,
                                java.nio.file.StandardOpenOption.WRITE)) {
                            var b = c.bytes().asByteBuffer();
                            while (b.hasRemaining()) ch.write(b);
                        }
                        bytes += c.bytes().byteSize();
                    }
                    out().println(j + " / " + o + ": step " + step + (r.rebuiltPieces().length == 0 ? "" : ", rebuilt pieces " + java.util.Arrays.toString(r.rebuiltPieces())));
                }
            }
            Files.move(tmp, dest, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            Files.writeString(root.resolve("latest"), name + "\n");
            out().println("wrote " + dest + ": step " + step + " of job " + j + ", " + owners.size() + " rank(s), " + dev.weft.core.Bytes.human(bytes)
                    + "; resume with weft train|launch CONFIG --set train.out_dir=" + outDir + " --resume");
            return 0;
        }
    }
}
