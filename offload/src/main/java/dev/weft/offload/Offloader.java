package dev.weft.offload;

import dev.weft.core.Bytes;
import dev.weft.core.DType;
import dev.weft.core.MemoryPool;
import dev.weft.core.Scope;
import dev.weft.core.Storage;
import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * Moves whole storages between the device pool and the host or disk tier, and back ahead of need.
 * An offloaded storage keeps its tensors (and their names, shapes, views): only its memory goes.
 * The cycle is explicit, as in Agrona: {@link #offload} sends the bytes out and evicts the device
 * memory once they are safe; {@link #prefetch} starts them back into a fresh device buffer;
 * {@link #acquire} waits for them and binds the buffer to the storage; {@link #release} writes
 * them back if they changed and unbinds. Acquires nest (a ZeRO-3 shard holds several
 * parameters), and bytes in flight back are bounded.
 *
 * <p>Whatever touches an offloaded storage outside that cycle (a checkpoint reading optimizer
 * state kept on disk) pages it in through the storage's {@link Storage.Pager}; {@link #settle}
 * writes such pages back and unbinds them. Bytes are copied, never converted: offload cannot
 * change a bit of training.
 */
public final class Offloader implements AutoCloseable {
    private final MemoryPool device;
    private final HostTier host;
    private final DiskTier disk; // null: no disk tier configured
    private final long prefetchBytes;
    private final ExecutorService copies; // host-tier copies, off the compute thread
    private final Map<Storage, Handle> handles = new IdentityHashMap<>();
    private final List<Handle> paged = new ArrayList<>();
    private final ArrayDeque<Handle> writing = new ArrayDeque<>(); // write-backs whose device buffer is still held
    private long inFlight;
    private long moved; // bytes copied either way, for the report
    private long pageIns;

    /** One offloaded storage. */
    public final class Handle {
        final Storage storage;
        final long bytes;
        final Tier tier;
        final String label;
        Tensor hostCopy;          // HOST: the bytes
        DiskTier.Extent extent;   // DISK: where the bytes are
        Tensor resident;          // the device buffer while in flight back, bound, or being written back
        Tensor paged;             // DISK: the host buffer a touch outside the cycle paged the bytes into
        CompletableFuture<Void> incoming, outgoing;
        int pins;

        Handle(Storage storage, Tier tier, String label) {
            this.storage = storage;
            this.bytes = storage.bytes();
            this.tier = tier;
            this.label = label;
        }

        public Tier tier() {
            return tier;
        }

        public long bytes() {
            return bytes;
        }
    }

    /**
     * An offloader from {@code device} to {@code host} and (when not null) {@code disk}, keeping
     * at most {@code prefetchBytes} in flight back to the device ahead of need.
     */
    public Offloader(MemoryPool device, HostTier host, DiskTier disk, long prefetchBytes) {
        this.device = device;
        this.host = host;
        this.disk = disk;
        this.prefetchBytes = prefetchBytes;
        this.copies = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "weft-offload-copy");
            t.setDaemon(true);
            return t;
        });
    }

    public HostTier host() {
        return host;
    }

    /** The disk tier, or null when none is configured. */
    public DiskTier disk() {
        return disk;
    }

    /**
     * Sends {@code t}'s whole storage to {@code tier} and frees its device memory once the bytes
     * are there. The storage's tensors must not be used until {@link #acquire}.
     */
    public Handle offload(Tensor t, Tier tier, String label) {
        Storage s = t.storage();
        if (tier == Tier.DEVICE) throw new IllegalArgumentException("offload of '" + label + "' to the device tier");
        if (tier == Tier.DISK && disk == null) throw new IllegalStateException("offload of '" + label + "' to disk without a disk tier");
        if (handles.containsKey(s)) throw new IllegalStateException("'" + label + "' is offloaded already");
        Handle h = new Handle(s, tier, label);
        MemorySegment src = s.segment();
        if (tier == Tier.HOST) {
            h.hostCopy = host.allocate(h.bytes, label);
            MemorySegment dst = h.hostCopy.data();
            h.outgoing = CompletableFuture.runAsync(() -> {
                MemorySegment.copy(src, 0, dst, 0, h.bytes);
                s.evict();
            }, copies);
        } else {
            h.extent = disk.write(src, label);
            h.outgoing = h.extent.written().thenRun(s::evict); // the device memory goes once the bytes are on disk
        }
        moved += h.bytes;
        s.pager(this::pageIn);
        handles.put(s, h);
        return h;
    }

    /** The handle of an offloaded storage, or null. */
    public Handle handleOf(Tensor t) {
        return handles.get(t.storage());
    }

    /** Starts bringing {@code h} back into a device buffer, unless it is resident or the prefetch bound is reached. */
    public void prefetch(Handle h) {
        if (h.resident != null) return;
        if (inFlight + h.bytes > prefetchBytes && inFlight > 0) return; // acquire fetches it on demand
        fetch(h);
    }

    private void fetch(Handle h) {
        awaitOutgoing(h);
        h.resident = Scope.outside(() -> Tensor.allocate(device, DType.F32, h.label, Math.toIntExact((h.bytes + 3) / 4)));
        MemorySegment dst = h.resident.data().asSlice(0, h.bytes);
        inFlight += h.bytes;
        h.incoming = h.tier == Tier.HOST
                ? CompletableFuture.runAsync(() -> MemorySegment.copy(h.hostCopy.data(), 0, dst, 0, h.bytes), copies)
                : disk.read(h.extent, dst);
        moved += h.bytes;
    }

    /** Makes {@code h}'s bytes resident and bound (waiting for them if they are still in flight); acquires nest. */
    public void acquire(Handle h) {
        if (h.pins++ > 0) return;
        unpage(h);
        if (h.resident == null) fetch(h);
        if (h.incoming != null) {
            join(h.incoming, h);
            h.incoming = null;
            inFlight -= h.bytes;
        }
        h.storage.bind(h.resident.data().asSlice(0, h.bytes));
    }

    /**
     * Ends one {@link #acquire}; the last one unbinds the storage and, when {@code dirty}, writes
     * the bytes back first (to host at once, to disk on the I/O threads).
     */
    public void release(Handle h, boolean dirty) {
        if (h.pins <= 0) throw new IllegalStateException("release of '" + h.label + "' that is not acquired");
        if (--h.pins > 0) return;
        h.storage.unbind();
        Tensor buffer = h.resident;
        h.resident = null;
        if (!dirty) {
            buffer.close();
            return;
        }
        moved += h.bytes;
        if (h.tier == Tier.HOST) {
            MemorySegment.copy(buffer.data(), 0, h.hostCopy.data(), 0, h.bytes);
            buffer.close();
            return;
        }
        DiskTier.Extent old = h.extent;
        h.extent = disk.write(buffer.data().asSlice(0, h.bytes), h.label);
        disk.free(old);
        h.outgoing = h.extent.written();
        writing.add(h);
        h.outgoing.whenComplete((v, t) -> buffer.close()); // the source must outlive the write
        while (writing.size() > 1 && writtenBytes() > prefetchBytes) awaitOutgoing(writing.peekFirst());
    }

    /** A storage paged in outside the cycle and now acquired: its paged bytes are the newest, so the tier gets them first. */
    private void unpage(Handle h) {
        if (!paged.remove(h)) return;
        h.storage.unbind();
        if (h.resident != null) { // a prefetch may have read the bytes from before the page-in's writes: read again
            if (h.incoming != null) {
                join(h.incoming, h);
                h.incoming = null;
                inFlight -= h.bytes;
            }
            h.resident.close();
            h.resident = null;
        }
        if (h.paged == null) return;
        DiskTier.Extent old = h.extent;
        h.extent = disk.write(h.paged.data().asSlice(0, h.bytes), h.label);
        disk.free(old);
        join(h.extent.written(), h);
        h.paged.close();
        h.paged = null;
    }

    /** True while {@code h} is acquired. */
    public boolean isAcquired(Handle h) {
        return h.pins > 0;
    }

    private long writtenBytes() {
        long b = 0;
        for (Handle w : writing) b += w.bytes;
        return b;
    }

    /** Waits until {@code h}'s bytes have left the device (its offload or write-back is done). */
    public void awaitSent(Handle h) {
        awaitOutgoing(h);
    }

    private void awaitOutgoing(Handle h) {
        if (h.outgoing == null) return;
        join(h.outgoing, h);
        h.outgoing = null;
        writing.remove(h);
    }

    /** Forgets {@code h}: frees its copy on the tier. Its storage stays evicted; touching it is an error. */
    public void drop(Handle h) {
        if (h.pins > 0) throw new IllegalStateException("drop of '" + h.label + "' while acquired");
        h.storage.pager(null);
        handles.remove(h.storage);
        if (h.incoming != null) {
            join(h.incoming, h);
            inFlight -= h.bytes;
        }
        if (h.resident != null) h.resident.close();
        if (h.paged != null) h.paged.close();
        paged.remove(h);
        if (h.hostCopy != null) h.hostCopy.close();
        if (h.extent != null) disk.free(h.extent);
        h.resident = null;
        h.hostCopy = null;
        h.extent = null;
    }

    /**
     * Binds an offloaded storage that was touched outside the cycle to host memory, never to the
     * device: its host copy itself, or a host buffer read from disk. A checkpoint of offloaded
     * state thus costs no device memory.
     */
    private synchronized MemorySegment pageIn(Storage s) {
        Handle h = handles.get(s);
        if (h == null) return null;
        if (!s.isBound()) {
            awaitOutgoing(h);
            if (h.tier == Tier.HOST) {
                s.bind(h.hostCopy.data().asSlice(0, h.bytes));
            } else {
                h.paged = host.allocate(h.bytes, h.label);
                MemorySegment dst = h.paged.data().asSlice(0, h.bytes);
                join(disk.read(h.extent, dst), h);
                s.bind(dst);
                moved += h.bytes;
            }
            paged.add(h);
            pageIns++;
        }
        return s.segment();
    }

    /** Unbinds every storage paged in outside the cycle (after a checkpoint save or load), writing back what came from disk. */
    public synchronized void settle() {
        for (Handle h : paged) {
            if (h.pins > 0 || !h.storage.isBound()) continue; // acquired since: the cycle owns it now
            h.storage.unbind();
            if (h.paged == null) continue;
            Tensor buffer = h.paged;
            h.paged = null;
            DiskTier.Extent old = h.extent;
            h.extent = disk.write(buffer.data().asSlice(0, h.bytes), h.label);
            disk.free(old);
            moved += h.bytes;
            join(h.extent.written(), h);
            buffer.close();
        }
        paged.clear();
        for (Handle h : new ArrayList<>(writing)) awaitOutgoing(h);
    }

    /** Waits for every write to the tiers: after it, a crash loses nothing written so far. */
    public void flush() {
        for (Handle h : new ArrayList<>(writing)) awaitOutgoing(h);
        for (Handle h : handles.values()) if (h.outgoing != null) awaitOutgoing(h);
    }

    /** How many times a storage was paged in outside the prefetch/acquire cycle (a checkpoint, or a gap in a stream). */
    public synchronized long pageIns() {
        return pageIns;
    }

    /** Bytes copied between the tiers so far, either way. */
    public long movedBytes() {
        return moved;
    }

    private static void join(CompletableFuture<Void> f, Handle h) {
        try {
            f.join();
        } catch (CompletionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            throw new IllegalStateException("offload of '" + h.label + "' (" + Bytes.human(h.bytes) + ") failed: " + e.getCause(), e.getCause());
        }
    }

    /**
     * Drops every handle (their tensors stay evicted) and stops the copy thread. It throws no
     * transfer failure: the tiers' bytes are discarded here, and every write a caller reads back
     * was waited for (and its failure thrown) by the acquire, settle or flush that needed it. Were
     * close to rethrow that failure, a try-with-resources around the failed run would add it to
     * itself as suppressed and throw "Self-suppression not permitted" in its place.
     */
    @Override
    public void close() {
        for (Handle h : new ArrayList<>(handles.values())) {
            h.pins = 0;
            h.storage.unbind();
            h.incoming = quietly(h.incoming);
            h.outgoing = quietly(h.outgoing);
            drop(h);
        }
        writing.clear();
        copies.shutdown();
    }

    /** {@code f} once done, failed or not; null stands for done. */
    private static CompletableFuture<Void> quietly(CompletableFuture<Void> f) {
        if (f != null) f.handle((v, t) -> null).join();
        return null;
    }
}
