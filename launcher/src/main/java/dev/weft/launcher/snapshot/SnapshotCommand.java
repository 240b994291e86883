package dev.weft.launcher.snapshot;

import dev.weft.checkpoint.ErasureCodedSnapshots;
import dev.weft.checkpoint.ErasureCodedSnapshots.SnapshotStatus;
import dev.weft.checkpoint.SnapshotStore;
import dev.weft.checkpoint.UnrecoverableSnapshotException;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintWriter;
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

    @Command(name = "ls", mixinStandardHelpOptions = true, description = "List committed and partial snapshots (index only, no checksums).")
    static final class Ls extends Base {
        @Override
        public Integer call() throws Exception {
            List<SnapshotStore> stores = open();
            try {
                report(ErasureCodedSnapshots.forReading(stores).survey(false));
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

        @Override
        public Integer call() throws Exception {
            List<SnapshotStore> stores = open();
            try {
                ErasureCodedSnapshots ec = ErasureCodedSnapshots.forReading(stores);
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
    }
}
