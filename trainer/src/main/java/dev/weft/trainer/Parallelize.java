package dev.weft.trainer;

import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.optimizers.Optimizers;
import dev.weft.optimizers.ParameterGroups;
import dev.weft.optimizers.Sharding;
import dev.weft.core.nn.Module;
import dev.weft.parallel.DataParallel;
import dev.weft.parallel.FullyShardedDataParallel;
import dev.weft.parallel.DeviceMesh;
import dev.weft.parallel.GradientSync;
import dev.weft.trainer.config.ConfigException;
import dev.weft.trainer.config.TrainConfig;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * Applies a parallel layout to a model in one place, keyed by parameter name, in torchtitan's fixed
 * order: pipeline split, tensor parallelism, recomputation and offload, then data-parallel sharding,
 * and finally the optimizer over what this rank steps. The model's code knows nothing of it.
 */
public final class Parallelize {
    private Parallelize() {}

    /** What a rank trains with: how its gradients are reduced, and the optimizer over its part. */
    public record Layout(GradientSync sync, ParameterGroups optimizer) implements AutoCloseable {
        @Override
        public void close() {
            optimizer.close();
            sync.close();
        }
    }

    /** The layout of {@code model} on {@code mesh} (null: one process) as {@code cfg} asks. */
    public static Layout apply(Llama model, DeviceMesh mesh, TrainConfig cfg) {
        Map<String, Tensor> parameters = model.namedParameters();
        // 1. pipeline split and 2. tensor parallelism: the mesh is refused above pp 1 and tp 1 until they exist
        //    (TrainConfig.meshShape), so every rank holds the whole model here.
        // 3. recomputation and offload: none yet.
        // 4. data parallelism, with ZeRO's sharding of the optimizer state (1) and gradients (2).
        TrainConfig.Optim o = cfg.optimizer();
        GradientSync sync;
        int stage = cfg.parallel().zero();
        if (mesh == null || mesh.dp().size() == 1) {
            sync = GradientSync.none(parameters);
        } else if (stage == 0) {
            DataParallel.verifyIdenticalWeights(mesh.dp(), parameters);
            sync = DataParallel.ddp(parameters, mesh.dp(), cfg.distributed().bucketBytes());
        } else {
            DataParallel.verifyIdenticalWeights(mesh.dp(), parameters);
            Map<String, ParameterGroups.Spec> specs = assign(parameters, o);
            Predicate<String> whole = name -> sharding(specs.get(name)).kind() == Sharding.Kind.WHOLE_MATRIX;
            int alignment = 1;
            for (ParameterGroups.Spec s : specs.values()) {
                Sharding sh = sharding(s);
                if (sh.kind() == Sharding.Kind.ELEMENTWISE) alignment = Math.max(alignment, sh.alignment());
            }
            if (stage <= 2) {
                sync = DataParallel.zero(stage, parameters, mesh.dp(), cfg.distributed().bucketBytes(), whole, alignment);
            } else {
                // ZeRO-3 wraps each decoder layer as a unit (gathered around its forward and backward); the root keeps the rest
                List<Module> layers = new ArrayList<>();
                model.namedModules().forEach((path, m) -> {
                    if (ParameterGroups.matcher("model.layers.*").test(path) && !path.substring("model.layers.".length()).contains(".")) layers.add(m);
                });
                sync = new FullyShardedDataParallel(model, layers, mesh.dp(), cfg.distributed().bucketBytes(), cfg.parallel().zeroMinNumel(),
                        name -> false, whole, alignment);
            }
        }
        // 5. the optimizer, over exactly what this rank steps; groups are formed over the whole model.
        Map<String, int[]> globalShapes = new LinkedHashMap<>();
        parameters.forEach((k, p) -> globalShapes.put(k, p.shape()));
        try {
            return new Layout(sync, new ParameterGroups(sync.optimizerParameters(), globalShapes, o.groups(), o.fallback()));
        } catch (IllegalArgumentException e) {
            sync.close();
            throw new ConfigException("optimizer: " + e.getMessage());
        }
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
