package dev.weft.launcher;

import dev.weft.core.io.Safetensors;
import dev.weft.core.model.Llama;
import dev.weft.trainer.Checkpoint;
import dev.weft.trainer.HfConfig;
import dev.weft.trainer.data.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.Callable;

/**
 * {@code weft export}: writes a checkpoint as a Hugging Face model directory (config.json and
 * model.safetensors with the transformers Llama names), without the optimizer state.
 */
@Command(name = "export", mixinStandardHelpOptions = true,
        description = {"Export a checkpoint as a Hugging Face Llama directory (config.json + model.safetensors, and the tokenizer.json it was trained with).",
                "Load it with transformers: LlamaForCausalLM.from_pretrained(DIR)."})
public final class ExportCommand implements Callable<Integer> {
    @Option(names = "--checkpoint", required = true, paramLabel = "DIR", description = "A checkpoint directory or a run's out_dir")
    Path checkpoint;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Directory to write (created; existing files are replaced)")
    Path out;

    /** The tokenizer files of a model directory, tokenizer.json first. */
    private static final java.util.List<String> TOKENIZER_FILES = java.util.List.of("tokenizer.json", "tokenizer_config.json");

    @Override
    public Integer call() throws IOException {
        Path dir = GenerateCommand.resolve(checkpoint);
        HfConfig.Loaded cfg = HfConfig.read(dir.resolve("config.json")); // validates before anything is written
        try {
            Files.createDirectories(out);
            String tokenizer = cfg.tokenizer();
            if (Files.isRegularFile(dir.resolve(TOKENIZER_FILES.getFirst()))) {
                // the tokenizer.json travels with the weights, so the export is self-contained
                Tokenizer tok = Tokenizer.forModel(dir, tokenizer); // validates it: its identity matches the recorded one
                tokenizer = tok.name();
                for (String f : TOKENIZER_FILES)
                    if (Files.isRegularFile(dir.resolve(f)))
                        Files.copy(dir.resolve(f), out.resolve(f), StandardCopyOption.REPLACE_EXISTING);
            }
            HfConfig.write(out.resolve("config.json"), cfg.model(), tokenizer);
            if (Files.exists(dir.resolve("model.safetensors"))) {
                Files.copy(dir.resolve("model.safetensors"), out.resolve("model.safetensors"), StandardCopyOption.REPLACE_EXISTING);
            } else {
                // sharded weights (ZeRO-3): assemble them from every rank's chunks
                Llama model = new Llama(cfg.model(), 0);
                try {
                    Checkpoint.loadModel(dir, model);
                    Safetensors.write(out.resolve("model.safetensors"), model.namedParameters(), java.util.Map.of("format", "pt"));
                } finally {
                    model.close();
                }
            }
        } catch (FileSystemException e) {
            throw cannotWrite(e);
        } catch (UncheckedIOException e) {
            if (e.getCause() instanceof FileSystemException f) throw cannotWrite(f);
            throw e;
        }
        System.out.println("exported " + dir + " to " + out + " (config.json, model.safetensors"
                + (Files.isRegularFile(out.resolve("tokenizer.json")) ? ", tokenizer.json)" : ")"));
        return 0;
    }

    /**
     * The JDK's message for a failed write is often the bare path (an AccessDeniedException's is),
     * or "PATH: Not a directory" for a path whose parent is not a directory: this says which path
     * weft could not write and, in words, why.
     */
    static IOException cannotWrite(FileSystemException e) {
        Path file = Path.of(e.getFile());
        return new IOException("cannot write " + file + ": " + why(e, file), e);
    }

    private static String why(FileSystemException e, Path file) {
        if (e instanceof AccessDeniedException) return "permission denied";
        if (e instanceof FileAlreadyExistsException && Files.isRegularFile(file)) return "it is a file, not a directory";
        if (Files.isDirectory(file)) return "it is a directory";
        for (Path p = file.toAbsolutePath().getParent(); p != null; p = p.getParent())
            if (Files.exists(p)) {
                if (!Files.isDirectory(p)) return p + " is not a directory";
                break;
            }
        String reason = e.getReason();
        if (reason == null || reason.isBlank()) return e.getClass().getSimpleName();
        return Character.toLowerCase(reason.charAt(0)) + reason.substring(1);
    }
}
