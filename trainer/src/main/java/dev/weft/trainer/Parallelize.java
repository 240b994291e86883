package dev.weft.trainer;

import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.core.ops.CrossEntropy;
import dev.weft.optimizers.Optimizers;
import dev.weft.optimizers.ParameterGroups;
import dev.weft.optimizers.Sharding;
import dev.weft.core.nn.ActivationPolicy;
import dev.weft.core.nn.Module;
import dev.weft.offload.LayerPolicy;
import dev.weft.parallel.DataParallel;
import dev.weft.parallel.FullyShardedDataParallel;
import dev.weft.parallel.DeviceMesh;
import dev.weft.parallel.GradientSync;
import dev.weft.parallel.ProcessGroup;
import dev.weft.parallel.pipeline.PipelineSync;
import dev.weft.parallel.pipeline.Schedule;
import dev.weft.parallel.pipeline.ScheduleValidator;
import dev.weft.parallel.pipeline.Schedules;
import dev.weft.parallel.tensor.ParallelStyle;
import dev.weft.parallel.tensor.TensorParallelSync;
import dev.weft.parallel.tensor.VocabParallelCrossEntropy;
import dev.weft.trainer.config.ConfigException;
import dev.weft.trainer.config.TrainConfig;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Predicate;

/**
 * Applies a parallel layout to a model in one place, keyed by parameter name, in torchtitan's fixed
 * order: pipeline split, tensor parallelism, recomputation and offload, then data-parallel sharding,
 * and finally the optimizer over what this rank steps. The model's code knows nothing of it.
 */
public final class Parallelize {
    private Parallelize() {}

    /** The mean loss of a micro-batch's logits (this rank's vocabulary block under tensor parallelism) against its targets. */
    @FunctionalInterface
    public interface Loss {
        /** One process's loss: the fused cross-entropy over the whole vocabulary. */
        Loss CROSS_ENTROPY = (logits, targets) -> CrossEntropy.loss(logits, targets, -1);

        Tensor of(Tensor logits, int[] targets);
    }

    /**
     * Megatron's split of a Llama block, keyed by module path: q, k, v, gate and up are
     * column-parallel (whole heads and a block of the feed-forward width per rank), o and down
     * row-parallel, the embedding and the head split the vocabulary. Norms stay replicated.
     */
    static final Map<String, ParallelStyle> LLAMA_TENSOR_PLAN = tensorPlan();

    private static Map<String, ParallelStyle> tensorPlan() {
        Map<String, ParallelStyle> plan = new LinkedHashMap<>();
        plan.put("model.embed_tokens", ParallelStyle.VOCAB_EMBEDDING);
        for (String p : List.of("q_proj", "k_proj", "v_proj")) plan.put("model.layers.*.self_attn." + p, ParallelStyle.COLWISE);
        plan.put("model.layers.*.self_attn.o_proj", ParallelStyle.ROWWISE);
        for (String p : List.of("gate_proj", "up_proj")) plan.put("model.layers.*.mlp." + p, ParallelStyle.COLWISE);
        plan.put("model.layers.*.mlp.down_proj", ParallelStyle.ROWWISE);
        plan.put("lm_head", ParallelStyle.COLWISE);
        return plan;
    }

    /** What a rank trains with: how its gradients are reduced, the optimizer over its part, and its loss. */
    public record Layout(GradientSync sync, ParameterGroups optimizer, Loss loss, Pipeline pipeline) implements AutoCloseable {
        @Override
        public void close() {
            optimizer.close();
            sync.close();
        }
    }

    /**
     * This rank's share of a pipeline: the schedule, the layers of every stage ({from, end}) and the
     * sync of the stages it holds.
     */
    public record Pipeline(Schedule schedule, int[][] layers, PipelineSync sync) {}

    /** The layout of {@code model} on {@code mesh} (null: one process) as {@code cfg} asks, without offload. */
    public static Layout apply(Llama model, DeviceMesh mesh, TrainConfig cfg) {
        return apply(model, mesh, cfg, null);
    }

    /** As above, moving what {@code cfg.offload()} asks to {@code offload}'s tiers (null: nothing is offloaded). */
    static Layout apply(Llama model, DeviceMesh mesh, TrainConfig cfg, Offloading offload) {
        // the optimizer's groups are formed over the whole model, whatever this rank holds
        Map<String, int[]> globalShapes = new LinkedHashMap<>();
        model.namedPlacements().forEach((k, place) -> globalShapes.put(k, place.globalShape()));
        // 1. pipeline split: this rank keeps the layers of its stages, and the embedding or the head where it holds the ends.
        Schedule schedule = null;
        int[][] stageLayers = null;
        if (mesh != null && mesh.pp().size() > 1) {
            int pp = mesh.pp().size(), stages = cfg.parallel().stages(pp), me = mesh.ppIndex();
            schedule = schedule(cfg, pp);
            stageLayers = PipelineStages.split(cfg.model(), stages, cfg.parallel().ppSplit(), cfg.train().seqLen());
            int[][] split = stageLayers;
            Schedule sched = schedule;
            model.retain(layer -> sched.rankOf(PipelineStages.stageOf(split, layer)) == me, schedule.rankOf(0) == me, schedule.rankOf(stages - 1) == me);
        }
        // 2. tensor parallelism: each rank re-places its blocks of the split weights and gets the collectives around them.
        boolean tensorParallel = mesh != null && mesh.tp().size() > 1;
        boolean sequenceParallel = tensorParallel && cfg.parallel().sequenceParallel();
        if (tensorParallel) tensorParallel(model, mesh.tp(), LLAMA_TENSOR_PLAN, sequenceParallel, cfg.train().seed());
        Map<String, Tensor> parameters = model.namedParameters();
        // 3. activations: each layer keeps what its ops save, recomputes some or all of it in backward, or offloads it to host or disk.
        activations(model, cfg.offload(), offload);
        // 4. data parallelism, with ZeRO's sharding of the optimizer state (1), gradients (2) and parameters (3): one sync per pipeline stage.
        TrainConfig.Optim o = cfg.optimizer();
        GradientSync sync;
        Pipeline pipeline = null;
        if (mesh != null && mesh.dp().size() > 1) DataParallel.verifyIdenticalWeights(mesh.dp(), parameters);
        if (schedule == null) {
            sync = dataParallel(model, parameters, mesh, cfg);
        } else {
            Map<Integer, GradientSync> stages = new LinkedHashMap<>();
            for (int s = 0; s < schedule.stages(); s++) {
                if (schedule.rankOf(s) != mesh.ppIndex()) continue;
                Map<String, Tensor> mine = new LinkedHashMap<>();
                for (var e : parameters.entrySet()) if (PipelineStages.stageOfParameter(stageLayers, e.getKey()) == s) mine.put(e.getKey(), e.getValue());
                stages.put(s, dataParallel(model, mine, mesh, cfg));
            }
            PipelineSync ps = new PipelineSync(stages, mesh.pp());
            pipeline = new Pipeline(schedule, stageLayers, ps);
            sync = ps;
        }
        Loss loss = Loss.CROSS_ENTROPY;
        if (tensorParallel) {
            Set<String> replicated = new TreeSet<>();
            model.namedPlacements().forEach((name, place) -> {
                if (place.isReplicated()) replicated.add(name);
            });
            // under sequence parallelism every replicated parameter (the norms' gains) sees only this rank's positions
            // a split matrix whose optimizer needs it whole is gathered for its update (see TensorParallelSync)
            Map<String, ParameterGroups.Spec> specs = assign(parameters, o);
            Map<String, dev.weft.core.nn.Placement> wholeForOptimizer = new LinkedHashMap<>();
            model.namedPlacements().forEach((name, place) -> {
                if (!place.isReplicated() && sharding(specs.get(name)).kind() == Sharding.Kind.WHOLE_MATRIX) wholeForOptimizer.put(name, place);
            });
            sync = new TensorParallelSync(sync, mesh.tp(), sequenceParallel ? replicated : Set.of(), replicated, wholeForOptimizer);
            ProcessGroup tp = mesh.tp();
            int vocab = model.config().vocab(), first = tp.rank() * (vocab / tp.size());
            loss = (logits, targets) -> VocabParallelCrossEntropy.loss(logits, targets, -1, first, vocab, tp);
        }
        // 5. the optimizer, over exactly what this rank steps.
        ParameterGroups optimizer;
        try {
            optimizer = new ParameterGroups(sync.optimizerParameters(), globalShapes, o.groups(), o.fallback());
        } catch (IllegalArgumentException e) {
            sync.close();
            throw new ConfigException("optimizer: " + e.getMessage());
        }
        Layout layout = new Layout(sync, optimizer, loss, pipeline);
        // 6. offload of what the layout holds: ZeRO-3's weight shards and the optimizer state, to host or disk.
        if (offload != null) {
            try {
                offload.apply(cfg.offload(), sync, optimizer);
            } catch (RuntimeException e) {
                layout.close();
                throw e;
            }
        }
        return layout;
    }

    /** Installs each held decoder layer's activation policy from offload.recompute and offload.activations. */
    static void activations(Llama model, TrainConfig.Offload o, Offloading offload) {
        model.namedModules().forEach((path, m) -> {
            if (!ParameterGroups.matcher("model.layers.*").test(path) || path.substring("model.layers.".length()).contains(".")) return;
            int layer = Integer.parseInt(path.substring("model.layers.".length()));
            LayerPolicy p;
            try {
                p = LayerPolicy.of(o.recompute(layer), o.activations(layer));
            } catch (IllegalArgumentException e) {
                throw new ConfigException("layer " + layer + ": " + e.getMessage());
            }
            m.activations(switch (p) {
                case KEEP -> null;
                case SELECTIVE -> ActivationPolicy.Recompute.SELECTIVE;
                case FULL -> ActivationPolicy.Recompute.FULL;
                case HOST, DISK -> offload.activations().to(p.activations());
            });
        });
    }

    private static Schedule schedule(TrainConfig cfg, int pp) {
        try {
            Schedule s = Schedules.byName(cfg.parallel().ppSchedule(), pp, cfg.train().gradAccum(), cfg.parallel().ppVirtualStages());
            ScheduleValidator.validate(s);
            return s;
        } catch (IllegalArgumentException e) {
            throw new ConfigException("parallel.pp_schedule = " + cfg.parallel().ppSchedule() + ": " + e.getMessage());
        }
    }

    /** The data-parallel sync of {@code parameters} (all of this rank's, or one pipeline stage's) over the mesh's dp axis. */
    private static GradientSync dataParallel(Llama model, Map<String, Tensor> parameters, DeviceMesh mesh, TrainConfig cfg) {
        int stage = cfg.parallel().zero();
        if (mesh == null || mesh.dp().size() == 1) return GradientSync.none(parameters);
        if (stage == 0) return DataParallel.ddp(parameters, mesh.dp(), cfg.distributed().bucketBytes());
        Map<String, ParameterGroups.Spec> specs = assign(parameters, cfg.optimizer());
        Predicate<String> whole = name -> sharding(specs.get(name)).kind() == Sharding.Kind.WHOLE_MATRIX;
        int alignment = 1;
        for (ParameterGroups.Spec s : specs.values()) {
            Sharding sh = sharding(s);
            if (sh.kind() == Sharding.Kind.ELEMENTWISE) alignment = Math.max(alignment, sh.alignment());
        }
        if (stage <= 2) return DataParallel.zero(stage, parameters, mesh.dp(), cfg.distributed().bucketBytes(), whole, alignment);
        // ZeRO-3 wraps each decoder layer as a unit (gathered around its forward and backward); the root keeps the rest.
        // Under a pipeline, a stage's units stay gathered through the step's micro-batches and reshard after.
        List<Module> layers = new ArrayList<>();
        model.namedModules().forEach((path, m) -> {
            if (ParameterGroups.matcher("model.layers.*").test(path) && !path.substring("model.layers.".length()).contains(".")) layers.add(m);
        });
        FullyShardedDataParallel fsdp = new FullyShardedDataParallel(model, layers, mesh.dp(), cfg.distributed().bucketBytes(), cfg.parallel().zeroMinNumel(),
                name -> false, whole, alignment);
        if (mesh.pp().size() > 1) fsdp.holdGatheredThroughStep();
        return fsdp;
    }

    /** Applies {@code plan} (module path pattern → style; the first match wins) to {@code model} over {@code tp}. */
    static void tensorParallel(Llama model, ProcessGroup tp, Map<String, ParallelStyle> plan, boolean sequenceParallel, long seed) {
        Map<Predicate<String>, ParallelStyle> matchers = new LinkedHashMap<>();
        plan.forEach((pattern, style) -> matchers.put(ParameterGroups.matcher(pattern), style));
        model.namedModules().forEach((path, module) -> {
            for (var e : matchers.entrySet()) {
                if (e.getKey().test(path)) {
                    e.getValue().apply(module, path, tp, sequenceParallel, seed);
                    break;
                }
            }
        });
    }

    private static Map<String, ParameterGroups.Spec> assign(Map<String, Tensor> parameters, TrainConfig.Optim o) {
        try {
            return ParameterGroups.assign(parameters.keySet(), o.groups(), o.fallback());
        } catch (IllegalArgumentException e) {
            throw new ConfigException("optimizer: " + e.getMessage());
        }
    }

    private static Sharding sharding(ParameterGroups.Spec s) {
        return Optimizers.sharding(s.optimizer(), s.settings());
    }
}
