package dev.weft.launcher;

import dev.weft.core.Bytes;
import dev.weft.trainer.Checkpoint;
import dev.weft.trainer.Chunks;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/** {@code weft checkpoint ls|verify}: what persistent checkpoints a run holds, and whether their bytes are intact. */
@Command(name = "checkpoint", mixinStandardHelpOptions = true, description = "List and verify a run's persistent checkpoints.",
        subcommands = {CheckpointCommand.Ls.class, CheckpointCommand.Verify.class})
public final class CheckpointCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    @Command(name = "ls", mixinStandardHelpOptions = true, description = "List the checkpoints of a run (its out_dir, or its checkpoints directory).")
    static final class Ls implements Callable<Integer> {
        @Parameters(paramLabel = "DIR", description = "A run's out_dir or its checkpoints directory") Path dir;
        @CommandLine.Spec CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            List<Path> all = Checkpoint.all(dir);
            Path latest = Checkpoint.latest(Files.isDirectory(dir.resolve("checkpoints")) ? dir : dir.getParent() == null ? dir : dir.getParent());
            if (all.isEmpty()) out.println("no checkpoints in " + dir);
            for (Path p : all) {
                Checkpoint.State st = Checkpoint.readState(p);
                out.printf("%s  step %d, %,d tokens seen, %s (%d optimizer steps), %s, %d file(s)%s%n", p.getFileName(), st.step(), st.tokensSeen(),
                        st.optimizer(), st.optimizerSteps(), Bytes.human(size(p)), files(p), p.equals(latest) ? "  <- latest" : "");
            }
            out.flush();
            return 0;
        }
    }

    @Command(name = "verify", mixinStandardHelpOptions = true,
            description = "Read every chunk of a checkpoint and check its CRC32C; exit 1 if any is corrupt.")
    static final class Verify implements Callable<Integer> {
        @Parameters(paramLabel = "DIR", description = "A checkpoint directory, or a run's out_dir (its latest checkpoint)") Path dir;
        @CommandLine.Spec CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            Path ckpt = GenerateCommand.resolve(dir);
            List<Chunks.Check> checks = Checkpoint.verify(ckpt);
            int bad = 0, unchecked = 0;
            for (Chunks.Check c : checks) {
                String state = c.stored() == null ? "no stored CRC32C (" + c.actual() + ")" : c.ok() ? "ok " + c.actual() : "CORRUPT: CRC32C " + c.actual() + ", stored " + c.stored();
                if (!c.ok()) bad++;
                if (c.stored() == null) unchecked++;
                out.printf("%s  %s %s  %s%n", ckpt.relativize(c.file()), c.name(), c.range(), state);
            }
            out.printf("%s: %d chunk(s), %d intact, %d corrupt%s%n", ckpt, checks.size(), checks.size() - bad - unchecked, bad,
                    unchecked == 0 ? "" : ", " + unchecked + " without a stored CRC32C (whole tensors of model.safetensors)");
            out.flush();
            return bad == 0 ? 0 : 1;
        }
    }

    private static long size(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static long files(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).count();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
