package dev.weft.trainer.config;

import dev.weft.core.model.LlamaConfig;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;
import org.yaml.snakeyaml.error.MarkedYAMLException;
import org.yaml.snakeyaml.error.YAMLException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import dev.weft.optimizers.Optimizers;
import dev.weft.parallel.DeviceMesh;
import dev.weft.optimizers.ParameterGroups;
import dev.weft.trainer.data.Tokenizer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A training run's configuration, read from YAML with {@code --set key=value} overrides. Every
 * field is validated; an error names the key, the value and what is allowed. See
 * examples/tinyshakespeare.yaml for a documented example of every section.
 */
public record TrainConfig(LlamaConfig model, Data data, Train train, Optim optimizer, Sample sample, Distributed distributed,
                          Parallel parallel, Offload offload, Snapshots snapshot, Path source, Path initFrom) {

    /**
     * In-memory, erasure-coded snapshots ({@code snapshot:}): every {@code every} steps (0: off)
     * each rank's state is coded RS(k, m) over failure domains ({@code domain}: node or rank) into
     * the stores under {@code store}; {@code ec} "k+m", or absent for RS(domains - 1, 1) (one lost
     * domain survives). {@code job} names the run in the stores (default: out_dir's name).
     */
    public record Snapshots(int every, int k, int m, String domain, Path store, String job, long budgetBytes) {
        public boolean enabled() {
            return every > 0;
        }

        /** The code for {@code domains} failure domains: as configured, or RS(domains - 1, 1) (RS(1, 0) on one domain). */
        public int[] code(int domains) {
            if (k > 0) return new int[] {k, m};
            return domains == 1 ? new int[] {1, 0} : new int[] {domains - 1, 1};
        }
    }

    /** Where the tokens come from. */
    public record Data(Path text, String tokenizer, double valFraction, Path cacheDir) {}

    /** The loop: batch geometry, length, cadence of evaluation, logging and checkpoints. */
    public record Train(int steps, int microBatch, int gradAccum, int seqLen, long seed, int evalEvery, int evalBatches,
                        int saveEvery, int keepCheckpoints, Path outDir, long memoryBudgetMiB) {
        public long tokensPerStep() {
            return (long) microBatch * gradAccum * seqLen;
        }
    }

    /**
     * The optimizer and learning-rate schedule. {@code groups} are the parameter groups in match
     * order (the implicit split of a matrix-only optimizer included); {@code fallback} takes every
     * parameter no group matches.
     */
    public record Optim(String name, double lr, double minLr, int warmupSteps, double weightDecay, double beta1,
                        double beta2, double eps, double gradClip, List<ParameterGroups.Spec> groups, ParameterGroups.Spec fallback) {}

    /** The hidden matrices a matrix-only optimizer named at the top of the section applies to. */
    public static final List<String> HIDDEN_MATRICES = List.of("model.layers.*.self_attn.*_proj.weight", "model.layers.*.mlp.*_proj.weight");

    private static final List<String> COMMON = List.of("weight_decay", "beta1", "beta2", "eps");

    /**
     * What moves off the compute pool, and what is recomputed instead of kept. {@code activations}
     * and {@code recompute} hold one entry per layer (a config may give one for all).
     * {@code auto}: the planner ({@code weft plan}) chooses the policy that fits
     * train.memory_budget_mib at the lowest predicted step time, and the other keys are ignored.
     * {@code prefetchMiB} bounds the bytes in flight back from host or disk.
     */
    public record Offload(boolean auto, List<String> activations, List<String> recompute, String optimizer, String parameters, Path diskDir,
                          String diskIo, int ioThreads, long hostBudgetMiB, long diskBudgetMiB, long prefetchMiB) {
        public static final List<String> TIERS = List.of("none", "host", "disk");
        public static final List<String> RECOMPUTE = List.of("none", "selective", "full");

        public Offload {
            activations = List.copyOf(activations);
            recompute = List.copyOf(recompute);
        }

        /** Where layer {@code i}'s saved activations go: none, host or disk. */
        public String activations(int layer) {
            return activations.size() == 1 ? activations.get(0) : activations.get(layer);
        }

        /** What layer {@code i} recomputes in backward: none, selective or full. */
        public String recompute(int layer) {
            return recompute.size() == 1 ? recompute.get(0) : recompute.get(layer);
        }

        /** True when anything at all is offloaded or recomputed. */
        public boolean any() {
            return auto || !optimizer.equals("none") || !parameters.equals("none") || activations.stream().anyMatch(a -> !a.equals("none"))
                    || recompute.stream().anyMatch(r -> !r.equals("none"));
        }

        /** The same settings with another policy (what {@code offload: auto} applies from the plan). */
        public Offload withPolicy(List<String> activations, List<String> recompute, String optimizer, String parameters) {
            return new Offload(false, activations, recompute, optimizer, parameters, diskDir, diskIo, ioThreads, hostBudgetMiB, diskBudgetMiB, prefetchMiB);
        }
    }

    /** The sample printed at the end of training. */
    public record Sample(String prompt, int tokens, double temperature, int topK) {}

    /**
     * Data-parallel settings, used under {@code weft launch}: gradient bucket size, the deadline
     * of every collective and of rendezvous. {@code train.micro_batch} is per rank there, so the
     * global batch is micro_batch x grad_accum x world size.
     */
    public record Distributed(String transport, long bucketBytes, int timeoutSeconds, int rendezvousTimeoutSeconds) {}

    /**
     * The parallel layout: mesh axes (one may be -1, inferred from the world size) and the ZeRO
     * stage on the data-parallel axis (0 = DDP, 1 = optimizer state sharded, 2 = gradients too,
     * 3 = parameters too). {@code zeroMinNumel}: under ZeRO-3, parameters with fewer elements stay
     * replicated (gathering them would cost more in latency than it saves in memory).
     * {@code sequenceParallel}: under tp, norms and residuals hold a block of the sequence.
     * {@code ppSchedule}: gpipe, 1f1b, interleaved or zbh1; {@code ppVirtualStages}: stages per
     * pipeline rank (interleaved only); {@code ppSplit}: layers per stage (empty: balanced by cost).
     */
    public record Parallel(int dp, int tp, int pp, int zero, int zeroMinNumel, boolean sequenceParallel, String ppSchedule, int ppVirtualStages,
                           List<Integer> ppSplit) {
        public Parallel {
            ppSplit = List.copyOf(ppSplit);
        }

        /** Pipeline stages in all: pp x virtual stages. */
        public int stages(int pp) {
            return pp * ppVirtualStages;
        }
    }

    /**
     * The mesh this config asks for on {@code world} ranks, checked against the model: the axes'
     * product must be the world size and tp must divide the heads. Errors name keys and values.
     */
    /** The same config with other offload settings (what {@code offload: auto} applies from its plan). */
    public TrainConfig withOffload(Offload o) {
        return new TrainConfig(model, data, train, optimizer, sample, distributed, parallel, o, snapshot, source, initFrom);
    }

    public DeviceMesh.Shape meshShape(int world) {
        DeviceMesh.Shape shape;
        try {
            shape = DeviceMesh.Shape.resolve(world, parallel.dp(), parallel.tp(), parallel.pp());
        } catch (IllegalArgumentException e) {
            throw new ConfigException(e.getMessage() + (world == 1 ? " (weft train runs one process; use weft launch for more)" : ""));
        }
        if (model.heads() % shape.tp() != 0 || model.kvHeads() % shape.tp() != 0)
            throw new ConfigException("parallel.tp = " + shape.tp() + " must divide model.heads = " + model.heads() + " and model.kv_heads = "
                    + model.kvHeads() + "; each tensor-parallel rank holds whole heads");
        if (shape.tp() > 1) {
            if (model.vocab() % shape.tp() != 0)
                throw new ConfigException("parallel.tp = " + shape.tp() + " must divide model.vocab = " + model.vocab()
                        + "; the embedding and the head split the vocabulary (pad the vocabulary to a multiple of tp)");
            if (model.ffnDim() % shape.tp() != 0)
                throw new ConfigException("parallel.tp = " + shape.tp() + " must divide model.ffn_dim = " + model.ffnDim());
            if (model.tiedEmbeddings())
                throw new ConfigException("model.tied_embeddings = true is not supported with parallel.tp = " + shape.tp() + "; untie them or use tp 1");
            if (parallel.sequenceParallel() && train.seqLen() % shape.tp() != 0)
                throw new ConfigException("parallel.sequence_parallel: train.seq_len = " + train.seqLen() + " must be a multiple of parallel.tp = " + shape.tp());
        }
        if (shape.pp() > 1) pipelineChecks(shape);
        return shape;
    }

    private void pipelineChecks(DeviceMesh.Shape shape) {
        int pp = shape.pp(), v = parallel.ppVirtualStages(), stages = parallel.stages(pp), m = train.gradAccum();
        String schedule = parallel.ppSchedule();
        if (schedule.equals("interleaved") && v < 2)
            throw new ConfigException("parallel.pp_schedule = interleaved needs parallel.pp_virtual_stages >= 2 (stages per pipeline rank), got " + v);
        if (!schedule.equals("interleaved") && v != 1)
            throw new ConfigException("parallel.pp_virtual_stages = " + v + " needs parallel.pp_schedule = interleaved (" + schedule + " runs one stage per rank)");
        if (stages > model.layers())
            throw new ConfigException("parallel.pp = " + pp + (v > 1 ? " x parallel.pp_virtual_stages = " + v : "") + " makes " + stages
                    + " pipeline stages, more than model.layers = " + model.layers() + "; each stage needs at least one layer");
        if (!parallel.ppSplit().isEmpty()) {
            int sum = parallel.ppSplit().stream().mapToInt(Integer::intValue).sum();
            if (parallel.ppSplit().size() != stages || sum != model.layers())
                throw new ConfigException("parallel.pp_split = " + parallel.ppSplit() + " must list " + stages + " stages' layer counts summing to model.layers = "
                        + model.layers());
        }
        if (!schedule.equals("gpipe") && m < pp)
            throw new ConfigException("parallel.pp_schedule = " + schedule + " needs train.grad_accum (the micro-batches per step) >= parallel.pp = " + pp
                    + ", got " + m + "; fewer micro-batches than stages leave the pipeline empty (use gpipe, or raise grad_accum)");
        if (schedule.equals("interleaved") && m % pp != 0)
            throw new ConfigException("parallel.pp_schedule = interleaved needs train.grad_accum (" + m + ") to be a multiple of parallel.pp (" + pp + ")");
        if (model.tiedEmbeddings())
            throw new ConfigException("model.tied_embeddings = true is not supported with parallel.pp = " + pp + " (the embedding and the head live on different stages)");
        if (schedule.equals("interleaved") && parallel.zero() == 3)
            throw new ConfigException("parallel.zero = 3 with parallel.pp_schedule = interleaved is not supported: use zero 1 or 2, or another schedule");
    }

    public static TrainConfig load(Path file, List<String> overrides) {
        Map<String, Object> root;
        try {
            String text = Files.readString(file);
            Object parsed = new Yaml(new SafeConstructor(new LoaderOptions())).load(text);
            if (parsed == null) parsed = new LinkedHashMap<>();
            if (!(parsed instanceof Map<?, ?>)) throw new ConfigException(file + ": the top level must be a mapping of sections (model, data, train, ...)");
            root = deepCopy((Map<?, ?>) parsed);
        } catch (NoSuchFileException e) {
            throw new ConfigException("config file not found: " + file);
        } catch (IOException e) {
            throw new ConfigException("cannot read config file " + file + ": " + e.getMessage());
        } catch (MarkedYAMLException e) {
            throw new ConfigException("malformed YAML in " + file + " at line " + (e.getProblemMark().getLine() + 1)
                    + ", column " + (e.getProblemMark().getColumn() + 1) + ": " + e.getProblem());
        } catch (YAMLException e) {
            throw new ConfigException("malformed YAML in " + file + ": " + e.getMessage());
        }
        for (String o : overrides) applyOverride(root, o);
        Path base = file.toAbsolutePath().getParent();
        return parse(root, base, file);
    }

    static TrainConfig parse(Map<String, Object> root, Path base, Path source) {
        ConfigSection top = new ConfigSection("", root);

        ConfigSection m = top.section("model");
        int vocab = m.integer("vocab", 256, 1, 1 << 24);
        LlamaConfig model;
        try {
            model = new LlamaConfig(
                    m.integer("layers", 4, 1, 1024), m.integer("d_model", 256, 1, 1 << 16), m.integer("heads", 4, 1, 4096),
                    m.integer("kv_heads", m.integer("heads", 4, 1, 4096), 1, 4096), m.integer("ffn_dim", 768, 1, 1 << 20), vocab,
                    m.integer("max_seq_len", 256, 1, 1 << 20), (float) m.number("rope_theta", 10000, 1e-6, 1e12),
                    (float) m.number("norm_eps", 1e-5, 1e-12, 1), m.bool("tied_embeddings", false), m.number("init_std", 0.02, 1e-8, 10));
        } catch (ConfigException e) {
            throw e;
        } catch (IllegalArgumentException e) {
            throw new ConfigException(e.getMessage());
        }
        // fine-tuning: the weights of a weft checkpoint, a run's newest one, or a Hugging Face Llama directory
        String init = m.string("init_from", null);
        Path initFrom = init == null ? null : base.resolve(init).normalize();
        m.finish();

        ConfigSection d = top.section("data");
        String text = d.string("text", null);
        if (text == null) throw new ConfigException("data.text is required: the path of a UTF-8 text file (or directory of .txt files) to train on");
        Data data = new Data(base.resolve(text).normalize(), tokenizer(d.string("tokenizer", "byte"), base),
                d.number("val_fraction", 0.1, 1e-6, 0.5), base.resolve(d.string("cache_dir", "../runs/data-cache")).normalize());
        d.finish();

        ConfigSection t = top.section("train");
        Train train = new Train(t.integer("steps", 1000, 1, Integer.MAX_VALUE), t.integer("micro_batch", 8, 1, 1 << 16),
                t.integer("grad_accum", 1, 1, 1 << 16), t.integer("seq_len", model.maxSeqLen(), 1, model.maxSeqLen()),
                t.integer("seed", 1234, 0, Integer.MAX_VALUE), t.integer("eval_every", 100, 0, Integer.MAX_VALUE),
                t.integer("eval_batches", 20, 1, 1 << 20), t.integer("save_every", 0, 0, Integer.MAX_VALUE),
                t.integer("keep_checkpoints", 2, 1, 1000), base.resolve(t.string("out_dir", "../runs/default")).normalize(),
                t.integer("memory_budget_mib", 0, 0, Integer.MAX_VALUE));
        t.finish();

        ConfigSection o = top.section("optimizer");
        double lr = o.number("lr", 1e-3, 0, 10);
        String optName = o.string("name", "adamw", Optimizers.names().toArray(String[]::new));
        double minLr = o.number("min_lr", lr / 10, 0, lr);
        int warmup = o.integer("warmup_steps", 0, 0, Integer.MAX_VALUE);
        Map<String, Object> common = new LinkedHashMap<>();
        common.put("weight_decay", o.number("weight_decay", 0.1, 0, 10));
        common.put("beta1", o.number("beta1", 0.9, 0, 0.999999));
        common.put("beta2", o.number("beta2", 0.95, 0, 0.99999999));
        common.put("eps", o.number("eps", 1e-8, 1e-30, 1));
        double gradClip = o.number("grad_clip", 1.0, 0, 1e9);
        List<ParameterGroups.Spec> groups = new ArrayList<>();
        for (ConfigSection g : o.sections("groups")) {
            String gName = g.string("name", null, Optimizers.names().toArray(String[]::new));
            if (gName == null) throw new ConfigException(g.qualify("name") + " is required: one of " + String.join(", ", Optimizers.names()));
            List<String> patterns = g.strings("params");
            double gLr = g.number("lr", lr, 0, 10);
            groups.add(new ParameterGroups.Spec(gName, patterns, settings(g, gName, common), lr == 0 ? 1 : gLr / lr));
            g.finish();
        }
        Map<String, Object> topSettings = settings(o, optName, common);
        ParameterGroups.Spec fallback;
        if (Optimizers.matrixOnly(optName)) {
            // The usual split: the named optimizer on attention and MLP matrices, AdamW on embeddings, head and norms.
            groups.add(new ParameterGroups.Spec(optName, HIDDEN_MATRICES, topSettings, 1));
            fallback = new ParameterGroups.Spec("adamw", List.of(), common, 1);
        } else {
            fallback = new ParameterGroups.Spec(optName, List.of(), topSettings, 1);
        }
        Optim optim = new Optim(optName, lr, minLr, warmup, (Double) common.get("weight_decay"), (Double) common.get("beta1"),
                (Double) common.get("beta2"), (Double) common.get("eps"), gradClip, List.copyOf(groups), fallback);
        o.finish();

        ConfigSection s = top.section("sample");
        Sample sample = new Sample(s.string("prompt", "\n"), s.integer("tokens", 200, 0, 1 << 20),
                s.number("temperature", 0.8, 0, 100), s.integer("top_k", 40, 0, 1 << 24));
        s.finish();
        ConfigSection dist = top.section("distributed");
        Distributed distributed = new Distributed(dist.string("transport", "aeron", "aeron", "tcp"), dist.integer("bucket_kib", 4096, 1, 1 << 21) * 1024L,
                dist.integer("timeout_seconds", 120, 1, 86_400), dist.integer("rendezvous_timeout_seconds", 120, 1, 86_400));
        dist.finish();
        ConfigSection par = top.section("parallel");
        Parallel parallel = new Parallel(par.integer("dp", -1, -1, 1 << 20), par.integer("tp", 1, -1, 1 << 20), par.integer("pp", 1, -1, 1 << 20),
                par.integer("zero", 0, 0, 3), par.integer("zero_min_numel", 1024, 0, Integer.MAX_VALUE), par.bool("sequence_parallel", false),
                par.string("pp_schedule", "1f1b", "gpipe", "1f1b", "interleaved", "zbh1"), par.integer("pp_virtual_stages", 1, 1, 64),
                par.positiveIntegers("pp_split"));
        for (String k : List.of("dp", "tp", "pp")) {
            int v = switch (k) { case "dp" -> parallel.dp(); case "tp" -> parallel.tp(); default -> parallel.pp(); };
            if (v == 0) throw new ConfigException("parallel." + k + " = 0 is invalid: expected a positive integer, or -1 to infer it from the world size");
        }
        par.finish();
        Offload offload = offload(top, root, base, model.layers(), parallel, train);
        Snapshots snapshot = snapshots(top.section("snapshot"), train);
        top.finish();
        return new TrainConfig(model, data, train, optim, sample, distributed, parallel, offload, snapshot, source, initFrom);
    }

    private static Snapshots snapshots(ConfigSection sn, Train train) {
        int every = sn.integer("every", 0, 0, Integer.MAX_VALUE);
        String ec = sn.string("ec", "");
        int k = 0, m = 0;
        if (!ec.isEmpty()) {
            java.util.regex.Matcher mt = java.util.regex.Pattern.compile("(\\d+)\\+(\\d+)").matcher(ec.strip());
            if (!mt.matches()) throw sn.error("ec", ec, "k+m, for example \"2+1\" (k data pieces, m parity pieces)");
            k = Integer.parseInt(mt.group(1));
            m = Integer.parseInt(mt.group(2));
            if (k < 1 || k + m > 255) throw sn.error("ec", ec, "k >= 1 and k + m <= 255");
        }
        String domain = sn.string("domain", "node", "node", "rank");
        Path store = Path.of(sn.string("store", dev.weft.checkpoint.SnapshotStore.DEFAULT_ROOT.toString()));
        String job = sn.string("job", train.outDir().getFileName() == null ? "run" : train.outDir().getFileName().toString());
        if (!job.matches("[A-Za-z0-9._-]{1,100}")) throw sn.error("job", job, "1-100 characters of A-Z a-z 0-9 . _ - (it names the run in the stores)");
        long budget = sn.integer("budget_mib", 8192, 1, Integer.MAX_VALUE) * (1L << 20);
        sn.finish();
        return new Snapshots(every, k, m, domain, store, job, budget);
    }

    private static Offload offload(ConfigSection top, Map<String, Object> root, Path base, int layers, Parallel parallel, Train train) {
        Object raw = root.get("offload");
        boolean auto = "auto".equals(raw);
        if (auto) root.put("offload", new LinkedHashMap<String, Object>()); // `offload: auto`, the short form of offload.auto: true
        ConfigSection f = top.section("offload");
        if (auto) f.bool("auto", true);
        String[] tiers = Offload.TIERS.toArray(String[]::new);
        Offload o = new Offload(auto || f.bool("auto", false), f.choicePerLayer("activations", "none", layers, tiers),
                f.choicePerLayer("recompute", "none", layers, Offload.RECOMPUTE.toArray(String[]::new)), f.string("optimizer", "none", tiers),
                f.string("parameters", "none", tiers), base.resolve(f.string("disk_dir", "../runs/offload")).normalize(),
                f.string("disk_io", "auto", "auto", "direct", "buffered", "mapped"), f.integer("io_threads", 2, 1, 64),
                f.integer("host_budget_mib", 0, 0, Integer.MAX_VALUE), f.integer("disk_budget_mib", 0, 0, Integer.MAX_VALUE),
                f.integer("prefetch_mib", 64, 1, 1 << 20));
        f.finish();
        if (!o.parameters().equals("none") && parallel.zero() != 3)
            throw new ConfigException("offload.parameters = " + o.parameters() + " needs parameters sharded: set parallel.zero = 3 (the shards are what is offloaded)");
        for (int layer = 0; layer < layers && !o.auto(); layer++) { // here, so that weft launch refuses it before any rank starts
            try {
                dev.weft.offload.LayerPolicy.of(o.recompute(layer), o.activations(layer));
            } catch (IllegalArgumentException e) {
                throw new ConfigException("layer " + layer + ": " + e.getMessage());
            }
        }
        if (o.auto() && train.memoryBudgetMiB() == 0)
            throw new ConfigException("offload: auto plans for a memory budget: set train.memory_budget_mib (weft plan CONFIG --budget-mib N shows what fits)");
        return o;
    }

    /**
     * The settings of optimizer {@code name} read from a section: the common Adam keys default to
     * the optimizer section's values, the rest to the optimizer's own defaults.
     */
    private static Map<String, Object> settings(ConfigSection sec, String name, Map<String, Object> common) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (Optimizers.Setting st : Optimizers.settings(name)) {
            String k = st.key();
            Object v = switch (st.type()) {
                case NUMBER -> sec.number(k, common.containsKey(k) ? (Double) common.get(k) : ((Number) st.fallback()).doubleValue(), st.min(), st.max());
                case INTEGER -> sec.integer(k, (Integer) st.fallback(), (int) st.min(), (int) Math.min(st.max(), Integer.MAX_VALUE));
                case BOOLEAN -> sec.bool(k, (Boolean) st.fallback());
                case CHOICE -> sec.string(k, (String) st.fallback(), st.choices().toArray(String[]::new));
            };
            out.put(k, v);
        }
        return out;
    }

    /**
     * Where the run will differ from what the config says, one line each, for the command that trains
     * to print at start-up. A warmup longer than the run is clamped (by {@link
     * dev.weft.trainer.schedule.LrSchedule#warmupCosine}) rather than refused, so that a short trial
     * run of a real config ({@code --set train.steps=20}) needs no second override.
     */
    public List<String> notices() {
        if (optimizer.warmupSteps() <= train.steps()) return List.of();
        return List.of("optimizer.warmup_steps = " + optimizer.warmupSteps() + " is more than train.steps = " + train.steps()
                + ": warming up over all " + train.steps() + " steps");
    }

    /** Applies one {@code a.b.c=value}; the value is read as a YAML scalar (so 3 is a number, true a boolean). */
    static void applyOverride(Map<String, Object> root, String assignment) {
        int eq = assignment.indexOf('=');
        if (eq <= 0) throw new ConfigException("--set expects key=value (for example train.steps=100), got '" + assignment + "'");
        String key = assignment.substring(0, eq).trim();
        String raw = assignment.substring(eq + 1);
        Object value;
        try {
            value = raw.isEmpty() ? "" : new Yaml(new SafeConstructor(new LoaderOptions())).load(raw);
        } catch (YAMLException e) {
            value = raw;
        }
        String[] parts = key.split("\\.");
        Map<String, Object> node = root;
        for (int i = 0; i < parts.length - 1; i++) {
            Object child = node.get(parts[i]);
            if (child == null) {
                child = new LinkedHashMap<String, Object>();
                node.put(parts[i], child);
            }
            if (!(child instanceof Map<?, ?>)) throw new ConfigException("--set " + key + ": '" + parts[i] + "' is not a section");
            @SuppressWarnings("unchecked") Map<String, Object> next = (Map<String, Object>) child;
            node = next;
        }
        node.put(parts[parts.length - 1], value);
    }

    private static Map<String, Object> deepCopy(Map<?, ?> m) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (var e : m.entrySet()) {
            Object v = e.getValue();
            out.put(String.valueOf(e.getKey()), v instanceof Map<?, ?> mm ? deepCopy(mm) : v);
        }
        return out;
    }

    /** A built-in tokenizer's name as it is, or the path of a tokenizer.json resolved against the config's folder. */
    private static String tokenizer(String value, Path base) {
        if (Tokenizer.NAMES.contains(value)) return value;
        if (!value.endsWith(".json") && !value.contains("/") && !java.nio.file.Files.isDirectory(base.resolve(value)))
            throw new ConfigException("data.tokenizer: '" + value + "' is not byte, gpt2"
                    + " nor the path of a tokenizer.json (or of a directory holding one)");
        return base.resolve(value).normalize().toString();
    }
}
