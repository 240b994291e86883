package dev.weft.offload;

import dev.weft.core.Autograd;
import dev.weft.core.SavedTensorHooks;
import dev.weft.core.Scope;
import dev.weft.core.Storage;
import dev.weft.core.Tensor;
import dev.weft.core.nn.ActivationPolicy;
import dev.weft.core.nn.BackwardHook;
import dev.weft.core.nn.Module;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;

/**
 * Activation offload, per layer: what a layer's ops save for backward goes to host or disk once
 * the layer's forward is done, and comes back for its backward. One instance serves every layer
 * that offloads (each installs it as its {@link ActivationPolicy} with its tier).
 *
 * <p>A layer's forward runs in a scope of its own under saved-tensor hooks that note what its ops
 * save. When it ends, the saved tensors made inside the layer are sent to the tier and every other
 * intermediate is freed at once; the layer's input (the previous layer's output, which the layer
 * before keeps) and its output stay, as do parameters. When the gradient reaches the layer's output,
 * its tensors are brought back and the previous layer's are prefetched, so the copy overlaps this
 * layer's backward (within {@code offload.prefetch_mib} in flight). Once backward has released
 * every tensor of the layer, their copies are dropped. At most one layer's bytes are on their way
 * out at a time: a layer that ends its forward while the one before is still sending waits for it,
 * which bounds the device memory the planner must allow for slow writes.
 */
public final class ActivationOffload {
    private final Offloader offloader;
    /** Layers whose backward has not finished, by the storage of their output: the next layer's input names its predecessor. */
    private final Map<Storage, Record> byOutput = new IdentityHashMap<>();
    private Record sending; // the last layer whose bytes were sent: its writes may still be in flight

    public ActivationOffload(Offloader offloader) {
        this.offloader = offloader;
    }

    /** The policy that sends a layer's saved activations to {@code tier} (host or disk). */
    public ActivationPolicy to(Tier tier) {
        if (tier == Tier.DEVICE) throw new IllegalArgumentException("activation offload to the device tier");
        return (m, x, body) -> forward(m, x, body, tier);
    }

    /** One layer's forward in one micro-batch: what it saved, where it went, and who came before. */
    private final class Record {
        final String label;
        final List<Tensor> kept = new ArrayList<>();            // saved tensors this layer owns, offloaded or not
        final List<Offloader.Handle> handles = new ArrayList<>();
        Record previous;
        Storage output;
        int live;        // packed values backward has not released yet
        boolean resident;

        Record(String label) {
            this.label = label;
        }

        void bringBack() {
            if (resident) return;
            resident = true;
            for (Offloader.Handle h : handles) offloader.acquire(h);
            if (previous != null) for (Offloader.Handle h : previous.handles) offloader.prefetch(h);
        }

        void released() {
            if (--live > 0) return;
            if (resident) for (Offloader.Handle h : handles) offloader.release(h, false);
            resident = false;
            for (Offloader.Handle h : handles) offloader.drop(h);
            handles.clear();
            for (Tensor t : kept) t.close();
            kept.clear();
            if (output != null) byOutput.remove(output, this);
            if (sending == this) sending = null;
        }
    }

    /** What pack hands autograd for one saved tensor. */
    private record Packed(Tensor tensor, Record record) {}

    private Tensor forward(Module m, Tensor x, UnaryOperator<Tensor> body, Tier tier) {
        if (!Autograd.isEnabled()) return body.apply(x); // nothing is saved: nothing to offload
        Record r = new Record(m.getClass().getSimpleName() + " activations");
        if (x != null) r.previous = byOutput.get(x.storage());
        List<Tensor> saved = new ArrayList<>();
        Tensor y;
        try (Scope layer = Scope.open()) {
            try (var hooks = SavedTensorHooks.install(new Hooks(r, saved))) {
                y = body.apply(x);
            }
            Scope.keep(y);
            Map<Storage, Tensor> mine = new LinkedHashMap<>();
            for (Tensor t : saved) {
                // what this layer made stays for backward (on the tier); the scope frees every other intermediate now
                if (!Scope.take(t)) continue;
                r.kept.add(t);
                if (t.storage() != y.storage()) mine.putIfAbsent(t.storage(), t);
            }
            // at most one layer's bytes leave at a time: the planner charges the forward with one layer still sending
            if (sending != null) for (Offloader.Handle h : sending.handles) offloader.awaitSent(h);
            for (Tensor t : mine.values()) r.handles.add(offloader.offload(t, tier, r.label));
            sending = r.handles.isEmpty() ? sending : r;
        }
        Scope.adopt(y);
        for (Tensor t : r.kept) Scope.adopt(t); // closed with the micro-batch should backward never run
        r.output = y.storage();
        byOutput.put(r.output, r);
        r.live = saved.size();
        if (r.live == 0) {
            byOutput.remove(r.output);
            return y;
        }
        return BackwardHook.on(y, r::bringBack);
    }

    private final class Hooks implements SavedTensorHooks {
        private final Record record;
        private final List<Tensor> saved;

        Hooks(Record record, List<Tensor> saved) {
            this.record = record;
            this.saved = saved;
        }

        @Override
        public Object pack(Tensor tensor) {
            saved.add(tensor);
            return new Packed(tensor, record);
        }

        @Override
        public Tensor unpack(Object packed) {
            Packed p = (Packed) packed;
            p.record().bringBack(); // its backward may start before the output's hook (a gradient reaching an inner op first)
            return p.tensor();
        }

        @Override
        public void release(Object packed) {
            ((Packed) packed).record().released();
        }
    }
}
