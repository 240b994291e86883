package dev.weft.core;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * An owning scope for tensors: every tensor created on this thread while the scope is current is
 * closed when the scope closes. Each micro-batch opens one, so activations, their gradients and
 * other temporaries go back to the memory pool at the end of it without bookkeeping in the model
 * code. Long-lived tensors (parameters, gradients, optimizer state) are created with
 * {@link #outside(Supplier)} or taken out of the scope with {@link #keep(Tensor)}.
 *
 * <p>Scopes need not nest. A pipeline schedule interleaves micro-batches: it makes one scope per
 * micro-batch with {@link #create()}, {@link #activate()}s whichever micro-batch it works on, and
 * closes each when that micro-batch's backward is done, in any order. A scope closed while a later
 * one is current hands back, when that one closes, to the nearest ancestor still open, never to a
 * closed one (which would keep what is created there alive for good).
 */
public final class Scope implements AutoCloseable {
    private static final ThreadLocal<Scope> CURRENT = new ThreadLocal<>();

    private final Scope parent;
    private final List<Tensor> owned = new ArrayList<>();
    private boolean closed;

    private Scope(Scope parent) {
        this.parent = parent;
    }

    /** Opens a scope nested in the current one (if any) and makes it current. */
    public static Scope open() {
        Scope s = new Scope(CURRENT.get());
        CURRENT.set(s);
        return s;
    }

    /** A scope that is not current yet: see {@link #activate()}. */
    public static Scope create() {
        return new Scope(null);
    }

    /** An activation of a scope; closing it makes current again what was current before. */
    public interface Active extends AutoCloseable {
        @Override
        void close();
    }

    /** Makes this scope current until the returned handle is closed (then the previous one is current again). */
    public Active activate() {
        if (closed) throw new IllegalStateException("activate() of a closed scope");
        Scope previous = CURRENT.get();
        CURRENT.set(this);
        return () -> {
            Scope restore = previous;
            while (restore != null && restore.closed) restore = restore.parent;
            if (restore != null) CURRENT.set(restore);
            else CURRENT.remove();
        };
    }

    /** Runs {@code body} with no scope current, so what it creates outlives any open scope. */
    public static <T> T outside(Supplier<T> body) {
        Scope saved = CURRENT.get();
        CURRENT.remove();
        try {
            return body.get();
        } finally {
            if (saved != null) CURRENT.set(saved);
        }
    }

    static void register(Tensor t) {
        Scope s = CURRENT.get();
        while (s != null && s.closed) s = s.parent;
        if (s != null) s.owned.add(t);
    }

    /** Takes {@code t} out of the current scope: the caller now owns it and must close it. */
    public static Tensor keep(Tensor t) {
        Scope s = CURRENT.get();
        if (s != null) s.owned.remove(t);
        return t;
    }

    /** Takes {@code t} out of the current scope if it owns it, and says whether it did: then the caller owns it. */
    public static boolean take(Tensor t) {
        Scope s = CURRENT.get();
        return s != null && s.owned.remove(t);
    }

    /** Makes the current scope (if any) own {@code t}, taken out of another with {@link #keep}: it closes with this one. */
    public static Tensor adopt(Tensor t) {
        register(t);
        return t;
    }

    /** Number of tensors the scope will close; for tests and diagnostics. */
    public int size() {
        return owned.size();
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        for (int i = owned.size() - 1; i >= 0; i--) owned.get(i).close();
        owned.clear();
        if (CURRENT.get() == this) {
            Scope restore = parent;
            while (restore != null && restore.closed) restore = restore.parent;
            if (restore != null) CURRENT.set(restore);
            else CURRENT.remove();
        }
    }
}
