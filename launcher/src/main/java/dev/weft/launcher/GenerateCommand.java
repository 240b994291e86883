package dev.weft.launcher;

import dev.weft.core.Bytes;
import dev.weft.core.MemoryPool;
import dev.weft.core.ProcessMemory;
import dev.weft.core.model.Llama;
import dev.weft.trainer.Checkpoint;
import dev.weft.trainer.Generator;
import dev.weft.trainer.HfConfig;
import dev.weft.trainer.data.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

/** {@code weft generate}: samples text from a checkpoint. */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generate text from a checkpoint directory (weft's, or a Hugging Face Llama directory with config.json, model.safetensors"
                + " or sharded weights with model.safetensors.index.json, and tokenizer.json).")
public final class GenerateCommand implements Callable<Integer> {
    @Option(names = "--checkpoint", required = true, paramLabel = "DIR",
            description = "A checkpoint directory, or a run's out_dir (its newest checkpoint is used)")
    Path checkpoint;

    @Option(names = "--prompt", defaultValue = "\n", description = "Text to continue (default: a newline)")
    String prompt;

    @Option(names = "--tokens", defaultValue = "200", description = "Number of tokens to generate (default: ${DEFAULT-VALUE})")
    int tokens;

    @Option(names = "--temperature", defaultValue = "0.8", description = "Sampling temperature; 0 is greedy (default: ${DEFAULT-VALUE})")
    double temperature;

    @Option(names = "--top-k", defaultValue = "40", description = "Sample among the k most likely tokens; 0 for all (default: ${DEFAULT-VALUE})")
    int topK;

    @Option(names = "--tokenizer", paramLabel = "NAME|PATH",
            description = "Tokenizer: byte, gpt2 or the path of a tokenizer.json; default: the one the checkpoint records, or its tokenizer.json")
    String tokenizerName;

    @Option(names = "--seed", defaultValue = "0", description = "Sampling seed (default: ${DEFAULT-VALUE})")
    long seed;

    @Override
    public Integer call() {
        Path dir = resolve(checkpoint);
        HfConfig.Loaded cfg = HfConfig.read(dir.resolve("config.json"));
        if (tokens < 0) throw new IllegalArgumentException("--tokens must be >= 0, got " + tokens);
        Tokenizer tokenizer = tokenizerName != null ? Tokenizer.byName(tokenizerName) : Tokenizer.forModel(dir, cfg.tokenizer());
        if (tokenizer.vocabSize() > cfg.model().vocab())
            throw new IllegalArgumentException("tokenizer " + tokenizer + " has " + tokenizer.vocabSize() + " tokens, more than the model's vocab_size "
                    + cfg.model().vocab() + " in " + dir.resolve("config.json") + "; is it the tokenizer the model was trained with?");
        Llama model = new Llama(cfg.model(), 0);
        Checkpoint.loadModel(dir, model);
        int[] ids = tokenizer.encode(prompt);
        if (ids.length == 0) ids = new int[] {tokenizer.endOfText()};
        int[] out = new Generator(model, seed).generate(ids, tokens, temperature, topK);
        System.out.println(prompt + tokenizer.decode(out));
        // stderr, so that the text on stdout can be piped on as it is
        System.err.println("tokenizer: " + tokenizer);
        System.err.printf("memory: pool peak live %s, peak reserved %s; %s%n", Bytes.human(MemoryPool.host().peakLiveBytes()),
                Bytes.human(MemoryPool.host().peakReservedBytes()), ProcessMemory.summary());
        model.close();
        return 0;
    }

    /** A checkpoint directory itself, or a run directory whose newest checkpoint is taken. */
    static Path resolve(Path p) {
        if (!Files.exists(p)) throw new IllegalArgumentException("checkpoint path not found: " + p);
        if (Files.exists(p.resolve("model.safetensors"))) return p;
        if (Files.exists(p.resolve("model.safetensors.index.json"))) return p; // Hugging Face sharded weights
        if (Files.isDirectory(p.resolve("model")) && Files.exists(p.resolve("config.json"))) return p; // sharded weights (ZeRO-3)
        Path latest = Checkpoint.latest(p);
        if (latest == null) throw new IllegalArgumentException(p + " holds neither model.safetensors nor checkpoints/latest");
        return latest;
    }
}
