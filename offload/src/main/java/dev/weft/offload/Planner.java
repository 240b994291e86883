package dev.weft.offload;

import dev.weft.core.Bytes;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * Chooses the offload policy that fits a device budget at the lowest predicted step time, from
 * figures measured on the spot ({@link Measurements}: probes of the real layer at the real batch,
 * and the state the real optimizer holds). Layers of one model are alike, so a policy is how many
 * layers take each {@link LayerPolicy}, plus where the optimizer state and (under ZeRO-3) the
 * weight shards live; every such mix is tried.
 *
 * <p>The device peak of a mix is found by replaying a micro-batch over measured per-layer figures
 * ({@link LayerMemory}) on top of the weights, gradients and optimizer state left on the device:
 * the forward, where each layer adds what it keeps and needs its working set on top of what the
 * layers before it keep (and, at worst, the bytes an offloading layer before it is still sending); the root (head and loss); then the backward from the last layer to the
 * first, where a layer that offloads brings its bytes back (unless the layer after it prefetched
 * them) and prefetches the layer before when that one offloads too, needs its working set, and
 * frees what its backward is done with. Its step time is grad_accum times the per-layer and root
 * times, plus the optimizer step.
 */
public final class Planner {
    private Planner() {}

    /**
     * Per-rank figures. {@code weights}, {@code gradients}, {@code optimizerState}: device bytes
     * of each with nothing offloaded. {@code memory}: one layer's device bytes over a micro-batch
     * under each layer policy. The root's: {@code rootBefore}, what the embedding leaves before the
     * first layer; {@code rootWorking}, what the head and loss need on top of every layer's kept
     * bytes between the forward and the first layer's backward; {@code rootKept}, what of that is
     * still held when the first layer's backward starts (the head's activations and gradients).
     * {@code evaluation}: what a validation batch's forward needs. Every figure counts the pool's
     * blocks (requests rounded up to their size class), which is what train.memory_budget_mib caps. {@code layerSeconds}:
     * one layer's forward and backward of a micro-batch; {@code rootSeconds}: the rest of a
     * micro-batch (embedding, head, loss). {@code optimizer}: the step with the state on each
     * tier. Policies or tiers missing from a map are not available.
     */
    public record Measurements(int layers, int gradAccum, long weights, long gradients, long optimizerState, Map<LayerPolicy, LayerMemory> memory,
                               long rootBefore, long rootWorking, long rootKept, long evaluation,
                               Map<LayerPolicy, Double> layerSeconds, double rootSeconds, Map<Tier, OptimizerStep> optimizer) {}

    /**
     * One layer's device bytes over a micro-batch under one policy. {@code kept}: held from its
     * forward to its backward; {@code forwardWorking}, {@code backwardWorking}: needed on top while
     * its forward or backward runs; {@code freed}: given back when its backward ends (for a
     * recomputing layer, what it kept beyond its input); {@code restored}: for a layer that
     * offloads, the bytes that come back for its backward (and go again after it).
     */
    public record LayerMemory(long kept, long forwardWorking, long backwardWorking, long freed, long restored) {}

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

    /**
     * The fastest plan whose device peak is at most {@code budgetBytes}, or
     * a {@link NoPlanException} that names the smallest budget that works.
     */
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
            if (m.memory().containsKey(p)) order.add(p);
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
     * phases: the micro-batch (replayed as the class comment says, over the weights, gradients and
     * the state left on the device), and the optimizer step (the same base plus what the step
     * streams through the device).
     */
    public static Plan cost(Measurements m, List<LayerPolicy> layers, Tier optimizer) {
        int n = layers.size();
        LayerMemory[] mem = new LayerMemory[n];
        double perMicro = m.rootSeconds();
        for (int j = 0; j < n; j++) {
            mem[j] = require(m.memory(), layers.get(j), "layer memory");
            perMicro += require(m.layerSeconds(), layers.get(j), "time");
        }
        long live = m.rootBefore(), activations = live;
        for (int j = 0; j < n; j++) { // forward
            // an offloading layer's bytes leave on the I/O threads: at worst still here through the next layer's forward
            long sending = j > 0 && offloads(layers.get(j - 1)) ? mem[j - 1].restored() : 0;
            activations = Math.max(activations, live + sending + mem[j].forwardWorking());
            live += mem[j].kept();
        }
        long sending = n > 0 && offloads(layers.get(n - 1)) ? mem[n - 1].restored() : 0; // the last layer's bytes may still be leaving
        activations = Math.max(activations, live + sending + m.rootWorking());
        live += m.rootKept();
        boolean ownBack = false; // layer j's bytes already prefetched by layer j + 1
        for (int j = n - 1; j >= 0; j--) { // backward
            boolean offloads = offloads(layers.get(j));
            if (offloads && !ownBack) live += mem[j].restored();
            ownBack = false;
            if (offloads && j > 0 && offloads(layers.get(j - 1))) {
                live += mem[j - 1].restored();
                ownBack = true;
            }
            activations = Math.max(activations, live + mem[j].backwardWorking());
            live -= offloads ? mem[j].restored() : mem[j].freed();
        }
        OptimizerStep step = require(m.optimizer(), optimizer, "optimizer step");
        long state = optimizer == Tier.DEVICE ? m.optimizerState() : 0;
        long base = m.weights() + m.gradients() + state;
        long peak = base + Math.max(Math.max(activations, step.stepBytes()), m.evaluation());
        return new Plan(List.copyOf(layers), optimizer, peak, m.gradAccum() * perMicro + step.seconds());
    }

    private static boolean offloads(LayerPolicy p) {
        return p == LayerPolicy.HOST || p == LayerPolicy.DISK;
    }

    private static <K, V> V require(Map<K, V> map, K key, String what) {
        V v = map.get(key);
        if (v == null) throw new IllegalArgumentException("no measured " + what + " for " + key);
        return v;
    }
}
