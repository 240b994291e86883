package dev.weft.parallel;

import dev.weft.core.DType;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;

/**
 * Data parallelism over a process group: every rank holds the whole model, computes gradients on
 * its own slice of the global batch, and the gradients are averaged across ranks before the
 * optimizer steps, so every rank takes the same step as one process on the global batch would.
 *
 * <p><b>Buckets.</b> Parameters are grouped, in reverse registration order (the order backward
 * completes them, output layers first), into buckets of about {@code bucketBytes}. Each parameter
 * gets a grad-ready hook; when the last gradient of a bucket is complete the bucket's gradients
 * are copied into one flat buffer and an asynchronous AVG all-reduce is launched on it at once,
 * so communication overlaps the rest of backward. Buckets launch in index order on every rank
 * (a ready bucket waits for its predecessors), which keeps the collectives in the same order
 * everywhere.
 *
 * <p><b>Accumulation.</b> Only the final micro-step of an optimizer step synchronises
 * ({@link #beginMicroStep(boolean)}): earlier micro-steps just accumulate locally, and the final
 * one's hooks see the accumulated gradient.
 *
 * <p>{@link #finishGradients()} waits for every bucket and copies the averages back into the
 * parameters' gradients; call it before clipping and the optimizer step.
 */
public final class DistributedDataParallel implements AutoCloseable {
    /** Default bucket size: large enough to amortise per-collective latency, small enough to overlap. */
    public static final long DEFAULT_BUCKET_BYTES = 4L << 20;

    private final ProcessGroup group;
    private final List<Bucket> buckets = new ArrayList<>();
    private boolean armed;
    private int nextToLaunch;
    private long launchedDuringBackward;
    private long collectives;

    private static final class Bucket {
        final int index;
        final List<String> names = new ArrayList<>();
        final List<Tensor> params = new ArrayList<>();
        final List<Long> offsets = new ArrayList<>();
        long numel;
        Tensor flat;
        int pending;
        boolean ready;
        Work work;

        Bucket(int index) {
            this.index = index;
        }
    }

    /**
     * Wraps {@code parameters} (name to leaf tensor, in registration order) for data parallelism
     * over {@code group}, in buckets of about {@code bucketBytes}.
     */
    public DistributedDataParallel(Map<String, Tensor> parameters, ProcessGroup group, long bucketBytes) {
        if (bucketBytes < 4) throw new IllegalArgumentException("bucketBytes must be >= 4, got " + bucketBytes);
        this.group = group;
        List<Map.Entry<String, Tensor>> order = new ArrayList<>(parameters.entrySet());
        java.util.Collections.reverse(order);
        Bucket current = null;
        for (var e : order) {
            Tensor p = e.getValue();
            if (!p.requiresGrad()) continue;
            long bytes = p.numel() * 4L;
            if (current == null || current.numel > 0 && (current.numel * 4 + bytes > bucketBytes)) {
                current = new Bucket(buckets.size());
                buckets.add(current);
            }
            current.names.add(e.getKey());
            current.params.add(p);
            current.offsets.add(current.numel);
            current.numel += p.numel();
        }
        for (Bucket b : buckets) {
            if (b.numel > Integer.MAX_VALUE) throw new IllegalArgumentException("bucket " + b.index + " holds " + b.numel + " elements; at most "
                    + Integer.MAX_VALUE + " per bucket (use a smaller bucket size)");
            b.flat = Scope.outside(() -> Tensor.empty(DType.F32, "ddp.bucket", (int) b.numel));
            for (Tensor p : b.params) p.onGradReady(t -> onGradReady(b));
        }
    }

    /**
     * Declares the next backward pass: with {@code synchronize} false (a non-final micro-step)
     * gradients only accumulate locally and no collective is issued; with true (the final one)
     * each bucket is all-reduced as soon as its gradients are complete.
     */
    public void beginMicroStep(boolean synchronize) {
        if (armed) throw new IllegalStateException("beginMicroStep(true) was not followed by finishGradients()");
        armed = synchronize;
        nextToLaunch = 0;
        for (Bucket b : buckets) {
            b.pending = b.params.size();
            b.ready = false;
            b.work = null;
        }
    }

    private void onGradReady(Bucket b) {
        if (!armed) return;
        if (--b.pending > 0) return;
        b.ready = true;
        while (nextToLaunch < buckets.size() && buckets.get(nextToLaunch).ready) {
            launch(buckets.get(nextToLaunch++));
            launchedDuringBackward++;
        }
    }

    private void launch(Bucket b) {
        MemorySegment flat = b.flat.data();
        for (int i = 0; i < b.params.size(); i++) {
            Tensor p = b.params.get(i);
            long off = b.offsets.get(i) * 4;
            Tensor g = p.grad();
            if (g == null) flat.asSlice(off, p.numel() * 4L).fill((byte) 0); // unused this step on every rank
            else MemorySegment.copy(g.data(), 0, flat, off, p.numel() * 4L);
        }
        b.work = group.allReduceAsync(b.flat, ReduceOp.AVG);
        collectives++;
    }

    /**
     * Completes the synchronising micro-step: launches any bucket backward did not complete
     * (parameters that received no gradient), waits for every bucket (each wait bounded by the
     * group's deadline) and writes the averaged gradients back.
     */
    public void finishGradients() {
        if (!armed) throw new IllegalStateException("finishGradients() without beginMicroStep(true)");
        try {
            while (nextToLaunch < buckets.size()) launch(buckets.get(nextToLaunch++));
            for (Bucket b : buckets) {
                b.work.await();
                MemorySegment flat = b.flat.data();
                for (int i = 0; i < b.params.size(); i++) {
                    Tensor g = b.params.get(i).grad();
                    if (g != null) MemorySegment.copy(flat, b.offsets.get(i) * 4, g.data(), 0, g.numel() * 4L);
                }
            }
        } finally {
            armed = false;
        }
    }

    /** The parameter names of each bucket, in launch order. */
    public List<List<String>> buckets() {
        List<List<String>> out = new ArrayList<>();
        for (Bucket b : buckets) out.add(List.copyOf(b.names));
        return out;
    }

    /** Buckets whose all-reduce was launched from a grad-ready hook, that is during backward. */
    public long launchedDuringBackward() {
        return launchedDuringBackward;
    }

    /** All-reduces issued so far. */
    public long collectives() {
        return collectives;
    }

    public ProcessGroup group() {
        return group;
    }

    /**
     * Fails fast unless every rank of {@code group} holds bit-identical {@code parameters}: the
     * CRC32C of each parameter is all-gathered and compared with rank 0's. The error names the
     * ranks that differ and the first parameter where each does.
     */
    public static void verifyIdenticalWeights(ProcessGroup group, Map<String, Tensor> parameters) {
        List<String> names = new ArrayList<>(parameters.keySet());
        int p = names.size(), world = group.size();
        if (world == 1 || p == 0) return;
        // each 32-bit CRC travels as two 16-bit halves, exact in float32 whatever the transport does to NaN bit patterns
        float[] mine = new float[2 * p];
        for (int i = 0; i < p; i++) {
            int crc = crc32c(parameters.get(names.get(i)));
            mine[2 * i] = crc >>> 16;
            mine[2 * i + 1] = crc & 0xFFFF;
        }
        float[] all;
        try (Scope s = Scope.open()) {
            Tensor in = Tensor.of(mine, 2 * p);
            Tensor out = Tensor.zeros(world * 2 * p);
            group.allGather(in, out);
            all = out.toArray();
        }
        Map<Integer, String> differing = new LinkedHashMap<>();
        for (int r = 1; r < world; r++) {
            for (int i = 0; i < p; i++) {
                int a = crcAt(all, 0, p, i), b = crcAt(all, r, p, i);
                if (a != b) {
                    differing.put(r, String.format("rank %d differs from rank 0 first at parameter '%s' (CRC32C %08x vs %08x)", r, names.get(i), b, a));
                    break;
                }
            }
        }
        if (!differing.isEmpty())
            throw new IllegalStateException("data-parallel ranks hold different weights at start-up: rank(s) " + differing.keySet()
                    + " differ from rank 0: " + String.join("; ", differing.values())
                    + ". Every rank must start from the same weights (same model config and train.seed, or the same checkpoint)");
    }

    private static int crcAt(float[] all, int rank, int p, int i) {
        int base = rank * 2 * p + 2 * i;
        return ((int) all[base] << 16) | (int) all[base + 1];
    }

    static int crc32c(Tensor t) {
        CRC32C crc = new CRC32C();
        if (!t.isContiguous()) throw new IllegalArgumentException("parameter " + t.name() + " is not contiguous");
        crc.update(t.data().asByteBuffer());
        crc.update(new byte[] {(byte) t.dtype().ordinal()});
        return (int) crc.getValue();
    }

    @Override
    public void close() {
        for (Bucket b : buckets) b.flat.close();
    }
}
