package dev.weft.launcher;

import dev.weft.core.model.LlamaConfig;
import dev.weft.trainer.HfConfig;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** Where {@code weft export} cannot write, it says so and why, on one line. Tests run as root, so no directory is unwritable by mode. */
class ExportCommandTest {
    @TempDir
    Path dir;
    Path checkpoint;

    @BeforeEach
    void checkpoint() throws IOException {
        checkpoint = Files.createDirectories(dir.resolve("ckpt"));
        HfConfig.write(checkpoint.resolve("config.json"), new LlamaConfig(1, 8, 2, 2, 16, 32, 16, 10000f, 1e-5f, true, 0.02), "char");
        Files.writeString(checkpoint.resolve("model.safetensors"), "weights"); // export copies it without reading
    }

    static void assertOneLineError(CliTest.Run r, String expected) {
        assertEquals(2, r.code(), r.err());
        assertEquals("weft export: error: " + expected, r.err().strip());
    }

    @Test
    void outUnderAFileSaysItIsNotADirectory() throws IOException {
        Path file = Files.writeString(dir.resolve("notes.txt"), "a file, not a directory");
        Path out = file.resolve("hf");
        assertOneLineError(CliTest.run("export", "--checkpoint", checkpoint.toString(), "--out", out.toString()),
                "cannot write " + out + ": " + file + " is not a directory");
    }

    @Test
    void outThatIsAFileSaysSo() throws IOException {
        Path out = Files.writeString(dir.resolve("hf"), "a file, not a directory");
        assertOneLineError(CliTest.run("export", "--checkpoint", checkpoint.toString(), "--out", out.toString()),
                "cannot write " + out + ": it is a file, not a directory");
    }

    @Test
    void aDirectoryInTheWayOfConfigJsonIsNamed() throws IOException {
        Path out = Files.createDirectories(dir.resolve("hf"));
        Files.createDirectories(out.resolve("config.json").resolve("sub"));
        assertOneLineError(CliTest.run("export", "--checkpoint", checkpoint.toString(), "--out", out.toString()),
                "cannot write " + out.resolve("config.json") + ": it is a directory");
    }

    /** Root writes through any mode, so a denied write is checked on the mapping alone. */
    @Test
    void aDeniedWriteSaysPermissionDenied() {
        Path out = dir.resolve("hf");
        assertEquals("cannot write " + out + ": permission denied",
                ExportCommand.cannotWrite(new AccessDeniedException(out.toString())).getMessage());
        assertEquals("cannot write " + out + ": read-only file system",
                ExportCommand.cannotWrite(new FileSystemException(out.toString(), null, "Read-only file system")).getMessage());
    }
}
