package dev.weft.core;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;

/**
 * An n-dimensional array in off-heap memory, with shape, strides and an element offset into a
 * shared {@link Storage}, and the autograd links that record how it was computed.
 *
 * <p>Kernels work on contiguous float32 tensors; {@link #contiguous()} materialises a view and
 * {@link #to(DType)} converts storage types. A tensor is closed explicitly or by the
 * {@link Scope} it was created in; views keep their storage alive until they are closed too.
 */
public final class Tensor implements AutoCloseable {
    static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    static final ValueLayout.OfShort S = ValueLayout.JAVA_SHORT_UNALIGNED;

    private final Storage storage;
    private final long offset;
    private final int[] shape;
    private final long[] strides;
    private final DType dtype;
    private boolean closed;

    private boolean requiresGrad;
    private Tensor grad;
    private GradFn gradFn;
    private String name;
    private List<Consumer<Tensor>> gradReadyHooks;
    private java.util.function.Supplier<Tensor> gradSource;

    private Tensor(Storage storage, long offset, int[] shape, long[] strides, DType dtype) {
        this.storage = storage;
        this.offset = offset;
        this.shape = shape;
        this.strides = strides;
        this.dtype = dtype;
        Scope.register(this);
    }

    // ---- creation -------------------------------------------------------------------------

    /** An uninitialised float32 tensor from the host pool. */
    public static Tensor empty(int... shape) {
        return empty(DType.F32, "tensor", shape);
    }

    public static Tensor empty(DType dtype, String label, int... shape) {
        return allocate(MemoryPool.host(), dtype, label, shape);
    }

    public static Tensor allocate(MemoryPool pool, DType dtype, String label, int... shape) {
        int[] s = checkShape(shape);
        long n = numel(s);
        Storage st = pool.allocate(n * dtype.bytes(), label);
        return new Tensor(st, 0, s, contiguousStrides(s), dtype);
    }

    public static Tensor zeros(int... shape) {
        Tensor t = empty(shape);
        t.storage.segment().fill((byte) 0);
        return t;
    }

    public static Tensor full(float value, int... shape) {
        Tensor t = empty(shape);
        t.fill(value);
        return t;
    }

    public static Tensor ones(int... shape) {
        return full(1f, shape);
    }

    public static Tensor scalar(float value) {
        return full(value, new int[0]);
    }

    /** A float32 tensor holding a copy of {@code data} in row-major order. */
    public static Tensor of(float[] data, int... shape) {
        int[] s = checkShape(shape);
        if (numel(s) != data.length)
            throw new IllegalArgumentException("shape " + Arrays.toString(s) + " holds " + numel(s) + " elements, data has " + data.length);
        Tensor t = empty(s);
        MemorySegment.copy(data, 0, t.storage.segment(), F, 0, data.length);
        return t;
    }

    // ---- geometry -------------------------------------------------------------------------

    public int[] shape() {
        return shape.clone();
    }

    public int dim() {
        return shape.length;
    }

    /** Size of dimension {@code d}; negative {@code d} counts from the end. */
    public int size(int d) {
        return shape[axis(d)];
    }

    public long[] strides() {
        return strides.clone();
    }

    public long numel() {
        return numel(shape);
    }

    public DType dtype() {
        return dtype;
    }

    public long offset() {
        return offset;
    }

    public Storage storage() {
        return storage;
    }

    public boolean isContiguous() {
        long expect = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            if (shape[i] != 1 && strides[i] != expect) return false;
            expect *= shape[i];
        }
        return true;
    }

    /** Normalises a possibly negative axis. */
    public int axis(int d) {
        int a = d < 0 ? d + shape.length : d;
        if (a < 0 || a >= shape.length)
            throw new IllegalArgumentException("axis " + d + " out of range for shape " + Arrays.toString(shape));
        return a;
    }

    /**
     * The memory of a contiguous tensor, exactly its elements. Kernels use this; it fails on
     * non-contiguous views so that a kernel never reads the wrong elements.
     */
    public MemorySegment data() {
        checkOpen();
        if (!isContiguous()) throw new IllegalStateException("data() needs a contiguous tensor; call contiguous() first");
        return storage.segment().asSlice(offset * dtype.bytes(), numel() * dtype.bytes());
    }

    // ---- element access (slow paths for tests, I/O and small bookkeeping) ---------------------

    public float get(int... index) {
        return read(linear(index));
    }

    public void set(float value, int... index) {
        write(linear(index), value);
    }

    public float item() {
        if (numel() != 1) throw new IllegalStateException("item() needs a one-element tensor, shape is " + Arrays.toString(shape));
        return read(offset);
    }

    /** Copies the elements out in row-major (logical) order. */
    public float[] toArray() {
        checkOpen();
        float[] out = new float[Math.toIntExact(numel())];
        if (isContiguous() && dtype == DType.F32) {
            MemorySegment.copy(storage.segment(), F, offset * 4, out, 0, out.length);
            return out;
        }
        int[] idx = new int[shape.length];
        for (int i = 0; i < out.length; i++) {
            long pos = offset;
            for (int d = 0; d < idx.length; d++) pos += idx[d] * strides[d];
            out[i] = read(pos);
            for (int d = idx.length - 1; d >= 0; d--) {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
        return out;
    }

    /** Overwrites the elements of a contiguous tensor from {@code data}. */
    public Tensor copyFrom(float[] data) {
        if (data.length != numel()) throw new IllegalArgumentException("copyFrom: " + data.length + " values for " + numel() + " elements");
        if (dtype == DType.F32) {
            MemorySegment.copy(data, 0, data(), F, 0, data.length);
        } else {
            MemorySegment seg = data();
            for (int i = 0; i < data.length; i++) seg.setAtIndex(S, i, DType.toBf16(data[i]));
        }
        return this;
    }

    /** Copies the elements of {@code src} (same shape, any layout or dtype) into this contiguous tensor. */
    public Tensor copyFrom(Tensor src) {
        if (!Arrays.equals(shape, src.shape))
            throw new IllegalArgumentException("copyFrom: shape " + Arrays.toString(src.shape) + " into " + Arrays.toString(shape));
        if (src.dtype == dtype && src.isContiguous() && isContiguous()) {
            MemorySegment.copy(src.data(), 0, data(), 0, numel() * dtype.bytes());
        } else {
            copyFrom(src.toArray());
        }
        return this;
    }

    public Tensor fill(float value) {
        MemorySegment seg = data();
        if (dtype == DType.F32) {
            if (value == 0f) seg.fill((byte) 0);
            else for (long i = 0, n = numel(); i < n; i++) seg.setAtIndex(F, i, value);
        } else {
            short b = DType.toBf16(value);
            for (long i = 0, n = numel(); i < n; i++) seg.setAtIndex(S, i, b);
        }
        return this;
    }

    private float read(long elementPos) {
        checkOpen();
        return dtype == DType.F32
                ? storage.segment().getAtIndex(F, elementPos)
                : DType.fromBf16(storage.segment().getAtIndex(S, elementPos));
    }

    private void write(long elementPos, float v) {
        checkOpen();
        if (dtype == DType.F32) storage.segment().setAtIndex(F, elementPos, v);
        else storage.segment().setAtIndex(S, elementPos, DType.toBf16(v));
    }

    private long linear(int[] index) {
        if (index.length != shape.length)
            throw new IllegalArgumentException("index of rank " + index.length + " for tensor of rank " + shape.length);
        long pos = offset;
        for (int d = 0; d < index.length; d++) {
            if (index[d] < 0 || index[d] >= shape[d])
                throw new IndexOutOfBoundsException("index " + Arrays.toString(index) + " out of bounds for shape " + Arrays.toString(shape));
            pos += index[d] * strides[d];
        }
        return pos;
    }

    // ---- views (differentiable) ----------------------------------------------------------------

    /** The same elements under a new shape; needs a contiguous tensor. One size may be -1. */
    public Tensor view(int... newShape) {
        int[] s = inferShape(newShape, numel());
        if (!isContiguous()) throw new IllegalStateException("view() of a non-contiguous tensor; use reshape()");
        Tensor v = sharing(s, contiguousStrides(s));
        if (Autograd.needsGrad(this)) v.attach(new ViewBackward(this));
        return v;
    }

    /** Like {@link #view} but copies first when the tensor is not contiguous. */
    public Tensor reshape(int... newShape) {
        return isContiguous() ? view(newShape) : contiguous().view(newShape);
    }

    /** Swaps two dimensions without moving data. */
    public Tensor transpose(int a, int b) {
        int x = axis(a), y = axis(b);
        int[] s = shape.clone();
        long[] st = strides.clone();
        s[x] = shape[y];
        s[y] = shape[x];
        st[x] = strides[y];
        st[y] = strides[x];
        Tensor v = sharing(s, st);
        if (Autograd.needsGrad(this)) v.attach(new TransposeBackward(this, x, y));
        return v;
    }

    /** A contiguous float32 tensor with the same elements; this tensor itself if it already is one. */
    public Tensor contiguous() {
        if (isContiguous() && dtype == DType.F32) return this;
        Tensor out = empty(DType.F32, "contiguous", shape);
        Strided.copy(this, out);
        if (Autograd.needsGrad(this)) out.attach(new ContiguousBackward(this));
        return out;
    }

    /** A copy in {@code target} storage type (not differentiable). */
    public Tensor to(DType target) {
        Tensor out = empty(target, "to-" + target, shape);
        if (target == DType.F32 && dtype == DType.F32) Strided.copy(this, out);
        else if (target == DType.F32) out.copyFrom(toArray());
        else {
            MemorySegment seg = out.data();
            float[] v = toArray();
            for (int i = 0; i < v.length; i++) seg.setAtIndex(S, i, DType.toBf16(v[i]));
        }
        return out;
    }

    /** A view of the same storage that is cut off from autograd. */
    public Tensor detach() {
        return sharing(shape.clone(), strides.clone());
    }

    private Tensor sharing(int[] s, long[] st) {
        checkOpen();
        storage.retain();
        return new Tensor(storage, offset, s, st, dtype);
    }

    /** A narrowed view: {@code length} entries of dimension {@code d} starting at {@code start} (not differentiable). */
    public Tensor narrow(int d, int start, int length) {
        int a = axis(d);
        if (start < 0 || length < 0 || start + length > shape[a])
            throw new IllegalArgumentException("narrow(" + d + ", " + start + ", " + length + ") out of range for " + Arrays.toString(shape));
        int[] s = shape.clone();
        s[a] = length;
        storage.retain();
        return new Tensor(storage, offset + start * strides[a], s, strides.clone(), dtype);
    }

    // ---- autograd ------------------------------------------------------------------------------

    public boolean requiresGrad() {
        return requiresGrad;
    }

    /** Marks a leaf tensor as one whose gradient is wanted. */
    public Tensor requiresGrad(boolean value) {
        if (gradFn != null && !value) throw new IllegalStateException("cannot clear requiresGrad on a computed tensor; use detach()");
        this.requiresGrad = value;
        return this;
    }

    public boolean isLeaf() {
        return gradFn == null;
    }

    public GradFn gradFn() {
        return gradFn;
    }

    /** Records that this tensor was computed by {@code fn}; op implementations call this. */
    public Tensor attach(GradFn fn) {
        this.gradFn = fn;
        this.requiresGrad = true;
        return this;
    }

    /** The accumulated gradient of a leaf, or null before the first backward. */
    public Tensor grad() {
        return grad;
    }

    void setGrad(Tensor g) {
        this.grad = g;
    }

    /**
     * Makes {@code g} (same shape, contiguous f32, usually a view into a flat gradient buffer) this
     * leaf's gradient: backward accumulates into it in place. Null detaches the current one
     * without closing it.
     */
    public void useGrad(Tensor g) {
        if (g != null && !Arrays.equals(g.shape, shape))
            throw new IllegalArgumentException("gradient of shape " + Arrays.toString(g.shape) + " for a tensor of shape " + Arrays.toString(shape));
        this.grad = g;
    }

    /**
     * Where backward gets this leaf's gradient when it has none: a zero-filled tensor of its shape
     * (a gradient-sync layer hands out views into buffers it owns). Null: a fresh tensor.
     */
    public void gradSource(java.util.function.Supplier<Tensor> source) {
        this.gradSource = source;
    }

    java.util.function.Supplier<Tensor> gradSource() {
        return gradSource;
    }

    /** Zeroes the accumulated gradient (keeps its memory). */
    public void zeroGrad() {
        if (grad != null) grad.fill(0f);
    }

    /** Frees the gradient's memory. */
    public void clearGrad() {
        if (grad != null) grad.close();
        grad = null;
    }

    /** Runs reverse-mode autodiff from this scalar. */
    public void backward() {
        Autograd.backward(this);
    }

    /** Registers a hook called once this leaf's gradient is complete for the current backward pass. */
    public void onGradReady(Consumer<Tensor> hook) {
        if (gradReadyHooks == null) gradReadyHooks = new ArrayList<>();
        gradReadyHooks.add(hook);
    }

    void fireGradReady() {
        if (gradReadyHooks != null) for (Consumer<Tensor> h : gradReadyHooks) h.accept(this);
    }

    public String name() {
        return name;
    }

    public Tensor name(String value) {
        this.name = value;
        return this;
    }

    // ---- lifetime --------------------------------------------------------------------------------

    public boolean isClosed() {
        return closed;
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        storage.release();
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("use of a closed tensor" + (name == null ? "" : " '" + name + "'") + " of shape " + Arrays.toString(shape));
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + (dtype == DType.F32 ? "" : " " + dtype) + (name == null ? "" : " '" + name + "'");
    }

    // ---- shape helpers ---------------------------------------------------------------------------

    public static long numel(int[] shape) {
        long n = 1;
        for (int s : shape) n *= s;
        return n;
    }

    static long[] contiguousStrides(int[] shape) {
        long[] st = new long[shape.length];
        long acc = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            st[i] = acc;
            acc *= shape[i];
        }
        return st;
    }

    private static int[] checkShape(int[] shape) {
        for (int s : shape) if (s < 0) throw new IllegalArgumentException("negative size in shape " + Arrays.toString(shape));
        return shape.clone();
    }

    private static int[] inferShape(int[] shape, long numel) {
        int[] s = shape.clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < s.length; i++) {
            if (s[i] == -1) {
                if (infer >= 0) throw new IllegalArgumentException("only one -1 allowed in " + Arrays.toString(shape));
                infer = i;
            } else known *= s[i];
        }
        if (infer >= 0) {
            if (known == 0 || numel % known != 0) throw new IllegalArgumentException("cannot view " + numel + " elements as " + Arrays.toString(shape));
            s[infer] = (int) (numel / known);
        }
        if (numel(s) != numel) throw new IllegalArgumentException("cannot view " + numel + " elements as " + Arrays.toString(shape));
        return s;
    }
}
