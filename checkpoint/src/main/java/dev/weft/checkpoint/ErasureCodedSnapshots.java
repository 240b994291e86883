package dev.weft.checkpoint;

import dev.weft.core.kernels.Parallel;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.IntConsumer;

/**
 * Erasure-coded placement of snapshots over failure domains. A snapshot's payload is split into k
 * data pieces, RS(k, m) adds m parity pieces, and the k + m pieces go to k + m distinct domains
 * (piece i of owner o to domain (hash(o) + i) mod n, so owners spread their load). Each domain's
 * commit record is written only after every piece is stored, so any commit record means a complete
 * group; {@link #restore} rebuilds the newest committed snapshot from any k readable pieces.
 */
public final class ErasureCodedSnapshots {
    /**
     * What {@link #restore} brought back, which pieces it had to rebuild, and why. It owns the
     * off-heap memory the snapshot's chunks live in: close it when done with them.
     */
    public static final class Restored implements AutoCloseable {
        private final Snapshot snapshot;
        private final long step;
        private final int[] rebuilt;
        private final List<String> problems;
        private final Arena arena;

        Restored(Snapshot snapshot, long step, int[] rebuilt, List<String> problems, Arena arena) {
            this.snapshot = snapshot;
            this.step = step;
            this.rebuilt = rebuilt;
            this.problems = List.copyOf(problems);
            this.arena = arena;
        }

        public Snapshot snapshot() { return snapshot; }
        public long step() { return step; }
        /** Pieces that were missing, unreachable or corrupt and were rebuilt from the others. */
        public int[] rebuiltPieces() { return rebuilt.clone(); }
        /** One line per piece that could not be read, saying why. */
        public List<String> problems() { return problems; }

        /** Frees the chunks' memory; the snapshot must not be used afterwards. */
        @Override
        public void close() { arena.close(); }
    }

    /** One piece of one snapshot as a survey found it. */
    public record PieceStatus(int piece, String domain, String state) {}

    /** One (job, owner, step) across the domains: committed or partial, and whether it can be restored. */
    public record SnapshotStatus(String job, String owner, long step, boolean committed, int k, int m,
                                 List<PieceStatus> pieces, boolean recoverable) {}

    private final List<SnapshotStore> domains;
    private final int k, m;
    private final ReedSolomon codec;
    private MemorySegment scratch;
    private final java.util.Map<String, SnapshotStore> byName = new java.util.HashMap<>();
    /** Test hook: runs after each piece of a save is stored (argument: piece number). */
    static volatile IntConsumer afterPiece = p -> {};

    /**
     * @param domains one store per failure domain; null marks a domain that is unreachable (only
     *                reading is possible then)
     */
    public ErasureCodedSnapshots(List<SnapshotStore> domains, int k, int m) {
        this.domains = new ArrayList<>(domains);
        this.k = k;
        this.m = m;
        if (k + m > domains.size())
            throw new IllegalArgumentException("RS(" + k + ", " + m + ") places " + (k + m) + " pieces on distinct failure domains, but only "
                    + domains.size() + " domains were given");
        this.codec = ReedSolomon.of(k, m);
        for (SnapshotStore d : domains) {
            if (d == null) continue;
            if (byName.put(domainName(d), d) != null)
                throw new IllegalArgumentException("two failure domains share the directory name '" + domainName(d)
                        + "'; the name identifies a domain in commit records, so it must be unique");
        }
    }

    /** A domain is known by its store directory's name (node0, node1, ...). */
    static String domainName(SnapshotStore d) {
        return d.root().getFileName().toString();
    }

    /** A view for reading and surveying only: the code of each snapshot comes from its commit record. */
    public static ErasureCodedSnapshots forReading(List<SnapshotStore> domains) {
        return new ErasureCodedSnapshots(domains, 1, 0);
    }

    public int domainOf(String owner, int piece) {
        return Math.floorMod(owner.hashCode() + piece, domains.size());
    }

    /** Erasure-codes {@code snapshot} across the domains and commits it. */
    public synchronized void save(String job, String owner, Snapshot snapshot) throws IOException {
        SnapshotStore.checkNames(job, owner);
        long step = snapshot.step();
        byte[] header = SnapshotFormat.header(snapshot);
        long payload = SnapshotFormat.payloadSize(snapshot, header);
        long pieceLength = SnapshotFormat.align((payload + k - 1) / k);
        int n = k + m;
        int[] where = new int[n];
        String[] names = new String[n];
        for (int i = 0; i < n; i++) {
            where[i] = domainOf(owner, i);
            if (domains.get(where[i]) == null)
                throw new IOException("cannot save " + job + "/" + owner + " step " + step + ": failure domain " + where[i] + " is unreachable");
            names[i] = domainName(domains.get(where[i]));
        }
        {
            MemorySegment all = scratch(pieceLength * n);
            SnapshotFormat.write(snapshot, header, all);
            MemorySegment[] pieces = new MemorySegment[n];
            for (int i = 0; i < n; i++) pieces[i] = all.asSlice(i * pieceLength, pieceLength);
            codec.encode(Arrays.copyOf(pieces, k), Arrays.copyOfRange(pieces, k, n));
            int[] crcs = new int[n];
            try {
                Parallel.forRange(n, 1, (from, to) -> {
                    for (int i = from; i < to; i++) {
                        try {
                            crcs[i] = domains.get(where[i]).putPiece(job, step, owner, i, pieces[i]).crc32c();
                        } catch (IOException e) {
                            throw new UncheckedIOException(e);
                        }
                        afterPiece.accept(i);
                    }
                });
            } catch (UncheckedIOException e) {
                throw e.getCause();
            }
            byte[] record = new CommitRecord(step, k, m, pieceLength, payload, names, crcs).encode();
            // Commit records go last, after every piece of the group is stored.
            for (int d : new TreeSet<>(Arrays.stream(where).boxed().toList())) domains.get(d).commit(job, step, owner, record);
        }
    }

    /**
     * The staging buffer of saves, kept from one save to the next: fresh memory costs a page fault
     * and a zeroing per 4 KiB, about as much as the whole encode. Bytes between chunks and after
     * the payload are left as they are; they are covered by the parity but never read back.
     */
    private MemorySegment scratch(long bytes) {
        if (scratch == null || scratch.byteSize() < bytes) scratch = Arena.ofAuto().allocate(Math.max(1, bytes), 64);
        return scratch.asSlice(0, bytes);
    }

    /** The newest step with a commit record in any reachable domain, with that record. */
    private Optional<CommitRecord> latestCommit(String job, String owner) throws IOException {
        CommitRecord best = null;
        for (SnapshotStore d : domains) {
            if (d == null) continue;
            List<Long> steps = d.committedSteps(job, owner);
            if (steps.isEmpty() || (best != null && steps.get(0) <= best.step())) continue;
            Optional<byte[]> r = d.commitRecord(job, steps.get(0), owner);
            if (r.isPresent()) best = CommitRecord.decode(r.get());
        }
        return Optional.ofNullable(best);
    }

    /** Restores the newest committed snapshot of (job, owner), without writing anything back. */
    public Restored restore(String job, String owner) throws IOException {
        return restore(job, owner, false);
    }

    /**
     * Restores the newest committed snapshot of (job, owner) from any k readable pieces. With
     * {@code repair}, rebuilt pieces are written back to their (reachable) domains, with the commit
     * record, so the group is whole again.
     */
    public Restored restore(String job, String owner, boolean repair) throws IOException {
        SnapshotStore.checkNames(job, owner);
        CommitRecord c = latestCommit(job, owner).orElseThrow(() -> new UnrecoverableSnapshotException(
                "no committed snapshot of job '" + job + "' owner '" + owner + "' in any of the " + liveCount() + " reachable of "
                        + domains.size() + " failure domains"));
        return restore(job, owner, repair, c);
    }

    /** Restores step {@code step} of (job, owner), which must be committed in a reachable domain. */
    public Restored restore(String job, String owner, long step) throws IOException {
        SnapshotStore.checkNames(job, owner);
        CommitRecord c = null;
        for (SnapshotStore d : domains) {
            if (d == null || c != null) continue;
            Optional<byte[]> r = d.commitRecord(job, step, owner);
            if (r.isPresent()) c = CommitRecord.decode(r.get());
        }
        if (c == null)
            throw new UnrecoverableSnapshotException("no domain of the " + liveCount() + " reachable holds a commit record of job '" + job + "' owner '" + owner
                    + "' at step " + step);
        return restore(job, owner, false, c);
    }

    /**
     * The newest step of {@code job} that any reachable domain marked globally committed (every
     * owner's snapshot of it committed), or -1.
     */
    public long newestGloballyCommitted(String job) throws IOException {
        long best = -1;
        for (SnapshotStore d : domains) if (d != null) best = Math.max(best, d.globallyCommitted(job).orElse(-1));
        return best;
    }

    private Restored restore(String job, String owner, boolean repair, CommitRecord c) throws IOException {
        int n = c.k() + c.m();
        // Explicitly owned (not an automatic arena): with auto arenas, memory is only given back by
        // a GC, and allocation stalls once the direct-memory limit is reached.
        Arena arena = Arena.ofShared();
        try {
            return restore(job, owner, repair, c, n, arena);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private Restored restore(String job, String owner, boolean repair, CommitRecord c, int n, Arena arena) throws IOException {
        // Data pieces first, into one contiguous buffer (the payload); parity only when a data
        // piece is lost, since fresh memory is costly to fault in.
        int k = c.k();
        MemorySegment all = arena.allocate(Math.max(1, c.pieceLength() * k), 64);
        MemorySegment[] pieces = new MemorySegment[n];
        boolean[] present = new boolean[n];
        String[] state = new String[n];
        for (int i = 0; i < k; i++) pieces[i] = all.asSlice(i * c.pieceLength(), c.pieceLength());
        readPieces(job, owner, c, pieces, state, 0, k);
        boolean whole = true;
        for (int i = 0; i < k; i++) whole &= state[i].equals("ok");
        if (n > k && (!whole || repair)) { // a repair checks (and mends) the parity too
            MemorySegment parity = arena.allocate(Math.max(1, c.pieceLength() * (n - k)), 64);
            for (int i = k; i < n; i++) pieces[i] = parity.asSlice((i - k) * c.pieceLength(), c.pieceLength());
            readPieces(job, owner, c, pieces, state, k, n);
            for (int i = k; i < n; i++) whole &= state[i].equals("ok");
        } else for (int i = k; i < n; i++) state[i] = "not read";
        List<String> problems = new ArrayList<>();
        int ok = 0;
        for (int i = 0; i < n; i++) {
            present[i] = state[i].equals("ok") || state[i].equals("not read");
            if (state[i].equals("ok")) ok++;
            else if (!present[i]) problems.add("piece " + i + " (domain " + c.domains()[i] + "): " + state[i]);
        }
        if (ok < c.k())
            throw new UnrecoverableSnapshotException("snapshot of job '" + job + "' owner '" + owner + "' at step " + c.step()
                    + " is unrecoverable: RS(" + c.k() + ", " + c.m() + ") needs " + c.k() + " of " + n + " pieces, only " + ok
                    + " are readable; " + String.join("; ", problems));
        int[] rebuilt = whole ? new int[0] : ReedSolomon.of(c.k(), c.m()).reconstruct(pieces, present);
        if (repair) {
            for (int i : rebuilt) {
                SnapshotStore d = byName.get(c.domains()[i]);
                if (d == null) continue;
                d.putPiece(job, c.step(), owner, i, pieces[i]);
                if (d.commitRecord(job, c.step(), owner).isEmpty()) d.commit(job, c.step(), owner, c.encode());
            }
        }
        Snapshot s = SnapshotFormat.read(all.asSlice(0, c.payloadLength()));
        if (s.step() != c.step())
            throw new IllegalStateException("restored payload says step " + s.step() + " but its commit record says " + c.step());
        return new Restored(s, c.step(), rebuilt, problems, arena);
    }

    private void readPieces(String job, String owner, CommitRecord c, MemorySegment[] pieces, String[] state, int from, int to)
            throws IOException {
        try {
            Parallel.forRange(to - from, 1, (a, b) -> {
                for (int i = from + a; i < from + b; i++) state[i] = readState(job, owner, c, i, pieces[i]);
            });
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    private String readState(String job, String owner, CommitRecord c, int i, MemorySegment dst) {
        SnapshotStore d = byName.get(c.domains()[i]);
        if (d == null) return "domain unreachable";
        try {
            return switch (d.readPiece(job, c.step(), owner, i, dst)) {
                case OK -> "ok";
                case MISSING -> "missing";
                case CORRUPT -> "corrupt (CRC32C mismatch)";
            };
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Every (job, owner, step) any domain knows about: committed ones with each piece's state
     * (CRC32C-checked when {@code verify}), and partial ones a dead writer left, which restores ignore.
     */
    public List<SnapshotStatus> survey(boolean verify) throws IOException {
        record Key(String job, String owner, long step) {}
        TreeMap<String, Key> keys = new TreeMap<>();
        TreeMap<String, CommitRecord> commits = new TreeMap<>();
        TreeMap<String, List<PieceStatus>> partial = new TreeMap<>();
        for (int d = 0; d < domains.size(); d++) {
            SnapshotStore store = domains.get(d);
            if (store == null) continue;
            for (IndexEntry e : store.entries()) {
                String id = e.job() + "\u0000" + e.owner() + "\u0000" + String.format("%020d", e.step());
                keys.put(id, new Key(e.job(), e.owner(), e.step()));
                if (e.isCommit()) commits.putIfAbsent(id, CommitRecord.decode(e.record()));
                else partial.computeIfAbsent(id, x -> new ArrayList<>()).add(new PieceStatus(e.piece(), domainName(store), "present"));
            }
        }
        List<SnapshotStatus> out = new ArrayList<>();
        for (var en : keys.entrySet()) {
            Key key = en.getValue();
            CommitRecord c = commits.get(en.getKey());
            if (c == null) {
                List<PieceStatus> ps = partial.getOrDefault(en.getKey(), List.of());
                out.add(new SnapshotStatus(key.job(), key.owner(), key.step(), false, 0, 0, ps, false));
                continue;
            }
            List<PieceStatus> ps = new ArrayList<>();
            int ok = 0;
            for (int i = 0; i < c.k() + c.m(); i++) {
                String d = c.domains()[i];
                String st;
                SnapshotStore store = byName.get(d);
                if (store == null) st = "domain unreachable";
                else if (verify) st = switch (store.verifyPiece(key.job(), key.step(), key.owner(), i)) {
                    case OK -> "ok";
                    case MISSING -> "missing";
                    case CORRUPT -> "corrupt (CRC32C mismatch)";
                };
                else st = store.entry(key.job(), key.step(), key.owner(), i).isPresent() ? "ok" : "missing";
                if (st.equals("ok")) ok++;
                ps.add(new PieceStatus(i, d, st));
            }
            out.add(new SnapshotStatus(key.job(), key.owner(), key.step(), true, c.k(), c.m(), ps, ok >= c.k()));
        }
        return out;
    }

    private long liveCount() {
        return byName.size();
    }
}
