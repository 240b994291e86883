package dev.weft.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/**
 * The outputs of the linear projections of one selectively checkpointed forward, in the order it
 * computed them. The projections' GEMMs are most of a decoder layer's FLOPs but their outputs are
 * a minority of its bytes, so selective recompute keeps these and its backward replay takes them
 * instead of running the GEMMs again; everything else (norms, SwiGLU, RoPE, attention) is
 * recomputed.
 *
 * <p>{@code Matmul.linear} asks {@link #current()}: while one is recording it hands over each
 * output with {@link #record}; while one is replaying it takes {@link #replay} instead of
 * computing. {@link ActivationCheckpoint} installs them; nothing else needs to.
 */
public final class KeptProjections {
    private static final ThreadLocal<KeptProjections> CURRENT = new ThreadLocal<>();

    private final List<Tensor> outputs = new ArrayList<>();
    private final List<SavedTensor> saved = new ArrayList<>();
    private boolean replaying;
    private int next;

    KeptProjections() {}

    /** The recording or replay of projection outputs active on this thread; null when none is. */
    public static KeptProjections current() {
        return CURRENT.get();
    }

    /** Makes {@code kept} (null: none) current until the returned handle is closed. */
    static SavedTensorHooks.Installed install(KeptProjections kept) {
        KeptProjections previous = CURRENT.get();
        if (kept == null) CURRENT.remove();
        else CURRENT.set(kept);
        return () -> {
            if (previous == null) CURRENT.remove();
            else CURRENT.set(previous);
        };
    }

    /** Keeps projection output {@code y} (computed while recording), taking it out of the current scope. */
    public void record(Tensor y) {
        if (replaying) throw new IllegalStateException("record() while replaying kept projections");
        outputs.add(Scope.keep(y));
    }

    /**
     * While replaying: the kept output of the next projection, as a new tensor over the same
     * memory, to which the projection attaches its backward. Null while recording.
     */
    public Tensor replay(int[] shape) {
        if (!replaying) return null;
        if (next >= saved.size())
            throw new IllegalStateException("selective recompute: the replay computes more projections than the " + saved.size()
                    + " its forward kept; the checkpointed body must compute the same projections each time it runs");
        Tensor y = saved.get(next).get();
        if (!Arrays.equals(y.shape(), shape))
            throw new IllegalStateException("selective recompute: projection " + next + " of the replay has shape " + Arrays.toString(shape)
                    + ", the forward kept " + Arrays.toString(y.shape()));
        next++;
        return y.detach();
    }

    /** Number of outputs kept. */
    int size() {
        return outputs.size();
    }

    /** Saves every kept output for backward through {@code save} (a GradFn's, so saved-tensor hooks see them). */
    void saveThrough(Function<Tensor, SavedTensor> save) {
        for (Tensor t : outputs) saved.add(save.apply(t));
    }

    /** Hands the kept outputs to the current scope, which frees them if backward never runs. */
    void registerInCurrentScope() {
        for (Tensor t : outputs) Scope.register(t);
    }

    /** Switches to replay, from the first kept output. */
    KeptProjections replaying() {
        replaying = true;
        next = 0;
        return this;
    }

    void checkReplayed() {
        if (next != saved.size())
            throw new IllegalStateException("selective recompute: the replay computed " + next + " projections, its forward kept "
                    + saved.size() + "; the checkpointed body must compute the same projections each time it runs");
    }

    /** Frees the kept outputs: the replay that needed them is done. */
    void free() {
        for (Tensor t : outputs) t.close();
        outputs.clear();
    }
}
