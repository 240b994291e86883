package dev.weft.checkpoint;

import java.util.List;
import java.util.Optional;

/** One owner's state after one step: a record plus named chunks. Versioned by {@code record.step()}. */
public record Snapshot(SnapshotRecord record, List<Chunk> chunks) {
    public Snapshot {
        chunks = List.copyOf(chunks);
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (Chunk c : chunks)
            if (!seen.add(c.name() + java.util.Arrays.toString(c.offsets())))
                throw new IllegalArgumentException("snapshot has two chunks named '" + c.name() + "' at the same offsets");
    }

    public long step() { return record.step(); }

    public Optional<Chunk> chunk(String name) {
        return chunks.stream().filter(c -> c.name().equals(name)).findFirst();
    }

    /** Bytes of chunk data (without metadata). */
    public long dataBytes() {
        return chunks.stream().mapToLong(c -> c.bytes().byteSize()).sum();
    }
}
