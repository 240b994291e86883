package dev.weft.launcher;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code weft bench}: benchmarks that print figures as ratios against a baseline measured in the same run. */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Benchmarks (reported, never asserted). Each prints ratios against a baseline measured in the same run.",
        subcommands = {ModelBenchCommand.class, dev.weft.launcher.snapshot.EcBenchCommand.class, CollectivesBenchCommand.class, OptimizerBenchCommand.class, ZeroBenchCommand.class,
                PipelineBenchCommand.class, OffloadBenchCommand.class, SnapshotBenchCommand.class, PrepareBenchCommand.class})
public final class BenchCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
