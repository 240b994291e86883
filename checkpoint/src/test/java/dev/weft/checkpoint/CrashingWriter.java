package dev.weft.checkpoint;

import java.nio.file.Path;
import java.util.List;

/**
 * A writer process for the crash tests; the test kills it with SIGKILL at the point it announces.
 * {@code midwrite DIR}: commits step 1 over three domains, then dies while writing step 2's pieces.
 * {@code holdlock DIR}: commits step 1 in one store, then holds a Chronicle Map segment lock forever.
 */
public final class CrashingWriter {
    public static void main(String[] args) throws Exception {
        Path root = Path.of(args[1]);
        switch (args[0]) {
            case "midwrite" -> {
                List<SnapshotStore> stores = Fixtures.open(Fixtures.domainDirs(root, 3));
                ErasureCodedSnapshots ec = new ErasureCodedSnapshots(stores, 2, 1);
                ec.save("job", "rank0", Fixtures.snapshot(1, 50_000));
                ErasureCodedSnapshots.afterPiece = piece -> {
                    System.out.println("WRITING");
                    System.out.flush();
                    sleepForever();
                };
                ec.save("job", "rank0", Fixtures.snapshot(2, 50_000));
                System.out.println("UNEXPECTED: step 2 committed");
            }
            case "holdlock" -> {
                SnapshotStore store = SnapshotStore.open(root);
                new ErasureCodedSnapshots(List.of(store), 1, 0).save("job", "r", Fixtures.snapshot(1, 4000));
                store.holdIndexLockForever(IndexEntry.key("job", 1, "r", SnapshotStore.COMMIT), () -> {
                    System.out.println("LOCKED");
                    System.out.flush();
                });
            }
            default -> throw new IllegalArgumentException("mode must be midwrite or holdlock, got " + args[0]);
        }
    }

    private static void sleepForever() {
        while (true) {
            try {
                Thread.sleep(60_000);
            } catch (InterruptedException ignored) {
                // keep sleeping until killed
            }
        }
    }
}
