package dev.weft.core;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * An owning scope for tensors: every tensor created on this thread while the scope is open is
 * closed when the scope closes. A training step opens one, so activations, their gradients and
 * other temporaries go back to the memory pool at the end of the step without bookkeeping in
 * the model code. Long-lived tensors (parameters, gradients, optimizer state) are created with
 * {@link #outside(Supplier)} or taken out of the scope with {@link #keep(Tensor)}.
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
        if (s != null) s.owned.add(t);
    }

    /** Takes {@code t} out of the current scope: the caller now owns it and must close it. */
    public static Tensor keep(Tensor t) {
        Scope s = CURRENT.get();
        if (s != null) s.owned.remove(t);
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
            if (parent != null) CURRENT.set(parent);
            else CURRENT.remove();
        }
    }
}
