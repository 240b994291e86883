package dev.weft.checkpoint;

import dev.weft.core.DType;
import dev.weft.core.MemoryPool;
import dev.weft.core.Tensor;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.Work;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Every rank's snapshot, erasure-coded RS(k, m) and spread over failure domains through a process
 * group, so that a job can restore a step from memory after losing ranks or whole nodes.
 *
 * <h2>Placement</h2>
 * A failure domain is a node or a rank ({@link Domains}); each has one {@link SnapshotStore},
 * shared by the domain's ranks. Piece i of rank o's snapshot lives on domain (D(o) + i) mod D:
 * the data piece 0 on the owner's own domain (restores read it locally), the rest on the domains
 * after it. Within a domain the piece is stored by rank {@code ranks[(o + i) mod ranks]}, which
 * for piece 0 is the owner itself.
 *
 * <h2>Save (every rank, the same steps, on one thread each)</h2>
 * <ol>
 *   <li>Encode: the payload is cut into k data pieces, m parity pieces computed, each CRC32C'd.</li>
 *   <li>All ranks exchange their piece lengths and CRCs (an all-gather), then the pieces go to
 *       the ranks that store them (point-to-point). A piece whose CRC differs on arrival fails
 *       the save.</li>
 *   <li>Every piece is stored, then a barrier: each piece is acknowledged.</li>
 *   <li>Each domain writes the commit record of every owner it holds a piece of (the store's own
 *       protocol: a commit record means the whole group is stored), then a barrier.</li>
 *   <li>Each domain marks the step globally committed. Restores consider only such steps.</li>
 * </ol>
 * A rank killed anywhere in this leaves the previous globally committed step intact: stores keep
 * the two newest committed snapshots of each owner, and a step is marked only after all its
 * commits exist.
 *
 * <h2>Restore (collective)</h2>
 * The ranks agree on the newest step any surviving domain marked, say which pieces of it their
 * domains hold intact (CRC-checked), and each owner collects k of them: its own first, then data
 * pieces before parity. Lost pieces are rebuilt from parity. With more than m pieces of an owner
 * lost, every rank fails alike with {@link UnrecoverableSnapshotException}.
 */
public final class DistributedSnapshots implements AutoCloseable {
    /** The failure domain of each rank, and the domains' names (their store directories' names). */
    public record Domains(String kind, String[] names, int[] ofRank) {
        public Domains {
            names = names.clone();
            ofRank = ofRank.clone();
            for (int d : ofRank)
                if (d < 0 || d >= names.length) throw new IllegalArgumentException("domain " + d + " outside [0, " + names.length + ")");
        }

        /** Each rank its own domain: rank0, rank1, ... (one node made testable, or ranks that fail alone). */
        public static Domains perRank(int world) {
            String[] names = new String[world];
            int[] of = new int[world];
            for (int r = 0; r < world; r++) {
                names[r] = "rank" + r;
                of[r] = r;
            }
            return new Domains("rank", names, of);
        }

        /** One domain per node of {@code ranksPerNode} consecutive ranks: node0, node1, ... */
        public static Domains perNode(int world, int ranksPerNode) {
            if (ranksPerNode < 1 || world % ranksPerNode != 0)
                throw new IllegalArgumentException(world + " ranks do not split into nodes of " + ranksPerNode);
            int nodes = world / ranksPerNode;
            String[] names = new String[nodes];
            for (int n = 0; n < nodes; n++) names[n] = "node" + n;
            int[] of = new int[world];
            for (int r = 0; r < world; r++) of[r] = r / ranksPerNode;
            return new Domains("node", names, of);
        }

        public int count() {
            return names.length;
        }

        int[] ranksOf(int domain) {
            return java.util.stream.IntStream.range(0, ofRank.length).filter(r -> ofRank[r] == domain).toArray();
        }
    }

    /** What a restore did: the step, where this rank's pieces came from, and what this rank's domain found damaged. */
    public record Restored(Snapshot snapshot, long step, int localPieces, int fetchedPieces, int rebuiltPieces, List<String> problems, Tensor buffer)
            implements AutoCloseable {
        /** Gives back the memory the snapshot's chunks lie in. */
        @Override
        public void close() {
            buffer.close();
        }
    }

    /**
     * Test-only: {@code WEFT_TEST_SNAPSHOT_PAUSE=PHASE:STEP:MILLIS} (PHASE copy, encode or exchange)
     * holds that phase of that step's snapshot on the first attempt, so a kill test can strike in it.
     */
    private static final String[] PAUSE = System.getenv().getOrDefault("WEFT_TEST_SNAPSHOT_PAUSE", "::0").split(":");

    private final ProcessGroup group;
    private final SnapshotStore store;
    private final String job;
    private final Domains domains;
    private final int k, m, rank, world;
    private final ReedSolomon codec;
    private final MemoryPool pool = new MemoryPool("snapshot", Long.MAX_VALUE);
    private Tensor mine; // [k + m, pieceLength / 4]: this rank's pieces, reused from step to step
    private final Map<Integer, Tensor> held = new HashMap<>(); // received pieces by (owner * n + piece)
    private final Thread warm;
    private final long[] phaseNanos = new long[4]; // encode, exchange, store, commit: summed over saves

    /** Where the saves' time went so far: encode, exchange, store, commit (ms, summed). */
    public String phases() {
        return String.format("encode %.0f ms, exchange %.0f ms, store %.0f ms, commit %.0f ms", phaseNanos[0] / 1e6, phaseNanos[1] / 1e6,
                phaseNanos[2] / 1e6, phaseNanos[3] / 1e6);
    }

    /**
     * Opens this rank's domain's store under {@code root} (directory {@code root/NAME}, NAME from
     * {@code domains}). Every rank of {@code group} constructs one with the same arguments.
     */
    public DistributedSnapshots(ProcessGroup group, Path root, SnapshotStore.Options options, String job, Domains domains, int k, int m)
            throws IOException {
        SnapshotStore.checkNames(job, owner(0));
        if (domains.ofRank().length != group.size())
            throw new IllegalArgumentException("domains name " + domains.ofRank().length + " ranks, the group has " + group.size());
        if (k < 1 || m < 0) throw new IllegalArgumentException("RS(" + k + ", " + m + ") needs k >= 1 and m >= 0");
        if (k + m > domains.count())
            throw new IllegalArgumentException("snapshot.ec = " + k + "+" + m + " places " + (k + m) + " pieces on distinct failure domains, but this job has "
                    + domains.count() + " " + domains.kind() + " domain(s); use a smaller code" + (domains.kind().equals("node") ? " or snapshot.domain: rank" : ""));
        this.group = group;
        this.job = job;
        this.domains = domains;
        this.k = k;
        this.m = m;
        this.rank = group.rank();
        this.world = group.size();
        this.codec = ReedSolomon.of(k, m).serial(); // on the snapshot thread alone: the compute pool is the training's
        this.warm = Thread.ofPlatform().daemon().name("weft-snapshot-warm").start(this::warmCodec);
        java.nio.file.Files.createDirectories(root);
        this.store = SnapshotStore.open(root.resolve(domains.names()[domains.ofRank()[rank]]), options);
    }

    /**
     * Runs the codec on a small stripe until the JIT has compiled it. Cold, the Vector API kernel
     * runs interpreted at a few MB/s: the first snapshot of a fresh rank JVM took tens of seconds.
     * Warmed at open, in the background, while the first steps run.
     */
    private void warmCodec() {
        if (m == 0) return;
        try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment[] data = new MemorySegment[k], parity = new MemorySegment[m];
            for (int i = 0; i < k; i++) data[i] = a.allocate(4096, 64);
            for (int i = 0; i < m; i++) parity[i] = a.allocate(4096, 64);
            for (int r = 0; r < 1500; r++) codec.encode(data, parity);
            MemorySegment[] all = new MemorySegment[k + m];
            System.arraycopy(data, 0, all, 0, k);
            System.arraycopy(parity, 0, all, k, m);
            boolean[] present = new boolean[k + m];
            java.util.Arrays.fill(present, true);
            present[0] = false;
            for (int r = 0; r < 200; r++) codec.reconstruct(all, present);
        }
    }

    private void awaitWarm() {
        try {
            warm.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    public static String owner(int rank) {
        return String.format("rank-%05d", rank);
    }

    /** This rank's domain's store. */
    public SnapshotStore store() {
        return store;
    }

    private int n() {
        return k + m;
    }

    private int domainOf(int owner, int piece) {
        return (domains.ofRank()[owner] + piece) % domains.count();
    }

    /** The rank that stores piece {@code piece} of {@code owner}'s snapshot. */
    private int holder(int owner, int piece) {
        int[] ranks = domains.ranksOf(domainOf(owner, piece));
        return ranks[(owner + piece) % ranks.length];
    }

    private static int tag(int owner, int piece, int n) {
        return owner * n + piece;
    }

    /**
     * Encodes {@code snapshot} (this rank's state after its step), ships its pieces, and returns
     * once the step is committed on every rank. Every rank calls it for the same steps, in order.
     */
    public void save(Snapshot snapshot) throws IOException {
        awaitWarm();
        int n = n();
        long step = snapshot.step();
        long t0 = System.nanoTime();
        byte[] header = SnapshotFormat.header(snapshot);
        long payload = SnapshotFormat.payloadSize(snapshot, header);
        long pieceLength = SnapshotFormat.align((payload + k - 1) / k);
        if (mine == null || mine.numel() != n * pieceLength / 4) {
            if (mine != null) mine.close();
            mine = Tensor.allocate(pool, DType.F32, "snapshot pieces", n, Math.toIntExact(pieceLength / 4));
        }
        MemorySegment all = mine.data();
        SnapshotFormat.write(snapshot, header, all.asSlice(0, k * pieceLength));
        MemorySegment[] pieces = new MemorySegment[n];
        for (int i = 0; i < n; i++) pieces[i] = all.asSlice(i * pieceLength, pieceLength);
        codec.encode(Arrays.copyOf(pieces, k), Arrays.copyOfRange(pieces, k, n));
        pause("encode", step);
        long t1 = System.nanoTime();
        phaseNanos[0] += t1 - t0;

        // [pieceLength, payload, crc 0 .. n-1] of every rank
        long[] mineRow = new long[2 + n];
        mineRow[0] = pieceLength;
        mineRow[1] = payload;
        for (int i = 0; i < n; i++) mineRow[2 + i] = SnapshotStore.crc32c(pieces[i]) & 0xffffffffL;
        long[][] table = IntExchange.allGather(group, mineRow);

        List<Work> transfers = new ArrayList<>();
        List<int[]> mineToStore = new ArrayList<>();
        for (int o = 0; o < world; o++) {
            for (int i = 0; i < n; i++) {
                int h = holder(o, i);
                if (o == rank && h == rank) mineToStore.add(new int[] {o, i});
                else if (o == rank) transfers.add(group.sendAsync(mine.narrow(0, i, 1), h, tag(o, i, n)));
                else if (h == rank) {
                    transfers.add(group.recvAsync(received(o, i, table[o][0]), o, tag(o, i, n)));
                    mineToStore.add(new int[] {o, i});
                }
            }
        }
        pause("exchange", step);
        for (Work w : transfers) w.await();
        long t2 = System.nanoTime();
        phaseNanos[1] += t2 - t1;

        for (int[] oi : mineToStore) {
            int o = oi[0], i = oi[1];
            MemorySegment bytes = o == rank ? pieces[i] : held.get(tag(o, i, n)).data();
            int crc = store.putPiece(job, step, owner(o), i, bytes).crc32c();
            if ((crc & 0xffffffffL) != table[o][2 + i])
                throw new IOException("piece " + i + " of " + owner(o) + "'s snapshot of step " + step + " arrived corrupted (CRC32C "
                        + Integer.toHexString(crc) + ", sent as " + Long.toHexString(table[o][2 + i]) + ")");
        }
        group.barrier(); // every piece of every owner is stored: acknowledged
        long t3 = System.nanoTime();
        phaseNanos[2] += t3 - t2;

        for (int[] oi : mineToStore) {
            int o = oi[0], i = oi[1];
            String[] names = new String[n];
            int[] crcs = new int[n];
            for (int j = 0; j < n; j++) {
                names[j] = domains.names()[domainOf(o, j)];
                crcs[j] = (int) table[o][2 + j];
            }
            store.commit(job, step, owner(o), new CommitRecord(step, k, m, table[o][0], table[o][1], names, crcs).encode());
        }
        group.barrier(); // every commit record is written
        if (domains.ranksOf(domains.ofRank()[rank])[0] == rank) store.markGloballyCommitted(job, step);
        phaseNanos[3] += System.nanoTime() - t3;
    }

    private Tensor received(int owner, int piece, long pieceLength) {
        int key = tag(owner, piece, n());
        Tensor t = held.get(key);
        if (t == null || t.numel() * 4 != pieceLength) {
            if (t != null) t.close();
            t = Tensor.allocate(pool, DType.F32, "snapshot pieces", Math.toIntExact(pieceLength / 4));
            held.put(key, t);
        }
        return t;
    }

    /** The newest step this rank's domain saw globally committed; -1 if none. */
    public long newestLocal() throws IOException {
        return store.globallyCommitted(job).orElse(-1);
    }

    /**
     * Restores this rank's snapshot of the newest globally committed step any surviving domain
     * knows (collective); empty when no domain knows one. Close the result when its chunks have
     * been used: they are slices of its buffer.
     */
    public Optional<Restored> restore() throws IOException {
        awaitWarm();
        int n = n();
        long step = -1;
        for (long[] row : IntExchange.allGather(group, new long[] {newestLocal()})) step = Math.max(step, row[0]);
        if (step < 0) return Optional.empty();

        // each holder reads what its domain holds of step once, CRC-checked: the intact pieces are then sent or used from memory
        long[] report = new long[world * (n + 2)];
        List<String> problems = new ArrayList<>();
        Map<Integer, Tensor> intact = new HashMap<>();
        try {
            for (int o = 0; o < world; o++) {
                Optional<byte[]> record = store.commitRecord(job, step, owner(o));
                if (record.isEmpty()) continue;
                CommitRecord c = CommitRecord.decode(record.get());
                report[o * (n + 2) + n] = c.pieceLength();
                report[o * (n + 2) + n + 1] = c.payloadLength();
                for (int i = 0; i < n; i++) {
                    if (holder(o, i) != rank) continue;
                    Tensor t = Tensor.allocate(pool, DType.F32, "snapshot restore", Math.toIntExact(c.pieceLength() / 4));
                    SnapshotStore.PieceState st = store.readPiece(job, step, owner(o), i, t.data());
                    if (st == SnapshotStore.PieceState.OK) {
                        intact.put(tag(o, i, n), t);
                        report[o * (n + 2) + i] = 1;
                    } else {
                        t.close();
                        if (st == SnapshotStore.PieceState.CORRUPT)
                            problems.add("piece " + i + " of " + owner(o) + " on " + domains.names()[domainOf(o, i)] + " is corrupt (CRC32C mismatch)");
                    }
                }
            }
            long[][] all = IntExchange.allGather(group, report);
            long[] known = new long[report.length];
            for (long[] row : all) for (int j = 0; j < row.length; j++) known[j] = Math.max(known[j], row[j]);
            return Optional.of(collect(step, known, intact, problems));
        } finally {
            for (Tensor t : intact.values()) t.close();
        }
    }

    /** Every owner takes k intact pieces (its own first, then data before parity), rebuilds what is missing and parses its payload. */
    private Restored collect(long step, long[] known, Map<Integer, Tensor> intact, List<String> problems) throws IOException {
        int n = n();
        int[][] chosen = new int[world][];
        List<String> lost = new ArrayList<>();
        for (int o = 0; o < world; o++) {
            List<Integer> pick = new ArrayList<>();
            for (int i = 0; i < n && pick.size() < k; i++) if (holder(o, i) == o && known[o * (n + 2) + i] == 1) pick.add(i);
            for (int i = 0; i < n && pick.size() < k; i++) if (!pick.contains(i) && known[o * (n + 2) + i] == 1) pick.add(i);
            if (pick.size() < k || known[o * (n + 2) + n] == 0) lost.add(owner(o) + " (" + pick.size() + " of " + n + " pieces readable)");
            chosen[o] = pick.stream().mapToInt(Integer::intValue).toArray();
        }
        if (!lost.isEmpty())
            throw new UnrecoverableSnapshotException("the snapshot of step " + step + " cannot be restored from memory: RS(" + k + ", " + m + ") needs "
                    + k + " of " + n + " pieces per rank, and " + String.join(", ", lost) + " lost more than " + m);

        long pieceLength = known[rank * (n + 2) + n], payload = known[rank * (n + 2) + n + 1];
        Tensor buffer = Tensor.allocate(pool, DType.F32, "snapshot restore", n, Math.toIntExact(pieceLength / 4));
        try {
            MemorySegment[] pieces = new MemorySegment[n];
            for (int i = 0; i < n; i++) pieces[i] = buffer.data().asSlice(i * pieceLength, pieceLength);
            List<Work> transfers = new ArrayList<>();
            int local = 0, fetched = 0;
            for (int o = 0; o < world; o++) {
                for (int i : chosen[o]) {
                    int h = holder(o, i);
                    if (h == rank && o == rank) {
                        MemorySegment.copy(intact.get(tag(o, i, n)).data(), 0, pieces[i], 0, pieceLength);
                        local++;
                    } else if (h == rank) {
                        transfers.add(group.sendAsync(intact.get(tag(o, i, n)), o, tag(o, i, n)));
                    } else if (o == rank) {
                        transfers.add(group.recvAsync(buffer.narrow(0, i, 1), h, tag(o, i, n)));
                        fetched++;
                    }
                }
            }
            for (Work w : transfers) w.await();
            boolean[] present = new boolean[n];
            for (int i : chosen[rank]) present[i] = true;
            boolean dataWhole = true;
            for (int i = 0; i < k; i++) dataWhole &= present[i];
            int[] rebuilt = dataWhole ? new int[0] : codec.reconstruct(pieces, present);
            int rebuiltData = (int) Arrays.stream(rebuilt).filter(i -> i < k).count();
            Snapshot s = SnapshotFormat.read(buffer.data().asSlice(0, payload));
            if (s.step() != step) throw new IOException("restored payload of " + owner(rank) + " says step " + s.step() + ", its commit record " + step);
            return new Restored(s, step, local, fetched, rebuiltData, problems, buffer);
        } catch (IOException | RuntimeException e) {
            buffer.close();
            throw e;
        }
    }

    /**
     * Drops every domain's snapshots of this job newer than {@code step} (collective): a run that
     * starts at {@code step}, fresh or from a disk checkpoint, must never restore another run's later steps.
     */
    public void discardAfter(long step) throws IOException {
        if (domains.ranksOf(domains.ofRank()[rank])[0] == rank) store.discardAfter(job, step);
        group.barrier();
    }

    /** The test-only pause of {@code phase} (see {@link #PAUSE}); prints a line a test waits for. */
    public static void pause(String phase, long step) {
        if (PAUSE.length != 3 || !PAUSE[0].equals(phase) || !PAUSE[1].equals(Long.toString(step))) return;
        if (!"0".equals(System.getenv().getOrDefault("WEFT_RESTART_COUNT", "0"))) return;
        System.out.println("snapshot test: pausing in " + phase + " of step " + step);
        System.out.flush();
        try {
            Thread.sleep(Long.parseLong(PAUSE[2]));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        if (mine != null) mine.close();
        for (Tensor t : held.values()) t.close();
        held.clear();
        store.close();
    }
}
