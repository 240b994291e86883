package dev.weft.trainer;

import dev.weft.checkpoint.Chunk;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.function.Consumer;

/**
 * Host memory a snapshot's bytes are copied into, kept from one snapshot to the next (fresh memory
 * costs a page fault per 4 KiB, as much as the copy), and grown when the state grows. It is
 * released explicitly, not by a GC.
 */
final class SnapshotBuffer implements AutoCloseable {
    private Arena arena;
    private MemorySegment memory;

    /** At least {@code bytes} of this buffer; earlier contents are not kept when it grows. */
    MemorySegment reserve(long bytes) {
        if (memory == null || memory.byteSize() < bytes) {
            close();
            arena = Arena.ofShared();
            memory = arena.allocate(Math.max(1, bytes + bytes / 8), 64); // room for the state to grow a little
        }
        return memory;
    }

    /** Writes one file's bytes at {@code at} of {@code all} and adds it as a whole chunk named by its path; returns the next offset (64-aligned). */
    static long put(List<Chunk> chunks, String name, MemorySegment all, long at, long length, Consumer<MemorySegment> write) {
        MemorySegment slice = all.asSlice(at, length);
        write.accept(slice);
        chunks.add(new Chunk(name, new long[] {length}, new long[] {0}, new long[] {length}, slice));
        return (at + length + 63) / 64 * 64;
    }

    @Override
    public void close() {
        if (arena != null) arena.close();
        arena = null;
        memory = null;
    }
}
