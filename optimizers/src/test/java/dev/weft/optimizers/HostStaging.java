package dev.weft.optimizers;

import dev.weft.core.Storage;
import dev.weft.core.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * State offloaded to plain off-heap "host" buffers, as an offloader would do it: each state
 * tensor's own memory is evicted once, its bytes live in a host buffer, and acquiring a parameter
 * copies them into a staging buffer bound to the tensor, which release copies back and unbinds.
 * Each acquire binds the other of two staging buffers and release poisons the one it unbinds, so a
 * run that matches resident state bit for bit proves the optimizer reads and writes state only
 * while it is held and keeps no memory of it across releases.
 */
final class HostStaging implements StateResidency, AutoCloseable {
    private static final byte POISON = (byte) 0x7f; // 0x7f7f7f7f: a large finite float, never silently harmless

    private final Arena arena = Arena.ofShared();
    private final Map<Tensor, MemorySegment[]> buffers = new IdentityHashMap<>(); // {host, staging A, staging B}
    private final Map<Tensor, Integer> flips = new IdentityHashMap<>();
    private final Map<String, List<Tensor>> owned;
    private String held;
    int acquires;

    /** Moves every state tensor of {@code o} to host memory and sets this as its residency. */
    static HostStaging install(Optimizer o) {
        HostStaging h = new HostStaging(o.stateByParameter());
        o.residency(h);
        return h;
    }

    private HostStaging(Map<String, List<Tensor>> state) {
        owned = Map.copyOf(state);
        state.values().forEach(ts -> ts.forEach(t -> {
            Storage st = t.storage();
            assertEquals(0, t.offset(), t.name());
            assertEquals(t.numel() * t.dtype().bytes(), st.bytes(), t.name() + " owns its whole storage");
            MemorySegment host = arena.allocate(st.bytes(), 64);
            MemorySegment.copy(st.segment(), 0, host, 0, st.bytes());
            st.evict();
            buffers.put(t, new MemorySegment[] {host, arena.allocate(st.bytes(), 64).fill(POISON), arena.allocate(st.bytes(), 64).fill(POISON)});
            flips.put(t, 2);
        }));
    }

    int parameters() {
        return owned.size();
    }

    @Override
    public void acquire(String parameter, List<Tensor> state) {
        assertNull(held, "acquire of " + parameter + " while " + held + " is held");
        assertSame(owned.get(parameter), state, parameter);
        held = parameter;
        acquires++;
        for (Tensor t : state) {
            MemorySegment[] b = buffers.get(t);
            int k = flips.merge(t, 1, (x, y) -> 3 - x); // alternates 1, 2, 1, ...
            MemorySegment.copy(b[0], 0, b[k], 0, b[0].byteSize());
            t.storage().bind(b[k]);
        }
    }

    @Override
    public void release(String parameter, List<Tensor> state) {
        assertEquals(held, parameter);
        held = null;
        for (Tensor t : state) {
            MemorySegment[] b = buffers.get(t);
            MemorySegment staged = b[flips.get(t)];
            MemorySegment.copy(staged, 0, b[0], 0, staged.byteSize());
            t.storage().unbind();
            staged.fill(POISON);
            assertTrue(!t.storage().isBound(), t.name());
        }
    }

    @Override
    public void close() {
        arena.close();
    }
}
