package dev.weft.launcher;

import dev.weft.trainer.Trainer;
import dev.weft.trainer.config.TrainConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code weft train CONFIG}: trains on one process. */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = {"Train a Llama-style model on one process.",
                "Writes metrics.jsonl, loss.png and checkpoints under train.out_dir, and ends with a generated sample."})
public final class TrainCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "CONFIG", description = "YAML config (see examples/tinyshakespeare.yaml)")
    Path config;

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override a config value, e.g. --set train.steps=100 (repeatable)")
    List<String> overrides = new ArrayList<>();

    @Option(names = "--resume", description = "Continue from the newest checkpoint in train.out_dir, exactly as if never stopped")
    boolean resume;

    @Option(names = "--stop-after", paramLabel = "STEP", defaultValue = "0",
            description = "Stop after this step and save a checkpoint, as if interrupted; continue later with --resume")
    long stopAfter;

    @Override
    public Integer call() {
        TrainConfig cfg = TrainConfig.load(config, overrides);
        for (String notice : cfg.notices()) System.out.println("weft train: notice: " + notice);
        try (Trainer trainer = new Trainer(cfg, System.out)) {
            if (stopAfter < 0) throw new IllegalArgumentException("--stop-after must be >= 0, got " + stopAfter);
            trainer.run(resume, stopAfter);
        }
        return 0;
    }
}
