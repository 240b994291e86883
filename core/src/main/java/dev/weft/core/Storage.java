package dev.weft.core;

import java.lang.foreign.MemorySegment;

/**
 * A block of off-heap memory owned by a {@link MemoryPool}. Tensors and their views share a
 * storage and count references to it; the last release returns the block to its pool.
 *
 * <p>A parameter sharded under ZeRO-3 keeps its tensor but not its memory: {@link #evict()} gives
 * the block back, and {@link #bind(MemorySegment)} lends the storage memory owned elsewhere (its
 * slice of a gathered buffer) while the parameter is in use; offloaded optimizer state does the
 * same with host or disk staging buffers. Touching an unbound storage is an
 * error that names it, never a read of stale memory.
 */
public final class Storage {
    private final MemoryPool pool;
    final MemorySegment block;   // the pool's (possibly larger, cached) block
    private final long bytes;
    private volatile MemorySegment segment; // exactly the requested bytes; null while evicted and unbound (volatile: offload evicts from its I/O threads)
    private boolean evicted;
    private final String label;
    private int refs = 1;
    private Pager pager;

    /**
     * Brings an offloaded storage back when something touches it outside the streaming path that
     * normally binds it ahead of need (a checkpoint reading optimizer state kept on disk): the
     * pager binds memory of its own to the storage and answers it. Offload installs one on every
     * storage it evicts; it unbinds what it paged in at its next settle.
     */
    public interface Pager {
        MemorySegment pageIn(Storage s);
    }

    Storage(MemoryPool pool, MemorySegment block, long bytes, String label) {
        this.pool = pool;
        this.block = block;
        this.bytes = bytes;
        this.segment = block.asSlice(0, bytes);
        this.label = label;
    }

    public MemorySegment segment() {
        MemorySegment s = segment;
        if (s == null && pager != null && refs > 0) s = pager.pageIn(this);
        if (s == null) throw new IllegalStateException("'" + label + "' has no memory bound: it is sharded or offloaded, and lives elsewhere until a gather or a fetch binds it");
        if (refs <= 0) throw new IllegalStateException("use of released storage '" + label + "'");
        return s;
    }

    public long bytes() {
        return bytes;
    }

    /** Gives the block back to the pool now; the storage stays, unbound, for {@link #bind}. */
    public synchronized void evict() {
        if (evicted) return;
        evicted = true;
        segment = null;
        pool.giveBack(this);
    }

    /** Lends this evicted storage {@code memory} (exactly its size, owned by someone else) until {@link #unbind()}. */
    public synchronized void bind(MemorySegment memory) {
        if (!evicted) throw new IllegalStateException("bind of storage '" + label + "' that still holds its own memory");
        if (memory.byteSize() != bytes) throw new IllegalArgumentException("bind of " + memory.byteSize() + " bytes to storage '" + label + "' of " + bytes);
        segment = memory;
    }

    /** Installs (or, with null, removes) the pager asked for memory when this evicted, unbound storage is touched. */
    public synchronized void pager(Pager p) {
        this.pager = p;
    }

    public synchronized void unbind() {
        if (evicted) segment = null;
    }

    public synchronized boolean isBound() {
        return segment != null;
    }

    public String label() {
        return label;
    }

    public MemoryPool pool() {
        return pool;
    }

    synchronized void retain() {
        if (refs <= 0) throw new IllegalStateException("retain of released storage '" + label + "'");
        refs++;
    }

    void release() {
        boolean last;
        synchronized (this) {
            if (refs <= 0) return;
            last = --refs == 0;
        }
        if (last && !evicted) pool.giveBack(this);
    }

    synchronized boolean isReleased() {
        return refs <= 0;
    }
}
