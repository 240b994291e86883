package dev.weft.checkpoint;

import net.openhft.chronicle.map.ChronicleMap;
import net.openhft.chronicle.map.ChronicleMapBuilder;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.regex.Pattern;
import java.util.zip.CRC32C;

/**
 * The snapshot store of one failure domain (node): pieces of snapshots in shared memory that
 * outlive the process that wrote them. See the package documentation for the on-disk format and
 * the commit protocol. Thread-safe; any number of processes may open the same store.
 */
public final class SnapshotStore implements AutoCloseable {
    /** The piece number of a commit record in the index. */
    public static final int COMMIT = -1;
    public static final Path DEFAULT_ROOT = Path.of("/dev/shm/weft-snapshots");
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9._-]{1,100}");
    private static final ConcurrentHashMap<Path, ReentrantLock> JVM_LOCKS = new ConcurrentHashMap<>();

    /**
     * @param budgetBytes most bytes of piece data the store holds; a write beyond it fails
     * @param retain      committed snapshots kept per (job, owner); older ones are dropped on commit
     * @param maxEntries  index capacity (pieces + commit records)
     * @param lockTimeout how long to wait for the index lock held by another live process
     */
    public record Options(long budgetBytes, int retain, long maxEntries, Duration lockTimeout) {
        public Options {
            if (budgetBytes <= 0) throw new IllegalArgumentException("store budget must be > 0 bytes, got " + budgetBytes);
            if (retain < 1) throw new IllegalArgumentException("store must retain >= 1 committed snapshot, got " + retain);
            if (maxEntries < 16) throw new IllegalArgumentException("store index needs >= 16 entries, got " + maxEntries);
        }

        public static Options defaults() {
            return new Options(8L << 30, 2, 1 << 16, Duration.ofSeconds(30));
        }

        public Options withBudget(long bytes) { return new Options(bytes, retain, maxEntries, lockTimeout); }
        public Options withRetain(int n) { return new Options(budgetBytes, n, maxEntries, lockTimeout); }
    }

    /** Outcome of reading or verifying one piece. */
    public enum PieceState { OK, MISSING, CORRUPT }

    private final Path root, dataDir, indexFile, freeDir;
    private static final java.util.concurrent.atomic.AtomicLong FREE_NAMES = new java.util.concurrent.atomic.AtomicLong();
    private static final int BLOCK = 1 << 20;
    private final Options options;
    private final FileChannel lockChannel;
    private final ReentrantLock jvmLock;
    private ChronicleMap<String, byte[]> map;
    private long generation = -1;
    private boolean closed;
    /** Set when this instance found and repaired an index left locked by a dead process. */
    private volatile int recoveries;

    private SnapshotStore(Path root, Options options) throws IOException {
        this.root = root;
        this.options = options;
        this.dataDir = root.resolve("data");
        this.indexFile = root.resolve("index.cmap");
        this.freeDir = root.resolve("free");
        Files.createDirectories(dataDir);
        Files.createDirectories(freeDir);
        this.lockChannel = FileChannel.open(root.resolve("index.lock"), StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
        this.jvmLock = JVM_LOCKS.computeIfAbsent(root.toRealPath(), p -> new ReentrantLock());
        locked(m -> null); // open (and recover if needed) now, so a broken store fails at open
    }

    /** Opens (creating if needed) the store at {@link #DEFAULT_ROOT}. */
    public static SnapshotStore openDefault() throws IOException {
        return open(DEFAULT_ROOT, Options.defaults());
    }

    public static SnapshotStore open(Path root) throws IOException {
        return open(root, Options.defaults());
    }

    /**
     * Opens the store in directory {@code root}, creating the directory (not its parents). Fails
     * clearly when the parent is missing (no /dev/shm) or the place is not writable.
     */
    public static SnapshotStore open(Path root, Options options) throws IOException {
        root = root.toAbsolutePath().normalize();
        Path parent = root.getParent();
        if (parent != null && !Files.isDirectory(parent))
            throw new NoSuchFileException(root.toString(), null, "snapshot store: parent directory " + parent
                    + (Files.exists(parent) ? " is not a directory" : " does not exist")
                    + (parent.startsWith("/dev/shm") ? " (is shared memory mounted at /dev/shm?)" : "")
                    + "; choose another place with --store DIR");
        try {
            Files.createDirectories(root);
            Path probe = Files.createTempFile(root, ".probe", "");
            Files.delete(probe);
        } catch (FileSystemException e) {
            throw new IOException("snapshot store " + root + " is not writable: " + e.getClass().getSimpleName() + " "
                    + (e.getReason() == null ? e.getMessage() : e.getReason()) + "; choose another place with --store DIR", e);
        }
        return new SnapshotStore(root, options);
    }

    public Path root() { return root; }
    public Options options() { return options; }

    /** Index-lock recoveries this instance performed (an earlier holder had died). */
    public int recoveries() { return recoveries; }

    // ---------------------------------------------------------------- writing

    /**
     * Writes one piece's bytes to its own memory-mapped file, then records it in the index. The
     * piece is invisible to readers of committed snapshots until {@link #commit} for its step.
     */
    public IndexEntry putPiece(String job, long step, String owner, int piece, MemorySegment bytes) throws IOException {
        checkNames(job, owner);
        if (piece < 0) throw new IllegalArgumentException("piece number must be >= 0, got " + piece);
        String location = job + "/" + owner + "/" + step + "/" + piece + ".bin";
        Path file = dataDir.resolve(location);
        long len = bytes.byteSize();
        long used = usedBytes() - (Files.exists(file) ? Files.size(file) : 0);
        if (used + len > options.budgetBytes())
            throw new SnapshotStoreFullException("snapshot store " + root + " is over its budget: writing " + job + " step " + step
                    + " " + owner + " piece " + piece + " needs " + len + " bytes, " + used + " of " + options.budgetBytes()
                    + " are in use (" + committedSummary() + "); raise the budget (it must hold " + (options.retain() + 1)
                    + " snapshots while a new one is written) or write smaller snapshots");
        trimFreePool(options.budgetBytes() - used - len);
        Files.createDirectories(file.getParent());
        if (!Files.exists(file)) claimFreeFile(file, len);
        int crc = writeFile(file, bytes);
        IndexEntry e = new IndexEntry(job, step, owner, piece, location, len, crc, new byte[0]);
        locked(m -> m.put(e.key(), e.encodeValue()));
        return e;
    }

    /**
     * Writes the commit record of (job, step, owner) last, making the step visible to readers, then
     * drops what is no longer needed: committed snapshots beyond the newest {@code retain}, and
     * uncommitted leftovers of older steps (from writers that died).
     */
    public void commit(String job, long step, String owner, byte[] record) throws IOException {
        checkNames(job, owner);
        IndexEntry c = new IndexEntry(job, step, owner, COMMIT, "", 0, crc32c(MemorySegment.ofArray(record)), record.clone());
        List<Long> dropped = locked(m -> {
            m.put(c.key(), c.encodeValue());
            TreeSet<Long> committed = new TreeSet<>(Comparator.reverseOrder()), all = new TreeSet<>();
            List<IndexEntry> mine = new ArrayList<>();
            for (var en : m.entrySet()) {
                IndexEntry e = IndexEntry.decode(en.getKey(), en.getValue());
                if (!e.job().equals(job) || !e.owner().equals(owner)) continue;
                mine.add(e);
                all.add(e.step());
                if (e.isCommit()) committed.add(e.step());
            }
            TreeSet<Long> keep = new TreeSet<>();
            committed.stream().limit(options.retain()).forEach(keep::add);
            List<Long> drop = new ArrayList<>();
            for (long s : all) if (!keep.contains(s) && s < step) drop.add(s);
            for (IndexEntry e : mine) if (drop.contains(e.step())) m.remove(e.key());
            return drop;
        });
        for (long s : dropped) recycleTree(dataDir.resolve(job + "/" + owner + "/" + s));
        // Files of steps that never reached the index (a writer died before indexing them).
        Path ownerDir = dataDir.resolve(job + "/" + owner);
        if (Files.isDirectory(ownerDir)) {
            List<Long> live = committedSteps(job, owner);
            try (DirectoryStream<Path> ds = Files.newDirectoryStream(ownerDir)) {
                for (Path p : ds) {
                    long s;
                    try { s = Long.parseLong(p.getFileName().toString()); } catch (NumberFormatException e) { continue; }
                    if (s < step && !live.contains(s)) recycleTree(p);
                }
            }
        }
    }

    /**
     * Records that every owner of {@code job} has committed {@code step} (a job-wide fact a
     * distributed writer establishes; see {@link DistributedSnapshots}). One small file per job,
     * replaced atomically, so a reader sees the old step or the new one.
     */
    public void markGloballyCommitted(String job, long step) throws IOException {
        checkNames(job, "global");
        Path dir = root.resolve("committed");
        Files.createDirectories(dir);
        Path tmp = dir.resolve("." + job + "." + ProcessHandle.current().pid() + ".tmp");
        Files.writeString(tmp, step + "\n");
        try {
            Files.move(tmp, dir.resolve(job), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, dir.resolve(job), StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /** The newest step every owner of {@code job} had committed, as this store was told; empty if never. */
    public OptionalLong globallyCommitted(String job) throws IOException {
        checkNames(job, "global");
        Path f = root.resolve("committed").resolve(job);
        if (!Files.exists(f)) return OptionalLong.empty();
        try {
            return OptionalLong.of(Long.parseLong(Files.readString(f).strip()));
        } catch (NumberFormatException e) {
            throw new IOException(f + " does not hold a step number", e);
        }
    }

    /** Drops everything of {@code job} after {@code step} (all of it for -1), and a global mark past it. */
    public void discardAfter(String job, long step) throws IOException {
        checkNames(job, "global");
        java.util.Set<List<Object>> doomed = new java.util.LinkedHashSet<>();
        for (IndexEntry e : entries()) if (e.job().equals(job) && e.step() > step) doomed.add(List.of(e.step(), e.owner()));
        for (List<Object> d : doomed) delete(job, (Long) d.get(0), (String) d.get(1));
        if (globallyCommitted(job).orElse(-1) > step) Files.deleteIfExists(root.resolve("committed").resolve(job));
    }

    /** Removes every entry and file of (job, step, owner), committed or not. */
    public void delete(String job, long step, String owner) throws IOException {
        checkNames(job, owner);
        locked(m -> {
            String prefix = IndexEntry.key(job, step, owner, 0);
            prefix = prefix.substring(0, prefix.length() - 1);
            List<String> doomed = new ArrayList<>();
            for (String k : m.keySet()) if (k.startsWith(prefix)) doomed.add(k);
            for (String k : doomed) m.remove(k);
            return null;
        });
        deleteTree(dataDir.resolve(job + "/" + owner + "/" + step));
    }

    // ---------------------------------------------------------------- reading

    /** Every index entry, pieces and commit records, committed or not. */
    public List<IndexEntry> entries() throws IOException {
        return locked(m -> {
            List<IndexEntry> out = new ArrayList<>();
            for (var en : m.entrySet()) out.add(IndexEntry.decode(en.getKey(), en.getValue()));
            out.sort(Comparator.comparing(IndexEntry::job).thenComparing(IndexEntry::owner)
                    .thenComparingLong(IndexEntry::step).thenComparingInt(IndexEntry::piece));
            return out;
        });
    }

    public Optional<IndexEntry> entry(String job, long step, String owner, int piece) throws IOException {
        String key = IndexEntry.key(job, step, owner, piece);
        return locked(m -> Optional.ofNullable(m.get(key)).map(v -> IndexEntry.decode(key, v)));
    }

    /** Committed steps of (job, owner), newest first. */
    public List<Long> committedSteps(String job, String owner) throws IOException {
        List<Long> steps = new ArrayList<>();
        for (IndexEntry e : entries()) if (e.isCommit() && e.job().equals(job) && e.owner().equals(owner)) steps.add(e.step());
        steps.sort(Comparator.reverseOrder());
        return steps;
    }

    /** The commit record of (job, step, owner), if that step is committed here. */
    public Optional<byte[]> commitRecord(String job, long step, String owner) throws IOException {
        return entry(job, step, owner, COMMIT).map(IndexEntry::record);
    }

    /**
     * Copies a piece into {@code dst} (exactly its length) and checks its CRC32C. MISSING when the
     * index has no such piece or its file is gone or short; CORRUPT when the checksum differs.
     */
    public PieceState readPiece(String job, long step, String owner, int piece, MemorySegment dst) throws IOException {
        Optional<IndexEntry> e = entry(job, step, owner, piece);
        if (e.isEmpty() || e.get().length() != dst.byteSize()) return PieceState.MISSING;
        Path file = dataDir.resolve(e.get().location());
        try (Arena arena = Arena.ofConfined(); FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long len = dst.byteSize();
            if (ch.size() < len) return PieceState.MISSING;
            CRC32C crc = new CRC32C();
            if (len > 0) {
                MemorySegment src = ch.map(FileChannel.MapMode.READ_ONLY, 0, len, arena);
                // Block by block, so the checksum reads what the copy just brought into cache.
                for (long at = 0; at < len; at += BLOCK) {
                    long n = Math.min(BLOCK, len - at);
                    MemorySegment.copy(src, at, dst, at, n);
                    crc.update(dst.asSlice(at, n).asByteBuffer());
                }
            }
            return (int) crc.getValue() == e.get().crc32c() ? PieceState.OK : PieceState.CORRUPT;
        } catch (NoSuchFileException gone) {
            return PieceState.MISSING;
        }
    }

    /** Checks a piece's CRC32C in place, without copying it out. */
    public PieceState verifyPiece(String job, long step, String owner, int piece) throws IOException {
        Optional<IndexEntry> e = entry(job, step, owner, piece);
        if (e.isEmpty()) return PieceState.MISSING;
        try (Arena arena = Arena.ofConfined(); FileChannel ch = FileChannel.open(dataDir.resolve(e.get().location()), StandardOpenOption.READ)) {
            long len = e.get().length();
            if (ch.size() < len) return PieceState.MISSING;
            MemorySegment s = len == 0 ? MemorySegment.NULL : ch.map(FileChannel.MapMode.READ_ONLY, 0, len, arena);
            return crc32c(s) == e.get().crc32c() ? PieceState.OK : PieceState.CORRUPT;
        } catch (NoSuchFileException gone) {
            return PieceState.MISSING;
        }
    }

    /*
     * Piece files are recycled: pruned ones move to free/ and the next write of a similar size
     * takes one over (an atomic rename), because on tmpfs filling fresh pages costs a page fault
     * and a zeroing per 4 KiB, which more than halves write speed. Writes use pwrite, block by
     * block with the CRC32C computed on the block just written while it is in cache.
     */
    private int writeFile(Path file, MemorySegment bytes) throws IOException {
        long len = bytes.byteSize();
        CRC32C crc = new CRC32C();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            if (ch.size() > len) ch.truncate(len);
            for (long at = 0; at < len; at += BLOCK) {
                ByteBuffer b = bytes.asSlice(at, Math.min(BLOCK, len - at)).asByteBuffer();
                for (long pos = at; b.hasRemaining(); ) pos += ch.write(b, pos);
                crc.update(b.flip());
            }
        }
        return (int) crc.getValue();
    }

    /** Moves a free file of at least {@code len} bytes (the smallest such) to {@code target}, if any. */
    private void claimFreeFile(Path target, long len) throws IOException {
        List<Path> candidates = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(freeDir)) {
            for (Path p : ds) candidates.add(p);
        }
        candidates.sort(Comparator.comparingLong(SnapshotStore::sizeOrMax));
        for (Path p : candidates) {
            if (sizeOrMax(p) < len) continue;
            try {
                Files.move(p, target, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
                return;
            } catch (NoSuchFileException raced) {
                // another writer took it
            }
        }
    }

    /** Deletes free files until at most {@code keep} bytes of them remain. */
    private void trimFreePool(long keep) throws IOException {
        long free = freeBytes();
        if (free <= keep) return;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(freeDir)) {
            for (Path p : ds) {
                if (free <= keep) break;
                long n = sizeOrMax(p);
                if (Files.deleteIfExists(p)) free -= n;
            }
        }
    }

    private long freeBytes() throws IOException {
        long n = 0;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(freeDir)) {
            for (Path p : ds) n += Math.max(0, sizeOrMax(p) == Long.MAX_VALUE ? 0 : sizeOrMax(p));
        }
        return n;
    }

    private static long sizeOrMax(Path p) {
        try {
            return Files.size(p);
        } catch (IOException e) {
            return Long.MAX_VALUE;
        }
    }

    private void recycleTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (var walk = Files.walk(p)) {
            for (Path q : walk.sorted(Comparator.reverseOrder()).toList()) {
                if (Files.isRegularFile(q))
                    Files.move(q, freeDir.resolve(ProcessHandle.current().pid() + "-" + FREE_NAMES.incrementAndGet() + ".bin"),
                            java.nio.file.StandardCopyOption.ATOMIC_MOVE);
                else Files.deleteIfExists(q);
            }
        }
    }

    /** The file holding a piece (for tools and tests that damage it on purpose). */
    public Path pieceFile(IndexEntry e) {
        return dataDir.resolve(e.location());
    }

    /** Bytes of piece files under this store (not counting recycled files kept for reuse). */
    public long usedBytes() throws IOException {
        return filesUnder(dataDir);
    }

    private static long filesUnder(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) return 0;
        try (var files = Files.walk(dir)) {
            return files.filter(Files::isRegularFile).mapToLong(p -> {
                try { return Files.size(p); } catch (IOException e) { return 0; }
            }).sum();
        } catch (UncheckedIOException e) {
            return 0; // a file vanished under a concurrent prune; the next write recounts
        }
    }

    private String committedSummary() throws IOException {
        TreeSet<String> s = new TreeSet<>();
        for (IndexEntry e : entries()) if (e.isCommit()) s.add(e.job() + "/" + e.owner() + "@" + e.step());
        return s.isEmpty() ? "no committed snapshots" : "committed: " + String.join(", ", s);
    }

    // ---------------------------------------------------------------- index lock

    @FunctionalInterface
    interface IndexOp<T> {
        T run(ChronicleMap<String, byte[]> map) throws IOException;
    }

    /*
     * Every index access runs under an OS file lock on index.lock, which the kernel releases when
     * its holder dies. Byte 0 of that file is a "dirty" flag set for the duration of the access:
     * finding it set means the previous holder died inside Chronicle Map, possibly holding one of
     * its segment locks (which no one would ever release). Since nobody else can touch the map
     * while we hold the file lock, it is safe to run Chronicle's recovery then, which resets the
     * segment locks; bytes 8..16 hold a generation counter that tells other open instances to
     * reopen their view of the map.
     */
    <T> T locked(IndexOp<T> op) throws IOException {
        jvmLock.lock();
        try {
            if (closed) throw new IllegalStateException("snapshot store " + root + " is closed");
            try (FileLock ignored = acquire()) {
                ByteBuffer state = ByteBuffer.allocate(16);
                lockChannel.read(state, 0);
                boolean dirty = state.get(0) != 0;
                long gen = state.getLong(8);
                if (dirty) {
                    if (map != null) map.close();
                    map = null;
                    map = builder().recoverPersistedTo(indexFile.toFile(), true);
                    recoveries++;
                    gen++;
                    writeState(false, gen);
                } else if (map == null || gen != generation) {
                    if (map != null) map.close();
                    map = null;
                    map = builder().createPersistedTo(indexFile.toFile());
                }
                generation = gen;
                writeState(true, gen);
                try {
                    return op.run(map);
                } finally {
                    writeState(false, gen);
                }
            }
        } finally {
            jvmLock.unlock();
        }
    }

    private void writeState(boolean dirty, long gen) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(16);
        b.put(0, (byte) (dirty ? 1 : 0)).putLong(8, gen);
        lockChannel.write(b, 0);
    }

    private FileLock acquire() throws IOException {
        long deadline = System.nanoTime() + options.lockTimeout().toNanos();
        while (true) {
            FileLock l = lockChannel.tryLock();
            if (l != null) return l;
            if (System.nanoTime() > deadline)
                throw new IOException("snapshot store " + root + ": the index lock is held by another live process for more than "
                        + options.lockTimeout().toSeconds() + " s (" + root.resolve("index.lock") + ")");
            try {
                Thread.sleep(2);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted waiting for the index lock of " + root, e);
            }
        }
    }

    private ChronicleMapBuilder<String, byte[]> builder() {
        return ChronicleMapBuilder.of(String.class, byte[].class)
                .name("weft-snapshot-index")
                .entries(options.maxEntries())
                .averageKeySize(40)
                .averageValueSize(96)
                .skipCloseOnExitHook(true);
    }

    /** Test hook: takes the Chronicle Map write lock of {@code key}'s segment and never lets go. */
    void holdIndexLockForever(String key, Runnable whileHeld) throws IOException {
        locked(m -> {
            var ctx = m.queryContext(key);
            ctx.writeLock().lock();
            whileHeld.run();
            while (true) {
                try {
                    Thread.sleep(1000);
                } catch (InterruptedException e) {
                    return null;
                }
            }
        });
    }

    @Override
    public void close() {
        jvmLock.lock();
        try {
            if (closed) return;
            closed = true;
            if (map != null) map.close();
            lockChannel.close();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } finally {
            jvmLock.unlock();
        }
    }

    // ---------------------------------------------------------------- helpers

    static void checkNames(String job, String owner) {
        if (job == null || !NAME.matcher(job).matches())
            throw new IllegalArgumentException("job name '" + job + "' must be 1-100 characters of A-Z a-z 0-9 . _ -");
        if (owner == null || !NAME.matcher(owner).matches())
            throw new IllegalArgumentException("owner name '" + owner + "' must be 1-100 characters of A-Z a-z 0-9 . _ -");
    }

    static int crc32c(MemorySegment s) {
        CRC32C crc = new CRC32C();
        long n = s.byteSize();
        for (long at = 0; at < n; at += 1 << 30) crc.update(s.asSlice(at, Math.min(1L << 30, n - at)).asByteBuffer());
        return (int) crc.getValue();
    }

    private static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p)) return;
        try (var walk = Files.walk(p)) {
            for (Path q : walk.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(q);
        }
    }

    @Override
    public String toString() {
        return "SnapshotStore(" + root + ")";
    }
}
