package dev.weft.offload;

import dev.weft.core.Bytes;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * Chooses the offload policy that fits a device budget at the lowest predicted step time, from
 * figures measured on the spot ({@link Measurements}: probes of the real layer at the real batch,
 * and the state the real optimizer holds). Layers of one model are alike, so a policy is how many
 * layers take each {@link LayerPolicy}, plus where the optimizer state and (under ZeRO-3) the
 * weight shards live; every such mix is tried.
 *
 * <p>The device peak of a mix is the weights, gradients and optimizer state left on the device,
 * plus what each layer keeps from its forward to its backward, plus the largest working set any
 * of the layer policies used needs on top (its transient: the root's activations, the layer whose
 * backward runs, what is prefetched). Its step time is grad_accum times the per-layer and root
 * times, plus the optimizer step.
 */
public final class Planner {
    private Planner() {}

    /**
     * Per-rank figures. {@code weights}, {@code gradients}, {@code optimizerState}: device bytes
     * of each with nothing offloaded. {@code kept}: device bytes one layer holds from its forward
     * to its backward under each layer policy; {@code transientBytes}: what a micro-batch needs on
     * top of all layers' kept bytes at its peak under that policy; {@code layerSeconds}: one
     * layer's forward and backward of a micro-batch; {@code rootSeconds}: the rest of a
     * micro-batch (embedding, head, loss). {@code optimizer}: the step with the state on each
     * tier. Policies or tiers missing from a map are not available.
     */
    public record Measurements(int layers, int gradAccum, long weights, long gradients, long optimizerState, Map<LayerPolicy, Long> kept,
                               Map<LayerPolicy, Long> transientBytes, Map<LayerPolicy, Double> layerSeconds, double rootSeconds,
                               Map<Tier, OptimizerStep> optimizer) {}

    /** The optimizer step with its state on one tier: the device bytes it needs beyond what stays resident, and its time. */
    public record OptimizerStep(long stepBytes, double seconds) {}

    /** A policy and what it is predicted to cost. {@code layers}: one policy per layer, in layer order. */
    public record Plan(List<LayerPolicy> layers, Tier optimizer, long peakBytes, double stepSeconds) {
        /** The config words for offload.recompute, one per layer. */
        public List<String> recompute() {
            return layers.stream().map(LayerPolicy::recompute).toList();
        }

        /** The config words for offload.activations, one per layer. */
        public List<String> activations() {
            return layers.stream().map(p -> p.activations().configName()).toList();
        }

        /** One line: which layers do what, and where the state lives. */
        public String describe() {
            StringBuilder sb = new StringBuilder();
            int i = 0;
            while (i < layers.size()) {
                int j = i;
                while (j + 1 < layers.size() && layers.get(j + 1) == layers.get(i)) j++;
                if (!sb.isEmpty()) sb.append(", ");
                sb.append(i == j ? "layer " + i : "layers " + i + "-" + j).append(' ').append(layers.get(i).label());
                i = j + 1;
            }
            return sb.append("; optimizer state on ").append(optimizer.name().toLowerCase()).toString();
        }
    }

    /** No policy fits: the message gives the smallest budget that would. */
    public static final class NoPlanException extends IllegalArgumentException implements dev.weft.core.UserError {
        private final long smallest;

        NoPlanException(String message, long smallest) {
            super(message);
            this.smallest = smallest;
        }

        /** The smallest device budget any policy meets, in bytes. */
        public long smallestBytes() {
            return smallest;
        }
    }

    /** The policy with no offload and no recomputation, with its predicted cost. */
    public static Plan none(Measurements m) {
        return cost(m, Collections.nCopies(m.layers(), LayerPolicy.KEEP), Tier.DEVICE);
    }

    /** The fastest plan whose device peak is at most {@code budgetBytes}, or a {@link NoPlanException} that names the smallest budget that works. */
    public static Plan best(Measurements m, long budgetBytes) {
        Plan best = null, smallest = null;
        for (Plan p : all(m)) {
            if (smallest == null || p.peakBytes() < smallest.peakBytes() || p.peakBytes() == smallest.peakBytes() && p.stepSeconds() < smallest.stepSeconds())
                smallest = p;
            if (p.peakBytes() > budgetBytes) continue;
            if (best == null || p.stepSeconds() < best.stepSeconds() || p.stepSeconds() == best.stepSeconds() && p.peakBytes() < best.peakBytes()) best = p;
        }
        if (best != null) return best;
        long mib = (smallest.peakBytes() + (1 << 20) - 1) >> 20;
        throw new NoPlanException(String.format("no offload policy fits a device budget of %s: the smallest that works is %d MiB (%s, predicted peak %s); "
                + "raise train.memory_budget_mib to at least %d, or lower the batch or sequence length", Bytes.human(budgetBytes), mib, smallest.describe(),
                Bytes.human(smallest.peakBytes()), mib), smallest.peakBytes());
    }

    /** Every mix: counts of layers per policy (disk layers first, then host, full, selective, kept last), times the state tiers. */
    static List<Plan> all(Measurements m) {
        List<LayerPolicy> order = new ArrayList<>();
        for (LayerPolicy p : List.of(LayerPolicy.DISK, LayerPolicy.HOST, LayerPolicy.FULL, LayerPolicy.SELECTIVE, LayerPolicy.KEEP))
            if (m.kept().containsKey(p)) order.add(p);
        List<Plan> out = new ArrayList<>();
        int[] counts = new int[order.size()];
        for (Tier opt : m.optimizer().keySet()) mixes(m, order, counts, 0, m.layers(), opt, out);
        return out;
    }

    private static void mixes(Measurements m, List<LayerPolicy> order, int[] counts, int k, int left, Tier opt, List<Plan> out) {
        if (k == order.size() - 1) {
            counts[k] = left;
            List<LayerPolicy> layers = new ArrayList<>(m.layers());
            for (int i = 0; i < order.size(); i++) for (int c = 0; c < counts[i]; c++) layers.add(order.get(i));
            out.add(cost(m, layers, opt));
            return;
        }
        for (int c = 0; c <= left; c++) {
            counts[k] = c;
            mixes(m, order, counts, k + 1, left - c, opt, out);
        }
    }

    /**
     * The predicted device peak and step time of one policy. The peak is the larger of two
     * phases: forward and backward (weights, gradients, the state left on the device, what the
     * layers keep and the largest transient), and the optimizer step (weights, gradients, the
     * resident state and what the step streams through the device).
     */
    public static Plan cost(Measurements m, List<LayerPolicy> layers, Tier optimizer) {
        long kept = 0, transientBytes = 0;
        double perMicro = m.rootSeconds();
        Map<LayerPolicy, Integer> used = new EnumMap<>(LayerPolicy.class);
        for (LayerPolicy p : layers) {
            kept += require(m.kept(), p, "kept bytes");
            perMicro += require(m.layerSeconds(), p, "time");
            used.merge(p, 1, Integer::sum);
        }
        for (LayerPolicy p : used.keySet()) transientBytes = Math.max(transientBytes, require(m.transientBytes(), p, "transient bytes"));
        OptimizerStep step = require(m.optimizer(), optimizer, "optimizer step");
        long state = optimizer == Tier.DEVICE ? m.optimizerState() : 0;
        long base = m.weights() + m.gradients() + state;
        long peak = Math.max(base + kept + transientBytes, base + step.stepBytes());
        return new Plan(List.copyOf(layers), optimizer, peak, m.gradAccum() * perMicro + step.seconds());
    }

    private static <K, V> V require(Map<K, V> map, K key, String what) {
        V v = map.get(key);
        if (v == null) throw new IllegalArgumentException("no measured " + what + " for " + key);
        return v;
    }
}
