package dev.weft.launcher;

import dev.weft.offload.Planner;
import dev.weft.trainer.OffloadPlanning;
import dev.weft.trainer.config.TrainConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code weft plan CONFIG}: what each layer holds, and the offload policy that fits a device budget at the lowest predicted step time. */
@Command(name = "plan", mixinStandardHelpOptions = true,
        description = {"Measure the config's layer and optimizer on the spot (probes of 2 and 3 layers at the real widths and batch),",
                "print per layer the weights, gradients, optimizer state and the activations each policy keeps, and choose the",
                "offload policy that fits the device budget (--budget-mib, else train.memory_budget_mib) at the lowest predicted",
                "step time: which layers recompute, what goes to host and what to disk. `offload: auto` in a config applies it."})
public final class PlanCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "CONFIG", description = "YAML config (see examples/tinyshakespeare.yaml)")
    Path config;

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a config value (repeatable)")
    List<String> overrides = new ArrayList<>();

    @Option(names = "--budget-mib", paramLabel = "N", defaultValue = "0", description = "Device budget in MiB (default: train.memory_budget_mib; 0: none)")
    long budgetMiB;

    @Option(names = "--nproc", paramLabel = "N", defaultValue = "1", description = "Data-parallel ranks sharing the state as parallel.zero says (default: 1)")
    int nproc;

    @Override
    public Integer call() {
        if (budgetMiB < 0) throw new IllegalArgumentException("--budget-mib must be >= 0, got " + budgetMiB);
        if (nproc < 1) throw new IllegalArgumentException("--nproc must be >= 1, got " + nproc);
        TrainConfig cfg = TrainConfig.load(config, overrides);
        long budget = (budgetMiB > 0 ? budgetMiB : cfg.train().memoryBudgetMiB()) << 20;
        OffloadPlanning.Report r = OffloadPlanning.measure(cfg, nproc, System.out);
        Planner.Plan none = Planner.none(r.measured());
        Planner.Plan chosen = budget > 0 ? Planner.best(r.measured(), budget) : null;
        System.out.print(OffloadPlanning.describe(cfg, r, none, chosen, budget));
        if (budget == 0) System.out.println("no budget given: --budget-mib N (or train.memory_budget_mib) chooses a policy");
        return 0;
    }
}
