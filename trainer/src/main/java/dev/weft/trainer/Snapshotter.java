package dev.weft.trainer;

import dev.weft.checkpoint.DistributedSnapshots;
import dev.weft.checkpoint.Snapshot;
import dev.weft.checkpoint.SnapshotStore;
import dev.weft.core.Bytes;
import dev.weft.parallel.InJvmTransport;
import dev.weft.parallel.ProcessGroup;
import dev.weft.trainer.config.TrainConfig;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.IntStream;

/**
 * Every-step in-memory snapshots of one rank, in the manner of Gemini and REFT. After an optimizer
 * step the rank's state is copied into host memory; in the background it is erasure-coded across
 * failure domains and committed ({@link DistributedSnapshots}). The training thread waits only
 * when the copy is not done by the next optimizer step (the copy reads what only an optimizer step
 * writes, so it overlaps the next forward and backward), or when both copy buffers are still
 * being shipped.
 *
 * <p>Offloaded state moves between tiers under the step, so with offload the copy runs on the
 * training thread.
 */
final class Snapshotter implements AutoCloseable {
    /** What snapshots cost and reached so far. */
    record Figures(long count, long bytes, long stallNanos, long saveNanos, long committed) {}

    private final TrainConfig.Snapshots cfg;
    private final int domainCount;
    private final int[] code;
    private final DistributedSnapshots snapshots;
    private final TrainingState state;
    private final ProcessGroup group;
    private final ProcessGroup own; // a one-rank group for a single process; null under weft launch
    private final boolean overlap;
    private final byte[] configJson;
    private final long seed;
    private final Path scratch;
    private final ExecutorService copier = Executors.newSingleThreadExecutor(Thread.ofPlatform().daemon().name("weft-snapshot-copy").factory());
    private final ExecutorService saver = Executors.newSingleThreadExecutor(Thread.ofPlatform().daemon().name("weft-snapshot-save").factory());
    private final SnapshotBuffer[] buffers = {new SnapshotBuffer(), new SnapshotBuffer()};
    private final Future<?>[] saving = new Future<?>[2]; // the save still reading each buffer
    private int next;
    private Future<?> copying;
    private volatile Throwable failure;
    private long count, stallNanos;
    private volatile long saveNanos, committed = -1, bytes;

    private Snapshotter(TrainConfig.Snapshots cfg, DistributedSnapshots snapshots, int domainCount, int[] code, TrainingState state, ProcessGroup group,
                        ProcessGroup own, boolean overlap, byte[] configJson, long seed, Path scratch) {
        this.cfg = cfg;
        this.domainCount = domainCount;
        this.code = code;
        this.snapshots = snapshots;
        this.state = state;
        this.group = group;
        this.own = own;
        this.overlap = overlap;
        this.configJson = configJson;
        this.seed = seed;
        this.scratch = scratch;
    }

    /** Every rank of {@code dist} (null: one process) calls this alike; it makes the snapshot group and opens this rank's store. */
    static Snapshotter open(TrainConfig cfg, DistributedContext dist, TrainingState state, boolean overlap, String tokenizer) {
        TrainConfig.Snapshots sc = cfg.snapshot();
        ProcessGroup own = dist == null ? InJvmTransport.world(1, Duration.ofSeconds(cfg.distributed().timeoutSeconds())).getFirst() : null;
        ProcessGroup group = own != null ? own : dist.group().subgroup("snapshot", IntStream.range(0, dist.size()).toArray());
        int world = group.size();
        DistributedSnapshots.Domains domains = sc.domain().equals("rank") ? DistributedSnapshots.Domains.perRank(world)
                : DistributedSnapshots.Domains.perNode(world, dist == null ? 1 : dist.ranksPerNode());
        int[] code = sc.code(domains.count());
        try {
            Files.createDirectories(sc.store());
            DistributedSnapshots ds = new DistributedSnapshots(group, sc.store(), SnapshotStore.Options.defaults().withBudget(sc.budgetBytes()),
                    sc.job(), domains, code[0], code[1]);
            Path tmp = Files.createTempFile(sc.store(), ".config", ".json");
            HfConfig.write(tmp, cfg.model(), tokenizer);
            byte[] configJson = Files.readAllBytes(tmp);
            Files.delete(tmp);
            Path scratch = sc.store().resolve("restore").resolve(sc.job() + "-" + DistributedSnapshots.owner(group.rank()));
            return new Snapshotter(sc, ds, domains.count(), code, state, group, own, overlap, configJson, cfg.train().seed(), scratch);
        } catch (IOException e) {
            if (own != null) own.close();
            throw new UncheckedIOException("snapshot: cannot open the store under " + sc.store() + ": " + e.getMessage(), e);
        }
    }

    /** The line that says what is snapshotted where. */
    String describe() {
        return String.format("snapshot: every %d step(s) in memory, RS(%d, %d) over %d %s domain(s), stores in %s (job %s)%s", cfg.every(), code[0], code[1],
                domainCount, cfg.domain(), cfg.store(), cfg.job(), code[1] == 0 ? "; no parity: a lost node loses its snapshots (the disk checkpoint remains)" : "");
    }

    /** Takes the snapshot of the state after step {@code step} (steps done), tokens seen so far. */
    void capture(long step, long tokensSeen) {
        long t0 = System.nanoTime();
        rethrow();
        int b = next;
        next ^= 1;
        await(saving[b]); // the save of two snapshots ago must be done with this buffer
        Runnable copy = () -> {
            Snapshot s = state.snapshot(buffers[b], step, tokensSeen, seed, configJson);
            saving[b] = saver.submit(() -> save(s));
        };
        if (overlap) copying = copier.submit(copy);
        else copy.run();
        count++;
        stallNanos += System.nanoTime() - t0;
    }

    /** Waits for the copy before the optimizer step overwrites what it reads. */
    void beforeUpdate() {
        if (copying == null) return;
        long t0 = System.nanoTime();
        await(copying);
        copying = null;
        stallNanos += System.nanoTime() - t0;
    }

    private void save(Snapshot s) {
        if (failure != null) return;
        long t0 = System.nanoTime();
        try {
            snapshots.save(s);
            committed = s.step();
            bytes += s.dataBytes();
            saveNanos += System.nanoTime() - t0;
        } catch (Throwable e) {
            failure = e;
        }
    }

    /** Waits until every snapshot taken has committed (or failed, which is rethrown). */
    void finish() {
        beforeUpdate();
        for (Future<?> f : saving) await(f);
        rethrow();
    }

    Figures figures() {
        return new Figures(count, bytes, stallNanos, saveNanos, committed);
    }

    /** One line of what the run's snapshots cost. */
    String summary(long trainNanos) {
        Figures f = figures();
        double perStep = f.count() == 0 ? 0 : f.stallNanos() / 1e6 / f.count();
        return String.format("snapshot: %d taken, newest committed step %d, %s each; stall %.2f ms per snapshot (%.2f%% of training time); coded, shipped and committed at %.1f MB/s",
                f.count(), f.committed(), Bytes.human(f.count() == 0 ? 0 : f.bytes() / Math.max(1, f.count())), perStep,
                trainNanos == 0 ? 0 : 100.0 * f.stallNanos() / trainNanos, f.saveNanos() == 0 ? 0 : f.bytes() / (f.saveNanos() / 1e9) / 1e6)
                + " (" + snapshots.phases() + ")";
    }

    /**
     * Restores every rank from the newest globally committed snapshot (collective). Empty when no
     * domain holds one; {@link dev.weft.checkpoint.UnrecoverableSnapshotException} when too many
     * pieces are lost.
     */
    Optional<Restore> restore() throws IOException {
        long t0 = System.nanoTime();
        Optional<DistributedSnapshots.Restored> r = snapshots.restore();
        if (r.isEmpty()) return Optional.empty();
        try (DistributedSnapshots.Restored pieces = r.get()) {
            Checkpoint.State st = state.restore(pieces.snapshot(), scratch, seed);
            return Optional.of(new Restore(st, pieces, System.nanoTime() - t0));
        }
    }

    /** A restore from memory: the trainer state, what the pieces took, and how long it took. */
    record Restore(Checkpoint.State state, DistributedSnapshots.Restored pieces, long nanos) {
        String line() {
            var p = pieces;
            return String.format("snapshot: restored step %d from memory in %.0f ms (%d local piece(s), %d fetched from other domains, %d rebuilt from parity)%s",
                    p.step(), nanos / 1e6, p.localPieces(), p.fetchedPieces(), p.rebuiltPieces(), p.problems().isEmpty() ? "" : "; " + String.join("; ", p.problems()));
        }
    }

    /** Drops snapshots newer than {@code step} from every store (collective): a run that starts at {@code step} must not restore another's future. */
    void discardAfter(long step) throws IOException {
        snapshots.discardAfter(step);
    }

    private static void await(Future<?> f) {
        if (f == null) return;
        try {
            f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a snapshot", e);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof RuntimeException re ? re : new IllegalStateException("snapshot failed: " + e.getCause(), e.getCause());
        }
    }

    private void rethrow() {
        Throwable f = failure;
        if (f == null) return;
        if (f instanceof IOException io) throw new UncheckedIOException("snapshot failed: " + io.getMessage(), io);
        if (f instanceof RuntimeException re) throw re;
        throw new IllegalStateException("snapshot failed: " + f, f);
    }

    @Override
    public void close() {
        // a save in flight finishes (its peers are closing alike); one whose peer died ends with the group's timeout or the process
        copier.shutdown();
        try {
            boolean copied = copier.awaitTermination(30, java.util.concurrent.TimeUnit.SECONDS); // a copy hands its save over when done
            saver.shutdown();
            if (copied && saver.awaitTermination(30, java.util.concurrent.TimeUnit.SECONDS)) {
                for (SnapshotBuffer b : buffers) b.close();
                snapshots.close();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (own != null) own.close();
    }
}
