package dev.weft.trainer;

import dev.weft.core.Bytes;
import dev.weft.core.MemoryPool;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.offload.Bandwidth;
import dev.weft.offload.LayerPolicy;
import dev.weft.offload.OptimizerOffload;
import dev.weft.offload.Planner;
import dev.weft.offload.Tier;
import dev.weft.optimizers.ParameterGroups;
import dev.weft.trainer.config.ConfigException;
import dev.weft.trainer.config.TrainConfig;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The offload planner's figures, measured on the spot. Layers of one model are alike, so the real
 * layer is probed in models of two and three layers at the real widths, micro-batch and sequence
 * length: for each layer policy, the device bytes and the time of a micro-batch's forward and
 * backward; the difference between the two probes is one layer's, the rest is the root's
 * (embedding, head, loss) and the policy's transient working set. The optimizer step is timed with
 * its state on each tier; the state's size comes from the real optimizer's per-parameter bytes.
 * Every figure a plan predicts is one of these or a sum of them.
 */
public final class OffloadPlanning {
    /** Timed micro-batches per probe and policy; the fastest counts (a shared machine only ever slows a run down). */
    private static final int REPEATS = 5;

    private OffloadPlanning() {}

    /** What was measured, per layer and in all, and the rates behind the times. */
    public record Report(Planner.Measurements measured, long layerWeights, long layerState, long rootWeights, long rootState,
                         Map<LayerPolicy, Long> savedPerLayer, double hostCopyGBs, Bandwidth disk, String diskIo, double layerGflops) {}

    /** Measures {@code cfg}'s layer and optimizer as {@code weft plan} and {@code offload: auto} use them; {@code dp} ranks share the state as its ZeRO stage says. */
    public static Report measure(TrainConfig cfg, int dp, PrintStream progress) {
        if (cfg.parallel().tp() > 1 || cfg.parallel().pp() > 1)
            throw new ConfigException("the offload planner plans layouts without tensor or pipeline parallelism (parallel.tp and parallel.pp = 1); "
                    + "set offload.activations, offload.recompute and offload.optimizer yourself there");
        TrainConfig.Train t = cfg.train();
        int b = t.microBatch(), seq = t.seqLen();
        TrainConfig.Offload probeTiers = new TrainConfig.Offload(false, List.of("disk"), List.of("none"), "none", "none", cfg.offload().diskDir(),
                cfg.offload().diskIo(), cfg.offload().ioThreads(), 0, 0, cfg.offload().prefetchMiB());
        Offloading tiers;
        boolean disk = true;
        try {
            tiers = Offloading.create(probeTiers);
        } catch (RuntimeException e) {
            progress.println("plan: no disk tier (" + e.getMessage() + "); planning without it");
            disk = false;
            tiers = Offloading.create(probeTiers.withPolicy(List.of("host"), List.of("none"), "none", "none"));
        }
        try (Offloading off = tiers) {
            List<LayerPolicy> policies = new ArrayList<>(List.of(LayerPolicy.KEEP, LayerPolicy.SELECTIVE, LayerPolicy.FULL, LayerPolicy.HOST));
            if (disk) policies.add(LayerPolicy.DISK);
            Map<LayerPolicy, Planner.LayerMemory> memory = new EnumMap<>(LayerPolicy.class);
            Map<LayerPolicy, Double> layerSeconds = new EnumMap<>(LayerPolicy.class);
            Map<LayerPolicy, Double> rootSeconds = new EnumMap<>(LayerPolicy.class);
            long layerWeights = 0, layerState = 0, rootWeights = 0, rootState = 0, probeParams = 0;
            long[] root = null; // {before the layers, working set, kept into backward}
            long evaluation = 0;
            Map<Tier, Planner.OptimizerStep> steps = new EnumMap<>(Tier.class);
            Map<LayerPolicy, Long> saved = new EnumMap<>(LayerPolicy.class);
            progress.printf("plan: probing a 3-layer model (d_model %d, micro-batch %d x %d tokens) under %d layer policies%n", cfg.model().dModel(), b, seq,
                    policies.size());
            Llama probe = new Llama(cfg.model().withLayers(3), t.seed());
            try {
                Batch batch = new Batch(b, seq, cfg.model().vocab(), t.seed());
                LayerMeter meter = new LayerMeter(3, off.offloader()::flush);
                probe.namedModules().forEach((path, m) -> {
                    if (path.matches("model\\.layers\\.\\d+")) meter.watch(m, Integer.parseInt(path.substring("model.layers.".length())));
                });
                for (int w = 0; w < 2; w++) microBatch(probe, batch); // the JIT first, and the gradients exist from here on
                for (LayerPolicy p : policies) { // each policy once untimed: its own code paths warm too
                    Parallelize.activations(probe, uniform(cfg.offload(), p), off);
                    microBatch(probe, batch);
                }
                // round-robin over the policies, so that a slow spell of a shared machine hits them alike; the fastest run counts
                for (int r = 0; r < REPEATS; r++) {
                    for (LayerPolicy p : policies) {
                        Parallelize.activations(probe, uniform(cfg.offload(), p), off);
                        meter.reset();
                        long t0 = System.nanoTime();
                        microBatch(probe, batch);
                        long total = System.nanoTime() - t0;
                        if (r == 0) {
                            memory.put(p, meter.memory(offloads(p)));
                            if (p == LayerPolicy.KEEP) root = meter.root();
                        }
                        double perLayer = meter.nanos / 3e9;
                        if (perLayer < layerSeconds.getOrDefault(p, Double.MAX_VALUE)) {
                            layerSeconds.put(p, perLayer);
                            rootSeconds.put(p, (total - meter.nanos) / 1e9);
                        }
                    }
                }
                Parallelize.activations(probe, uniform(cfg.offload(), LayerPolicy.KEEP), off);
                Batch validation = new Batch(b * dp, seq, cfg.model().vocab(), t.seed()); // every rank evaluates the global batch's rows
                for (int r = 0; r < 2; r++) {
                    MemoryPool pool = MemoryPool.host();
                    long base = pool.liveBlockBytes();
                    pool.resetPeaks();
                    try (var ng = dev.weft.core.Autograd.noGrad(); Scope s = Scope.open()) {
                        Parallelize.Loss.CROSS_ENTROPY.of(probe.forward(validation.ids(), validation.rows(), seq), validation.targets());
                    }
                    evaluation = Math.max(evaluation, pool.peakLiveBlockBytes() - base);
                }
                saved.put(LayerPolicy.KEEP, probe.activationFootprint(0, null, b, seq).savedBytes());
                Map<String, Tensor> params = probe.namedParameters();
                for (Tensor p : params.values()) probeParams += p.numel();
                try (ParameterGroups opt = optimizer(cfg, params)) {
                    Map<String, Long> stateBlocks = new java.util.LinkedHashMap<>();
                    opt.stateByParameter().forEach((name, state) -> {
                        long bytes = 0;
                        for (Tensor st : state) bytes += MemoryPool.blockBytes(st.storage().bytes());
                        stateBlocks.put(name, bytes);
                    });
                    for (var e : stateBlocks.entrySet()) {
                        long w = MemoryPool.blockBytes(params.get(e.getKey()).numel() * 4);
                        if (e.getKey().startsWith("model.layers.0.")) {
                            layerWeights += w;
                            layerState += e.getValue();
                        } else if (!e.getKey().startsWith("model.layers.")) {
                            rootWeights += w;
                            rootState += e.getValue();
                        }
                    }
                }
                List<Long> perParameter = new ArrayList<>(); // state bytes in step order, as the device buffers hold them
                try (ParameterGroups opt = optimizer(cfg, params)) {
                    for (List<Tensor> state : opt.stateByParameter().values()) {
                        long bytes = 0;
                        for (Tensor st : state) bytes += MemoryPool.blockBytes(st.storage().bytes());
                        perParameter.add(bytes);
                    }
                }
                for (Tier tier : disk ? List.of(Tier.DEVICE, Tier.HOST, Tier.DISK) : List.of(Tier.DEVICE, Tier.HOST)) {
                    Planner.OptimizerStep measured = optimizerStep(cfg, params, off, tier);
                    // the streamed window is known from the sizes (the probe's layers stand for any number of them);
                    // timing decides how full it gets in one run, so the planner takes it full
                    long window = tier == Tier.DEVICE ? 0 : OptimizerOffload.window(perParameter, tier);
                    steps.put(tier, new Planner.OptimizerStep(Math.max(measured.stepBytes(), steps.containsKey(Tier.DEVICE)
                            ? steps.get(Tier.DEVICE).stepBytes() + window : window), measured.seconds()));
                }
            } finally {
                probe.close();
            }
            int layers = cfg.model().layers(), zero = cfg.parallel().zero();
            long weights = rootWeights + layers * layerWeights, state = rootState + layers * layerState;
            double scale = (double) (weights / 4) / probeParams; // the step's time grows with the parameters it updates
            Map<Tier, Planner.OptimizerStep> scaled = new EnumMap<>(Tier.class);
            steps.forEach((tier, s) -> scaled.put(tier, new Planner.OptimizerStep(s.stepBytes(), s.seconds() * scale / (zero >= 1 ? dp : 1))));
            Planner.Measurements m = new Planner.Measurements(layers, t.gradAccum(), zero == 3 ? weights / dp : weights, zero >= 2 ? weights / dp : weights,
                    zero >= 1 ? state / dp : state, memory, root[0], root[1], root[2], evaluation, layerSeconds, rootSeconds.get(LayerPolicy.KEEP), scaled);
            double host = Bandwidth.hostCopy(64L << 20);
            Bandwidth diskRate = disk ? Bandwidth.ofTier(off.offloader().disk(), 64L << 20, 4L << 20) : null;
            String io = disk ? off.offloader().disk().io().name().toLowerCase() : "none";
            double flops = 6.0 * (layerWeights / 4) * b * seq / layerSeconds.get(LayerPolicy.KEEP) / 1e9;
            return new Report(m, layerWeights, layerState, rootWeights, rootState, saved, host, diskRate, io, flops);
        }
    }

    /**
     * {@code offload: auto}: measures, chooses the fastest plan within train.memory_budget_mib and
     * returns the config with that policy. Under {@code weft launch} the first rank measures and
     * chooses, and every rank takes its plan, so that all ranks run one layout.
     */
    static Auto auto(TrainConfig cfg, dev.weft.parallel.ProcessGroup group, PrintStream out) {
        int layers = cfg.model().layers();
        long budget = cfg.train().memoryBudgetMiB() << 20;
        long held = MemoryPool.host().liveBlockBytes(); // what this process holds already, before the model exists: the plan gets the rest
        if (held >= budget)
            throw new ConfigException("offload: auto: the process already holds " + Bytes.human(held) + " of train.memory_budget_mib " + Bytes.human(budget));
        float[] code = new float[layers + 3]; // each layer's policy, the optimizer's tier, the predicted peak in KiB as two 20-bit halves (exact in floats)
        Planner.Plan plan = null;
        if (group == null || group.rank() == 0) {
            Report r = measure(cfg, group == null ? 1 : group.size(), out);
            plan = Planner.best(r.measured(), budget - held);
            for (int i = 0; i < layers; i++) code[i] = plan.layers().get(i).ordinal();
            code[layers] = plan.optimizer().ordinal();
            long kib = plan.peakBytes() >> 10;
            code[layers + 1] = kib >> 20;
            code[layers + 2] = kib & ((1 << 20) - 1);
        }
        if (group != null && group.size() > 1) {
            Tensor t = Scope.outside(() -> Tensor.empty(layers + 3));
            try (t) {
                for (int i = 0; i < code.length; i++) t.data().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, i, code[i]);
                group.broadcast(t, 0);
                for (int i = 0; i < code.length; i++) code[i] = t.data().getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, i);
            }
        }
        List<LayerPolicy> policy = new ArrayList<>();
        for (int i = 0; i < layers; i++) policy.add(LayerPolicy.values()[(int) code[i]]);
        Tier optimizer = Tier.values()[(int) code[layers]];
        long predicted = ((((long) code[layers + 1] << 20) + (long) code[layers + 2]) << 10) + held;
        List<String> recompute = policy.stream().map(LayerPolicy::recompute).toList();
        List<String> activations = policy.stream().map(p -> p.activations().configName()).toList();
        TrainConfig planned = cfg.withOffload(cfg.offload().withPolicy(activations, recompute, optimizer.configName(), cfg.offload().parameters()));
        String line = String.format("offload: auto within train.memory_budget_mib %s%s: %s; predicted peak %s%s", Bytes.human(budget),
                held > 0 ? " (" + Bytes.human(held) + " of it held before the model was built)" : "",
                (plan != null ? plan : new Planner.Plan(policy, optimizer, predicted, 0)).describe(), Bytes.human(predicted),
                plan == null ? "" : String.format(", step %.3f s", plan.stepSeconds()));
        return new Auto(planned, predicted, line);
    }

    /** What {@code offload: auto} chose: the config with its policy, the predicted device peak, and the line that says so. */
    record Auto(TrainConfig config, long predictedPeak, String line) {}

    private static boolean offloads(LayerPolicy p) {
        return p.activations() != Tier.DEVICE;
    }

    /**
     * Watches a probe's decoder layers from inside, through their hooks: each layer's forward from
     * before to after it, its backward from the gradient reaching its output to its passing the
     * input (a recompute and a wait for offloaded bytes fall inside). It times them (timing the
     * layers themselves keeps a shared machine's noise out of a small difference) and takes the
     * device bytes at each edge and the peak within, from which {@link #memory} reads one layer's
     * figures: the middle one for what it keeps and needs, the first for an offloading layer's
     * backward (its bytes were prefetched by the layer after it, and it prefetches none).
     */
    private static final class LayerMeter implements dev.weft.core.nn.Module.Hooks {
        private final Map<dev.weft.core.nn.Module, Integer> index = new java.util.IdentityHashMap<>();
        private final long[] forwardStart, forwardEnd, forwardPeak, backwardStart, backwardEnd, backwardPeak;
        private final int layers;
        long nanos, forwardClock, backwardClock, rootPeak, base;
        private final MemoryPool pool = MemoryPool.host();

        private final Runnable settle;

        /** {@code settle} waits for the offload writes in flight, so a layer's forward is charged with the bytes it sends away. */
        LayerMeter(int layers, Runnable settle) {
            this.layers = layers;
            this.settle = settle;
            forwardStart = new long[layers];
            forwardEnd = new long[layers];
            forwardPeak = new long[layers];
            backwardStart = new long[layers];
            backwardEnd = new long[layers];
            backwardPeak = new long[layers];
        }

        void watch(dev.weft.core.nn.Module m, int layer) {
            index.put(m, layer);
            m.hooks(this);
        }

        void reset() {
            nanos = 0;
            base = pool.liveBlockBytes();
        }

        Planner.LayerMemory memory(boolean offloads) {
            int mid = 1;
            long kept = forwardEnd[mid] - forwardStart[mid];
            long forwardWorking = forwardPeak[mid] - forwardStart[mid];
            if (!offloads) return new Planner.LayerMemory(kept, forwardWorking, backwardPeak[mid] - backwardStart[mid], backwardStart[mid] - backwardEnd[mid], 0);
            return new Planner.LayerMemory(kept, forwardWorking, backwardPeak[0] - backwardStart[0], 0, backwardStart[0] - backwardEnd[0]);
        }

        /**
         * The root's bytes: what the embedding left before the first layer, what the head and loss
         * needed on top of the layers' between the last forward and the first backward, and what of
         * it was still held when that backward started.
         */
        long[] root() {
            long end = forwardEnd[layers - 1];
            return new long[] {forwardStart[0] - base, rootPeak - end, backwardStart[layers - 1] - end};
        }

        @Override
        public void beforeForward(dev.weft.core.nn.Module m) {
            int j = index.get(m);
            forwardStart[j] = pool.liveBlockBytes();
            pool.resetPeaks();
            forwardClock = System.nanoTime();
        }

        @Override
        public void afterForward(dev.weft.core.nn.Module m) {
            nanos += System.nanoTime() - forwardClock;
            settle.run(); // outside the clock: in training the writes overlap the next layer
            int j = index.get(m);
            forwardPeak[j] = pool.peakLiveBlockBytes();
            forwardEnd[j] = pool.liveBlockBytes();
            pool.resetPeaks();
        }

        @Override
        public void beforeBackward(dev.weft.core.nn.Module m) {
            int j = index.get(m);
            if (j == layers - 1) rootPeak = pool.peakLiveBlockBytes();
            backwardStart[j] = pool.liveBlockBytes();
            pool.resetPeaks();
            backwardClock = System.nanoTime();
        }

        @Override
        public void afterBackward(dev.weft.core.nn.Module m) {
            nanos += System.nanoTime() - backwardClock;
            int j = index.get(m);
            backwardPeak[j] = pool.peakLiveBlockBytes();
            backwardEnd[j] = pool.liveBlockBytes();
            pool.resetPeaks();
        }
    }

    /** Every layer under {@code p}, keeping the rest of the offload settings. */
    private static TrainConfig.Offload uniform(TrainConfig.Offload o, LayerPolicy p) {
        return o.withPolicy(List.of(p.activations().configName()), List.of(p.recompute()), "none", "none");
    }

    private static ParameterGroups optimizer(TrainConfig cfg, Map<String, Tensor> params) {
        return new ParameterGroups(params, cfg.optimizer().groups(), cfg.optimizer().fallback());
    }

    /** The optimizer's step over the probe's parameters (which have gradients) with the state on {@code tier}: extra device bytes and median time. */
    private static Planner.OptimizerStep optimizerStep(TrainConfig cfg, Map<String, Tensor> params, Offloading off, Tier tier) {
        try (ParameterGroups opt = optimizer(cfg, params)) {
            if (tier != Tier.DEVICE) new OptimizerOffload(off.offloader(), opt, params, tier);
            opt.step(0); // warm-up; a zero learning rate leaves the probe's weights alone
            double best = Double.MAX_VALUE;
            long extra = 0;
            for (int r = 0; r < REPEATS; r++) {
                MemoryPool pool = MemoryPool.host();
                long base = pool.liveBlockBytes();
                pool.resetPeaks();
                long t0 = System.nanoTime();
                opt.step(0);
                off.offloader().flush();
                best = Math.min(best, (System.nanoTime() - t0) / 1e9);
                extra = Math.max(extra, pool.peakLiveBlockBytes() - base);
            }
            return new Planner.OptimizerStep(extra, best);
        }
    }

    /** Fixed random tokens for the probes: memory and time do not depend on their values. */
    private record Batch(int rows, int seq, int[] ids, int[] targets) {
        Batch(int rows, int seq, int vocab, long seed) {
            this(rows, seq, random(rows * seq, vocab, seed), random(rows * seq, vocab, seed + 1));
        }

        private static int[] random(int n, int vocab, long seed) {
            SplittableRandom r = new SplittableRandom(seed);
            int[] out = new int[n];
            for (int i = 0; i < n; i++) out[i] = r.nextInt(vocab);
            return out;
        }
    }

    private static void microBatch(Llama model, Batch b) {
        try (Scope s = Scope.open()) {
            Tensor logits = model.forward(b.ids(), b.rows(), b.seq());
            Parallelize.Loss.CROSS_ENTROPY.of(logits, b.targets()).backward();
        }
    }

    /** {@code weft plan}'s table: per layer and root, what each policy keeps, and the chosen plan against none. */
    public static String describe(TrainConfig cfg, Report r, Planner.Plan none, Planner.Plan chosen, long budget) {
        Planner.Measurements m = r.measured();
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("measured here: layer forward+backward %.2f GFLOP/s; host copy %.1f GB/s; disk tier %s%n", r.layerGflops(), r.hostCopyGBs(),
                r.disk() == null ? "unavailable" : String.format("write %.2f GB/s, read %.2f GB/s (%s, %s)", r.disk().writeGBs(), r.disk().readGBs(), r.diskIo(),
                        cfg.offload().diskDir())));
        sb.append(String.format("per layer (x%d), micro-batch %d x %d tokens:%n", m.layers(), cfg.train().microBatch(), cfg.train().seqLen()));
        sb.append(String.format("  weights %s, gradients %s, optimizer state %s (%s); saved for backward %s%n", Bytes.human(r.layerWeights()),
                Bytes.human(r.layerWeights()), Bytes.human(r.layerState()), cfg.optimizer().name(), Bytes.human(r.savedPerLayer().getOrDefault(LayerPolicy.KEEP, 0L))));
        sb.append("  | policy | kept to backward | forward working set | backward working set | brought back | forward+backward |\n"
                + "  |---|---:|---:|---:|---:|---:|\n");
        m.memory().forEach((p, lm) -> sb.append(String.format("  | %s | %s | %s | %s | %s | %.1f ms |%n", p.label(), Bytes.human(lm.kept()),
                Bytes.human(lm.forwardWorking()), Bytes.human(lm.backwardWorking()), Bytes.human(lm.restored()), 1e3 * m.layerSeconds().get(p))));
        sb.append(String.format("root (embedding, final norm, head, loss): weights %s, optimizer state %s, working set %s; %.1f ms per micro-batch%n",
                Bytes.human(r.rootWeights()), Bytes.human(r.rootState()), Bytes.human(m.rootWorking()), 1e3 * m.rootSeconds()));
        sb.append("optimizer step (whole model):");
        m.optimizer().forEach((tier, s) -> sb.append(String.format(" state on %s %.1f ms (+%s on the device)", tier.name().toLowerCase(), 1e3 * s.seconds(),
                Bytes.human(s.stepBytes()))));
        sb.append(String.format("%nno offload: predicted peak %s, step %.3f s%n", Bytes.human(none.peakBytes()), none.stepSeconds()));
        if (chosen != null) {
            sb.append(String.format("budget %s: %s%n  predicted peak %s, step %.3f s (%.0f%% of no offload's throughput)%n", Bytes.human(budget), chosen.describe(),
                    Bytes.human(chosen.peakBytes()), chosen.stepSeconds(), 100 * none.stepSeconds() / chosen.stepSeconds()));
            sb.append("  as config: offload: {recompute: ").append(compact(chosen.recompute())).append(", activations: ").append(compact(chosen.activations()))
                    .append(", optimizer: ").append(chosen.optimizer().configName()).append("}\n");
        }
        return sb.toString();
    }

    /** A per-layer list as YAML, or its one value when all layers agree. */
    private static String compact(List<String> words) {
        return words.stream().distinct().count() == 1 ? words.getFirst() : "[" + String.join(", ", words) + "]";
    }
}
