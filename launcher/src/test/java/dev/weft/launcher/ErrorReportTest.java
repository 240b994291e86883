package dev.weft.launcher;

import dev.weft.checkpoint.UnrecoverableSnapshotException;
import dev.weft.core.MemoryBudgetExceededException;
import dev.weft.core.io.SafetensorsFormatException;
import dev.weft.parallel.CollectiveTimeoutException;
import dev.weft.parallel.rendezvous.RendezvousException;
import dev.weft.trainer.config.ConfigException;
import dev.weft.trainer.data.TokenShard;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

public class ErrorReportTest {
    @TempDir
    Path dir;

    @CommandLine.Command(name = "fail")
    record Failing(RuntimeException e) implements Runnable {
        @Override
        public void run() {
            throw e;
        }
    }

    record Report(int code, String err) {}

    static Report report(RuntimeException e) {
        CommandLine cl = new CommandLine(new Failing(e));
        cl.setExecutionExceptionHandler(new ErrorReport());
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err, true));
        return new Report(cl.execute(), err.toString());
    }

    /** Every kind of bad input weft names, thrown the way weft throws it. */
    public static List<RuntimeException> userErrors(Path dir) throws IOException {
        Path notAShard = Files.writeString(dir.resolve("not-a-shard.bin"), "x".repeat(64));
        RuntimeException shard = assertThrows(RuntimeException.class, () -> TokenShard.open(notAShard));
        return List.of(
                new ConfigException("model.d_model = 100 must be divisible by model.heads = 3"),
                shard,
                new SafetensorsFormatException(dir.resolve("model.safetensors"), "header is not JSON"),
                new MemoryBudgetExceededException("activations: 2 GiB over the 1 GiB budget"),
                new CollectiveTimeoutException("all_reduce", "world", 7, List.of(1), Duration.ofSeconds(5)),
                new RendezvousException("rank 1 never joined"),
                new java.io.UncheckedIOException(new UnrecoverableSnapshotException("only 2 of 4 pieces survive")),
                new IllegalArgumentException("--steps must be positive"));
    }

    @Test
    void badInputIsOneLineAndExitTwo() throws IOException {
        for (RuntimeException e : userErrors(dir)) {
            Report r = report(e);
            assertEquals(2, r.code(), e.getClass().getSimpleName() + ": " + r.err());
            assertEquals("weft fail: error: " + e.getMessage() + System.lineSeparator(), r.err(), e.getClass().getSimpleName());
        }
    }

    @Test
    void aBugKeepsItsStackTrace() {
        Report r = report(new NullPointerException("tensor was null"));
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("weft fail: internal error (please report): java.lang.NullPointerException: tensor was null"), r.err());
        assertTrue(r.err().contains("\tat "), r.err());
    }

    /** A name is not a kind: only the marker makes an exception the user's to fix. */
    static final class LooksLikeAConfigException extends RuntimeException {
        LooksLikeAConfigException() {
            super("an internal invariant broke");
        }
    }

    @Test
    void anExceptionNamedLikeBadInputIsStillABug() {
        Report r = report(new LooksLikeAConfigException());
        assertEquals(1, r.code(), r.err());
        assertTrue(r.err().contains("\tat "), r.err());
    }
}
