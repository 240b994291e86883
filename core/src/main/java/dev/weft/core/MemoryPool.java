package dev.weft.core;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A caching allocator for off-heap memory in one tier (host memory here; device and disk tiers
 * come with offload). Freed blocks are kept by size and handed out again, so a training loop whose
 * shapes repeat allocates nothing new after its first step.
 *
 * <p>The pool counts live bytes (held by tensors), reserved bytes (live plus cached) and the peak
 * of each. An optional budget caps reserved bytes: an allocation that cannot fit even after the
 * cache is emptied fails with a {@link MemoryBudgetExceededException} that lists what was live.
 */
public final class MemoryPool {
    private static final long ALIGN = 64;
    private static final MemoryPool HOST = new MemoryPool("host", Long.MAX_VALUE);

    private final String name;
    private volatile long budget;
    private final Map<Long, ArrayDeque<MemorySegment>> cache = new HashMap<>();
    private final Map<MemorySegment, Arena> arenas = new IdentityHashMap<>();
    private final Map<Storage, Long> live = new IdentityHashMap<>();
    private long liveBytes, peakLiveBytes, reservedBytes, peakReservedBytes;

    public MemoryPool(String name, long budgetBytes) {
        if (budgetBytes <= 0) throw new IllegalArgumentException("memory budget must be positive, got " + budgetBytes);
        this.name = name;
        this.budget = budgetBytes;
    }

    /** The process-wide host-memory pool that tensors use unless told otherwise. */
    public static MemoryPool host() {
        return HOST;
    }

    public String name() {
        return name;
    }

    /** Sets the cap on reserved bytes; {@code Long.MAX_VALUE} means none. */
    public void setBudget(long budgetBytes) {
        if (budgetBytes <= 0) throw new IllegalArgumentException("memory budget must be positive, got " + budgetBytes);
        this.budget = budgetBytes;
    }

    public long budget() {
        return budget;
    }

    public synchronized long liveBytes() {
        return liveBytes;
    }

    public synchronized long peakLiveBytes() {
        return peakLiveBytes;
    }

    public synchronized long reservedBytes() {
        return reservedBytes;
    }

    public synchronized long peakReservedBytes() {
        return peakReservedBytes;
    }

    /** Starts a new peak measurement from the current figures. */
    public synchronized void resetPeaks() {
        peakLiveBytes = liveBytes;
        peakReservedBytes = reservedBytes;
    }

    /** Allocates {@code bytes} (not zeroed) for a tensor described by {@code label}. */
    public Storage allocate(long bytes, String label) {
        long size = roundUp(bytes);
        MemorySegment block;
        synchronized (this) {
            ArrayDeque<MemorySegment> free = cache.get(size);
            block = free == null ? null : free.poll();
            if (block == null) {
                if (reservedBytes + size > budget) trimLocked();
                if (reservedBytes + size > budget) throw exhausted(bytes, label);
                Arena arena = Arena.ofShared();
                block = arena.allocate(size, ALIGN);
                arenas.put(block, arena);
                reservedBytes += size;
                peakReservedBytes = Math.max(peakReservedBytes, reservedBytes);
            }
            Storage s = new Storage(this, block, bytes, label);
            live.put(s, size);
            liveBytes += size;
            peakLiveBytes = Math.max(peakLiveBytes, liveBytes);
            return s;
        }
    }

    synchronized void giveBack(Storage s) {
        Long size = live.remove(s);
        if (size == null) return;
        liveBytes -= size;
        cache.computeIfAbsent(size, k -> new ArrayDeque<>()).push(s.block);
    }

    /** Frees every cached (not live) block back to the operating system. */
    public synchronized void trim() {
        trimLocked();
    }

    private void trimLocked() {
        for (var e : cache.entrySet()) {
            for (MemorySegment block : e.getValue()) {
                arenas.remove(block).close();
                reservedBytes -= e.getKey();
            }
        }
        cache.clear();
    }

    /** Live bytes per allocation label ("parameters", "gradients", "optimizer state", ...). */
    public synchronized Map<String, Long> liveBytesByLabel() {
        Map<String, Long> out = new TreeMap<>();
        for (var e : live.entrySet()) out.merge(e.getKey().label(), e.getValue(), Long::sum);
        return out;
    }

    /** A short report of live memory grouped by label, largest first. */
    public synchronized String describeLive(int maxLines) {
        Map<String, long[]> byLabel = new HashMap<>();
        for (var e : live.entrySet()) {
            long[] acc = byLabel.computeIfAbsent(e.getKey().label(), k -> new long[2]);
            acc[0] += e.getValue();
            acc[1]++;
        }
        List<Map.Entry<String, long[]>> rows = new ArrayList<>(byLabel.entrySet());
        rows.sort((a, b) -> Long.compare(b.getValue()[0], a.getValue()[0]));
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < Math.min(maxLines, rows.size()); i++) {
            var r = rows.get(i);
            sb.append(String.format("  %-28s %10s in %d tensor(s)%n", r.getKey(), Bytes.human(r.getValue()[0]), r.getValue()[1]));
        }
        if (rows.size() > maxLines) sb.append("  ... and ").append(rows.size() - maxLines).append(" more labels\n");
        return sb.toString();
    }

    private MemoryBudgetExceededException exhausted(long bytes, String label) {
        return new MemoryBudgetExceededException(String.format(
                "memory pool '%s' is out of budget: allocating %s for '%s' would take it to %s, over the budget of %s.%n"
                        + "Live now: %s (peak %s). Largest live allocations:%n%s"
                        + "Lower the batch size or sequence length, or raise the budget.",
                name, Bytes.human(bytes), label, Bytes.human(reservedBytes + roundUp(bytes)), Bytes.human(budget),
                Bytes.human(liveBytes), Bytes.human(peakLiveBytes), describeLive(10)));
    }

    private static long roundUp(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("negative allocation: " + bytes);
        long b = Math.max(bytes, ALIGN);
        if (b <= (1 << 20)) return (b + ALIGN - 1) / ALIGN * ALIGN;
        // Above 1 MiB round to an eighth of the power of two, so similar sizes share cached blocks.
        long step = Long.highestOneBit(b) >> 3;
        return (b + step - 1) / step * step;
    }

    @Override
    public String toString() {
        return String.format("MemoryPool[%s live=%s peak=%s reserved=%s]", name, Bytes.human(liveBytes()),
                Bytes.human(peakLiveBytes()), Bytes.human(reservedBytes()));
    }

    /** Exposed for tests: the number of distinct cached block sizes. */
    synchronized int cachedSizes() {
        return new TreeMap<>(cache).size();
    }
}
