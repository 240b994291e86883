package dev.weft.launcher;

import dev.weft.trainer.HfConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.Callable;

/**
 * {@code weft export}: writes a checkpoint as a Hugging Face model directory (config.json and
 * model.safetensors with the transformers Llama names), without the optimizer state.
 */
@Command(name = "export", mixinStandardHelpOptions = true,
        description = {"Export a checkpoint as a Hugging Face Llama directory (config.json + model.safetensors).",
                "Load it with transformers: LlamaForCausalLM.from_pretrained(DIR)."})
public final class ExportCommand implements Callable<Integer> {
    @Option(names = "--checkpoint", required = true, paramLabel = "DIR", description = "A checkpoint directory or a run's out_dir")
    Path checkpoint;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Directory to write (created; existing files are replaced)")
    Path out;

    @Override
    public Integer call() throws IOException {
        Path dir = GenerateCommand.resolve(checkpoint);
        HfConfig.Loaded cfg = HfConfig.read(dir.resolve("config.json")); // validates before anything is written
        Files.createDirectories(out);
        HfConfig.write(out.resolve("config.json"), cfg.model(), cfg.tokenizer() == null ? "unknown" : cfg.tokenizer());
        Files.copy(dir.resolve("model.safetensors"), out.resolve("model.safetensors"), StandardCopyOption.REPLACE_EXISTING);
        System.out.println("exported " + dir + " to " + out + " (config.json, model.safetensors)");
        return 0;
    }
}
