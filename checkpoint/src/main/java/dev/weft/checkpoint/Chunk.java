package dev.weft.checkpoint;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * One named, layout-independent piece of state: the slab [offsets, offsets + lengths) of the
 * tensor {@code name} (a parameter FQN or an optimizer-state name) whose global shape is
 * {@code globalShape}, and its bytes. Addressed by name and coordinates, never by rank, so a
 * snapshot taken under one parallel layout can be read under another.
 */
public record Chunk(String name, long[] globalShape, long[] offsets, long[] lengths, MemorySegment bytes) {
    public Chunk {
        if (name == null || name.isEmpty()) throw new IllegalArgumentException("chunk name must be non-empty");
        globalShape = globalShape.clone();
        offsets = offsets.clone();
        lengths = lengths.clone();
        if (offsets.length != globalShape.length || lengths.length != globalShape.length)
            throw new IllegalArgumentException("chunk '" + name + "': shape " + Arrays.toString(globalShape) + ", offsets "
                    + Arrays.toString(offsets) + " and lengths " + Arrays.toString(lengths) + " must have the same rank");
        for (int d = 0; d < globalShape.length; d++)
            if (offsets[d] < 0 || lengths[d] < 0 || offsets[d] + lengths[d] > globalShape[d])
                throw new IllegalArgumentException("chunk '" + name + "': dimension " + d + " slab [" + offsets[d] + ", "
                        + (offsets[d] + lengths[d]) + ") lies outside the global size " + globalShape[d]);
    }

    /** A chunk whose bytes are copied off-heap from an array (handy for tests and small state). */
    public static Chunk of(String name, long[] globalShape, long[] offsets, long[] lengths, byte[] bytes) {
        MemorySegment s = Arena.ofAuto().allocate(Math.max(1, bytes.length), 64).asSlice(0, bytes.length);
        MemorySegment.copy(bytes, 0, s, ValueLayout.JAVA_BYTE, 0, bytes.length);
        return new Chunk(name, globalShape, offsets, lengths, s);
    }

    /** A whole (unsharded) tensor of the given shape. */
    public static Chunk whole(String name, long[] shape, byte[] bytes) {
        return of(name, shape, new long[shape.length], shape, bytes);
    }

    @Override public long[] globalShape() { return globalShape.clone(); }
    @Override public long[] offsets() { return offsets.clone(); }
    @Override public long[] lengths() { return lengths.clone(); }

    public byte[] toByteArray() {
        return bytes.toArray(ValueLayout.JAVA_BYTE);
    }

    /** Same name, coordinates and bytes. */
    public boolean sameAs(Chunk o) {
        return name.equals(o.name) && Arrays.equals(globalShape, o.globalShape) && Arrays.equals(offsets, o.offsets)
                && Arrays.equals(lengths, o.lengths) && bytes.byteSize() == o.bytes.byteSize() && bytes.mismatch(o.bytes) < 0;
    }

    @Override public boolean equals(Object o) { return o instanceof Chunk c && sameAs(c); }
    @Override public int hashCode() { return name.hashCode() * 31 + Arrays.hashCode(offsets); }

    @Override
    public String toString() {
        return name + Arrays.toString(offsets) + "+" + Arrays.toString(lengths) + " of " + Arrays.toString(globalShape)
                + " (" + bytes.byteSize() + " bytes)";
    }
}
