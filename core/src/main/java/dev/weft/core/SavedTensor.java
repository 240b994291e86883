package dev.weft.core;

/** A tensor kept for backward, in whatever form the saved-tensor hooks packed it. */
public final class SavedTensor {
    private final SavedTensorHooks hooks;
    private Object packed;

    SavedTensor(SavedTensorHooks hooks, Object packed) {
        this.hooks = hooks;
        this.packed = packed;
    }

    /** Saves {@code t} through the hooks installed on this thread, if any. */
    static SavedTensor of(Tensor t) {
        SavedTensorHooks h = SavedTensorHooks.CURRENT.get();
        return h == null ? new SavedTensor(null, t) : new SavedTensor(h, h.pack(t));
    }

    /** The saved tensor, unpacked. */
    public Tensor get() {
        if (packed == null) throw new IllegalStateException("saved tensor used after backward released it");
        return hooks == null ? (Tensor) packed : hooks.unpack(packed);
    }

    void release() {
        if (hooks != null && packed != null) hooks.release(packed);
        packed = null;
    }
}
