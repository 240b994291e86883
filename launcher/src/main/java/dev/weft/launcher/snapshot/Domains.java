package dev.weft.launcher.snapshot;

import dev.weft.checkpoint.SnapshotStore;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Turns {@code --store} arguments into failure domains, in order: a directory holding a store
 * (index.cmap) is one domain; a directory of stores (node0, node1, ...) is one domain per
 * subdirectory, in natural order (node2 before node10). Commit records name domains by directory
 * name, so the order only matters to a writer, not to these readers.
 */
final class Domains {
    private static final Pattern TRAILING_NUMBER = Pattern.compile("^(.*?)(\\d+)$");

    private Domains() {}

    static boolean isStore(Path p) {
        return Files.isRegularFile(p.resolve("index.cmap"));
    }

    static List<Path> resolve(List<Path> args) throws IOException {
        List<Path> out = new ArrayList<>();
        for (Path a : args) {
            if (!Files.isDirectory(a)) throw new NoSuchFileException(a.toString(), null, "--store: no such directory");
            if (isStore(a)) {
                out.add(a);
                continue;
            }
            List<Path> subs;
            try (var s = Files.list(a)) {
                subs = s.filter(Domains::isStore).sorted(Comparator.comparing(Domains::naturalKey)).toList();
            }
            if (subs.isEmpty())
                throw new IOException("--store " + a + ": neither a snapshot store (no index.cmap) nor a directory of stores");
            out.addAll(subs);
        }
        return out;
    }

    private static String naturalKey(Path p) {
        String n = p.getFileName().toString();
        Matcher m = TRAILING_NUMBER.matcher(n);
        return m.matches() ? m.group(1) + String.format("%012d", Long.parseLong(m.group(2).length() > 12 ? "0" : m.group(2))) : n;
    }

    static List<SnapshotStore> open(List<Path> dirs) throws IOException {
        List<SnapshotStore> stores = new ArrayList<>();
        try {
            for (Path d : dirs) stores.add(SnapshotStore.open(d));
        } catch (IOException | RuntimeException e) {
            for (SnapshotStore s : stores) s.close();
            throw e;
        }
        return stores;
    }
}
