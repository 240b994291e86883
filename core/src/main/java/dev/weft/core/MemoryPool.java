package dev.weft.core;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A caching allocator for off-heap memory in one tier (host memory here; device and disk tiers
 * come with offload). Requests are rounded up to size classes and freed blocks are kept per class
 * and handed out again, so a training loop whose shapes repeat allocates nothing new after its
 * first step: a class never holds more blocks than were live in it at once.
 *
 * <p>The pool counts live bytes (the bytes tensors asked for, 64-byte aligned), reserved bytes
 * (the blocks it holds, live or cached, at their class size) and the peak of each. The cache is
 * bounded: when a request misses and the cached blocks exceed {@link #cacheLimit()}, the classes
 * used longest ago are freed first, so workloads whose shapes keep changing (generation without a
 * KV cache, growing sequence lengths) do not pile up blocks they will never reuse. A loop that
 * repeats never misses after its first step, so it never evicts. An optional budget caps reserved
 * bytes: an allocation that cannot fit even after the cache is emptied fails with a
 * {@link MemoryBudgetExceededException} that lists what was live.
 *
 * <p>Blocks of {@value #MAPPED_BLOCK} bytes or more are mapped straight from the operating system
 * (on Linux): pages are only resident once written, and freeing unmaps them, where malloc would
 * keep them in its heap. Smaller blocks come from malloc, and {@link #trim()} asks malloc to hand
 * its free pages back.
 */
public final class MemoryPool {
    private static final long ALIGN = 64;
    /** Up to this size classes are 64 bytes apart; above it there are eight classes per power of two. */
    private static final long FINE_CLASSES = 16 << 10;
    static final long MAPPED_BLOCK = 64 << 10;
    /** The cache may always hold this much, whatever the live high-water mark. */
    private static final long MIN_CACHE_LIMIT = 64L << 20;
    private static final MemoryPool HOST = new MemoryPool("host", Long.MAX_VALUE);

    private final String name;
    private volatile long budget;
    private final Map<Long, FreeList> cache = new HashMap<>();
    private final Map<MemorySegment, Arena> arenas = new IdentityHashMap<>();
    private final Map<Storage, Long> live = new IdentityHashMap<>();
    private long liveBytes, peakLiveBytes, reservedBytes, peakReservedBytes, cachedBytes;
    private long liveBlockBytes, peakLiveBlockBytes; // the live blocks at their class size: what a budget must hold once the cache is trimmed
    private long highWaterLiveBytes; // like peakLiveBytes, but never reset: it sizes the cache
    private long uses; // a clock for choosing the class used longest ago
    private long blocksAllocated;

    /** The free blocks of one size class, and when a block of that class was last handed out. */
    private static final class FreeList {
        final ArrayDeque<MemorySegment> blocks = new ArrayDeque<>();
        long lastUse;
    }

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

    /**
     * Sets the cap on reserved bytes; {@code Long.MAX_VALUE} means none. Cached blocks above a
     * lower cap are freed at once, so that the cap holds from here on (a cached block is handed
     * out again without a check).
     */
    public synchronized void setBudget(long budgetBytes) {
        if (budgetBytes <= 0) throw new IllegalArgumentException("memory budget must be positive, got " + budgetBytes);
        this.budget = budgetBytes;
        if (reservedBytes > budgetBytes) trimLocked();
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

    /** Bytes in cached (free, not yet given back) blocks. */
    public synchronized long cachedBytes() {
        return cachedBytes;
    }

    /**
     * How many cached bytes a cache miss tolerates before it frees old classes: twice the most
     * bytes ever live at once (a repeating loop's cache then fits with room to spare), and at
     * least 64 MiB.
     */
    public synchronized long cacheLimit() {
        return Math.max(MIN_CACHE_LIMIT, 2 * highWaterLiveBytes);
    }

    /** The live blocks at their size class: what a budget must hold once the cache is trimmed. */
    public synchronized long liveBlockBytes() {
        return liveBlockBytes;
    }

    /** The pool's block for a request of {@code bytes}: what it counts against a budget. */
    public static long blockBytes(long bytes) {
        return blockSize(liveSize(bytes));
    }

    /**
     * The peak of the live blocks at their size class: what the budget must hold at the live peak
     * once the cache is trimmed (the live bytes rounded up by at most 12.5% each).
     */
    public synchronized long peakLiveBlockBytes() {
        return peakLiveBlockBytes;
    }

    /** Starts a new peak measurement from the current figures. */
    public synchronized void resetPeaks() {
        peakLiveBlockBytes = liveBlockBytes;
        peakLiveBytes = liveBytes;
        peakReservedBytes = reservedBytes;
    }

    /** Allocates {@code bytes} (not zeroed) for a tensor described by {@code label}. */
    public Storage allocate(long bytes, String label) {
        long accounted = liveSize(bytes);
        long size = blockSize(accounted);
        synchronized (this) {
            FreeList free = cache.get(size);
            MemorySegment block = free == null ? null : free.blocks.poll();
            if (block != null) {
                cachedBytes -= size;
                free.lastUse = ++uses;
            } else {
                block = newBlock(bytes, size, label);
                blocksAllocated++;
                cache.computeIfAbsent(size, k -> new FreeList()).lastUse = ++uses;
            }
            Storage s = new Storage(this, block, bytes, label);
            live.put(s, accounted);
            liveBytes += accounted;
            peakLiveBytes = Math.max(peakLiveBytes, liveBytes);
            liveBlockBytes += size;
            peakLiveBlockBytes = Math.max(peakLiveBlockBytes, liveBlockBytes);
            highWaterLiveBytes = Math.max(highWaterLiveBytes, liveBytes);
            return s;
        }
    }

    private MemorySegment newBlock(long bytes, long size, String label) {
        if (cachedBytes + size > cacheLimit()) evictLeastRecentlyUsed(cacheLimit() - size);
        if (reservedBytes + size > budget) trimLocked();
        if (reservedBytes + size > budget) throw exhausted(bytes, label);
        Arena arena = Arena.ofShared();
        MemorySegment block = size >= MAPPED_BLOCK ? PageMapping.map(size, arena) : null;
        if (block == null) block = arena.allocate(size, ALIGN);
        arenas.put(block, arena);
        reservedBytes += size;
        peakReservedBytes = Math.max(peakReservedBytes, reservedBytes);
        return block;
    }

    synchronized void giveBack(Storage s) {
        Long accounted = live.remove(s);
        if (accounted == null) return;
        liveBytes -= accounted;
        long size = s.block.byteSize();
        liveBlockBytes -= size;
        cache.computeIfAbsent(size, k -> new FreeList()).blocks.push(s.block);
        cachedBytes += size;
    }

    /** Frees every cached (not live) block back to the operating system. */
    public synchronized void trim() {
        trimLocked();
    }

    private void trimLocked() {
        boolean fromMalloc = false;
        for (var e : cache.entrySet()) fromMalloc |= freeAll(e.getKey(), e.getValue());
        cache.clear();
        if (fromMalloc) PageMapping.releaseMallocFreePages();
    }

    /** Frees whole classes, the one used longest ago first, until the cache holds at most {@code target} bytes. */
    private void evictLeastRecentlyUsed(long target) {
        while (cachedBytes > target) {
            Map.Entry<Long, FreeList> oldest = null;
            for (var e : cache.entrySet()) {
                if (e.getValue().blocks.isEmpty()) continue;
                if (oldest == null || e.getValue().lastUse < oldest.getValue().lastUse) oldest = e;
            }
            if (oldest == null) return;
            freeAll(oldest.getKey(), oldest.getValue());
        }
    }

    /** Frees one class's cached blocks; says whether any came from malloc. */
    private boolean freeAll(long size, FreeList free) {
        boolean fromMalloc = !free.blocks.isEmpty() && (size < MAPPED_BLOCK || !PageMapping.AVAILABLE);
        for (MemorySegment block : free.blocks) {
            arenas.remove(block).close();
            reservedBytes -= size;
            cachedBytes -= size;
        }
        free.blocks.clear();
        return fromMalloc;
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
                name, Bytes.human(bytes), label, Bytes.human(reservedBytes + blockSize(liveSize(bytes))), Bytes.human(budget),
                Bytes.human(liveBytes), Bytes.human(peakLiveBytes), describeLive(10)));
    }

    /** The bytes a request counts as live: itself, 64-byte aligned (and at least 64). */
    static long liveSize(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("negative allocation: " + bytes);
        long b = Math.max(bytes, ALIGN);
        return (b + ALIGN - 1) / ALIGN * ALIGN;
    }

    /**
     * The size class of an aligned request: itself up to 16 KiB, above that rounded up to an
     * eighth of its power of two (at most 12.5% more), so that nearby sizes share cached blocks.
     */
    static long blockSize(long aligned) {
        if (aligned <= FINE_CLASSES) return aligned;
        long step = Long.highestOneBit(aligned) >> 3;
        return (aligned + step - 1) / step * step;
    }

    @Override
    public String toString() {
        return String.format("MemoryPool[%s live=%s peak=%s reserved=%s]", name, Bytes.human(liveBytes()),
                Bytes.human(peakLiveBytes()), Bytes.human(reservedBytes()));
    }

    /** Exposed for tests: how many blocks the pool has taken from the system so far. */
    synchronized long blocksAllocated() {
        return blocksAllocated;
    }

    /** Exposed for tests: the number of distinct block sizes that have cached blocks. */
    synchronized int cachedSizes() {
        int n = 0;
        for (FreeList f : cache.values()) if (!f.blocks.isEmpty()) n++;
        return n;
    }

    /** Anonymous memory straight from the kernel (Linux), and malloc's own trim (glibc). */
    private static final class PageMapping {
        private static final int PROT_READ_WRITE = 0x1 | 0x2;
        private static final int MAP_PRIVATE_ANONYMOUS = 0x02 | 0x20;
        private static final MethodHandle MMAP, MUNMAP, MALLOC_TRIM;
        static final boolean AVAILABLE;

        static {
            MethodHandle mmap = null, munmap = null, mallocTrim = null;
            if (System.getProperty("os.name", "").startsWith("Linux")) {
                try {
                    Linker linker = Linker.nativeLinker();
                    SymbolLookup libc = linker.defaultLookup();
                    mmap = libc.find("mmap").map(a -> linker.downcallHandle(a, FunctionDescriptor.of(ValueLayout.ADDRESS,
                            ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                            ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG))).orElse(null);
                    munmap = libc.find("munmap").map(a -> linker.downcallHandle(a, FunctionDescriptor.of(ValueLayout.JAVA_INT,
                            ValueLayout.ADDRESS, ValueLayout.JAVA_LONG))).orElse(null);
                    mallocTrim = libc.find("malloc_trim").map(a -> linker.downcallHandle(a, FunctionDescriptor.of(ValueLayout.JAVA_INT,
                            ValueLayout.JAVA_LONG))).orElse(null);
                } catch (RuntimeException | LinkageError e) {
                    // No native access: every block then comes from malloc through the arena.
                }
            }
            AVAILABLE = mmap != null && munmap != null;
            MMAP = mmap;
            MUNMAP = munmap;
            MALLOC_TRIM = mallocTrim;
        }

        /** A fresh mapping of {@code size} bytes owned by {@code arena} (closing it unmaps), or null where mapping is unavailable or fails. */
        static MemorySegment map(long size, Arena arena) {
            if (!AVAILABLE) return null;
            MemorySegment address;
            try {
                address = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, size, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0L);
            } catch (Throwable t) {
                return null;
            }
            if (address.address() == -1L) return null; // MAP_FAILED: let malloc try
            return address.reinterpret(size, arena, unmapped -> unmap(unmapped, size));
        }

        private static void unmap(MemorySegment address, long size) {
            try {
                int rc = (int) MUNMAP.invokeExact(address, size);
                if (rc != 0) throw new IllegalStateException("munmap of " + size + " bytes failed");
            } catch (RuntimeException | Error e) {
                throw e;
            } catch (Throwable t) {
                throw new IllegalStateException("munmap of " + size + " bytes failed", t);
            }
        }

        /** Asks glibc to return the free pages inside its heaps, which plain free() keeps. */
        static void releaseMallocFreePages() {
            if (MALLOC_TRIM == null) return;
            try {
                int ignored = (int) MALLOC_TRIM.invokeExact(0L);
            } catch (Throwable t) {
                // Only a hint: the memory stays reusable by malloc either way.
            }
        }
    }
}
