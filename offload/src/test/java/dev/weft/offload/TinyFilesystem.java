package dev.weft.offload;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/** A tmpfs of a few MiB for full-disk tests; mounting needs root, so {@link #mount} gives null without it. */
final class TinyFilesystem implements AutoCloseable {
    private final Path path;

    private TinyFilesystem(Path path) {
        this.path = path;
    }

    static TinyFilesystem mount(Path at, int mib) throws IOException, InterruptedException {
        Files.createDirectories(at);
        Process p = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=" + mib + "m", "tmpfs", at.toString())
                .redirectErrorStream(true).start();
        if (!p.waitFor(20, TimeUnit.SECONDS) || p.exitValue() != 0) return null;
        return new TinyFilesystem(at);
    }

    Path path() {
        return path;
    }

    @Override
    public void close() throws IOException, InterruptedException {
        new ProcessBuilder("umount", "-l", path.toString()).redirectErrorStream(true).start().waitFor(20, TimeUnit.SECONDS);
    }
}
