package dev.weft.core;

/**
 * The pack/unpack hook point for tensors that ops save for backward, in the manner of PyTorch's
 * saved-tensor hooks. {@link #pack} runs when an op saves a tensor during forward; {@link #unpack}
 * when backward needs it again. Activation offload installs hooks that move saved tensors to
 * another memory tier and bring them back.
 */
public interface SavedTensorHooks {
    /** Takes a tensor saved for backward and returns whatever stands for it until backward. */
    Object pack(Tensor tensor);

    /** Turns what {@link #pack} returned back into the tensor. */
    Tensor unpack(Object packed);

    /** Called when backward no longer needs the packed value; frees whatever pack made. */
    default void release(Object packed) {}

    ThreadLocal<SavedTensorHooks> CURRENT = new ThreadLocal<>();

    /** Installs {@code hooks} on this thread until the returned handle is closed. */
    static Installed install(SavedTensorHooks hooks) {
        SavedTensorHooks previous = CURRENT.get();
        CURRENT.set(hooks);
        return () -> {
            if (previous == null) CURRENT.remove();
            else CURRENT.set(previous);
        };
    }

    /** A handle that uninstalls hooks; closing it never throws. */
    interface Installed extends AutoCloseable {
        @Override
        void close();
    }
}
