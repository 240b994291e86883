package dev.weft.core;

import java.lang.foreign.MemorySegment;

/**
 * A block of off-heap memory owned by a {@link MemoryPool}. Tensors and their views share a
 * storage and count references to it; the last release returns the block to its pool.
 */
public final class Storage {
    private final MemoryPool pool;
    final MemorySegment block;   // the pool's (possibly larger, cached) block
    private final MemorySegment segment; // exactly the requested bytes
    private final String label;
    private int refs = 1;

    Storage(MemoryPool pool, MemorySegment block, long bytes, String label) {
        this.pool = pool;
        this.block = block;
        this.segment = block.asSlice(0, bytes);
        this.label = label;
    }

    public MemorySegment segment() {
        if (refs <= 0) throw new IllegalStateException("use of released storage '" + label + "'");
        return segment;
    }

    public long bytes() {
        return segment.byteSize();
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
        if (last) pool.giveBack(this);
    }

    synchronized boolean isReleased() {
        return refs <= 0;
    }
}
