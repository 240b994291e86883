package dev.weft.checkpoint;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class SnapshotStoreTest {
    @TempDir Path tmp;

    private static MemorySegment bytes(int n, int seed) {
        MemorySegment s = Arena.ofAuto().allocate(n);
        for (int i = 0; i < n; i++) s.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 31 + seed));
        return s;
    }

    @Test
    void piecesAreReadBackAndOnlyCommittedStepsAreListed() throws IOException {
        try (SnapshotStore store = SnapshotStore.open(tmp.resolve("s"))) {
            store.putPiece("job", 1, "rank0", 0, bytes(1000, 1));
            assertEquals(List.of(), store.committedSteps("job", "rank0"), "a step without a commit record is invisible");
            store.commit("job", 1, "rank0", new byte[]{1, 2, 3});
            assertEquals(List.of(1L), store.committedSteps("job", "rank0"));
            assertArrayEquals(new byte[]{1, 2, 3}, store.commitRecord("job", 1, "rank0").orElseThrow());
            MemorySegment dst = Arena.ofAuto().allocate(1000);
            assertEquals(SnapshotStore.PieceState.OK, store.readPiece("job", 1, "rank0", 0, dst));
            assertEquals(-1, dst.mismatch(bytes(1000, 1)));
            assertEquals(SnapshotStore.PieceState.MISSING, store.readPiece("job", 1, "rank0", 1, dst));
        }
        // It outlives the instance (and the process) that wrote it.
        try (SnapshotStore again = SnapshotStore.open(tmp.resolve("s"))) {
            assertEquals(List.of(1L), again.committedSteps("job", "rank0"));
            assertEquals(SnapshotStore.PieceState.OK, again.verifyPiece("job", 1, "rank0", 0));
        }
    }

    @Test
    void keepsTheLastTwoCommittedAndDropsDeadPartials() throws IOException {
        try (SnapshotStore store = SnapshotStore.open(tmp.resolve("s"))) {
            for (long step = 1; step <= 4; step++) {
                store.putPiece("job", step, "r", 0, bytes(100, (int) step));
                if (step != 3) store.commit("job", step, "r", new byte[0]); // step 3: a writer that died
            }
            assertEquals(List.of(4L, 2L), store.committedSteps("job", "r"));
            assertTrue(store.entries().stream().noneMatch(e -> e.step() == 1 || e.step() == 3), store.entries().toString());
            assertFalse(Files.exists(tmp.resolve("s/data/job/r/3")), "files of the dead partial step are removed");
            assertFalse(Files.exists(tmp.resolve("s/data/job/r/1")));
            assertEquals(200, store.usedBytes());
        }
    }

    @Test
    void exceedingTheBudgetIsAClearError() throws IOException {
        try (SnapshotStore store = SnapshotStore.open(tmp.resolve("s"), SnapshotStore.Options.defaults().withBudget(1000))) {
            store.putPiece("job", 1, "r", 0, bytes(600, 1));
            store.commit("job", 1, "r", new byte[0]);
            var e = assertThrows(SnapshotStoreFullException.class, () -> store.putPiece("job", 2, "r", 0, bytes(600, 2)));
            assertTrue(e.getMessage().contains("over its budget") && e.getMessage().contains("needs 600 bytes, 600 of 1000 are in use")
                    && e.getMessage().contains("job/r@1"), e.getMessage());
            assertEquals(List.of(1L), store.committedSteps("job", "r"), "the failed write leaves the committed snapshot alone");
        }
    }

    @Test
    void missingOrUnwritablePlaceIsAClearError() throws IOException {
        var missing = assertThrows(IOException.class, () -> SnapshotStore.open(tmp.resolve("no-shm/weft")));
        assertTrue(missing.getMessage().contains("parent directory " + tmp.resolve("no-shm") + " does not exist"), missing.getMessage());
        Path file = Files.writeString(tmp.resolve("a-file"), "x");
        var notDir = assertThrows(IOException.class, () -> SnapshotStore.open(file.resolve("weft")));
        assertTrue(notDir.getMessage().contains("is not a directory"), notDir.getMessage());
        Path ro = Files.createDirectory(tmp.resolve("ro"));
        ro.toFile().setWritable(false, false);
        try {
            if (!Files.isWritable(ro)) { // root may write anywhere; then only the cases above apply
                var e = assertThrows(IOException.class, () -> SnapshotStore.open(ro.resolve("weft")));
                assertTrue(e.getMessage().contains("is not writable"), e.getMessage());
            }
        } finally {
            ro.toFile().setWritable(true, false);
        }
        var badName = assertThrows(IllegalArgumentException.class, () -> {
            try (SnapshotStore s = SnapshotStore.open(tmp.resolve("s"))) {
                s.putPiece("../etc", 1, "r", 0, bytes(1, 1));
            }
        });
        assertTrue(badName.getMessage().contains("job name '../etc'"), badName.getMessage());
    }

    @Test
    void realSharedMemoryWorksWhenPresent() throws IOException {
        Path shm = Path.of("/dev/shm");
        assumeTrue(Files.isDirectory(shm) && Files.isWritable(shm), "no writable /dev/shm; the store on a plain directory is tested above");
        Path root = shm.resolve("weft-test-" + ProcessHandle.current().pid());
        try (SnapshotStore store = SnapshotStore.open(root)) {
            store.putPiece("j", 1, "r", 0, bytes(4096, 3));
            store.commit("j", 1, "r", new byte[0]);
            assertEquals(SnapshotStore.PieceState.OK, store.verifyPiece("j", 1, "r", 0));
        } finally {
            Fixtures.wipe(root);
        }
    }

    @Test
    void aFlippedByteIsDetected() throws IOException {
        try (SnapshotStore store = SnapshotStore.open(tmp.resolve("s"))) {
            IndexEntry e = store.putPiece("job", 1, "r", 0, bytes(5000, 9));
            store.commit("job", 1, "r", new byte[0]);
            byte[] raw = Files.readAllBytes(store.pieceFile(e));
            raw[4321] ^= 0x10;
            Files.write(store.pieceFile(e), raw);
            assertEquals(SnapshotStore.PieceState.CORRUPT, store.verifyPiece("job", 1, "r", 0));
            assertEquals(SnapshotStore.PieceState.CORRUPT, store.readPiece("job", 1, "r", 0, Arena.ofAuto().allocate(5000)));
        }
    }

    @Test
    void prunedPieceFilesAreRecycledWithinTheBudget() throws IOException {
        // Budget for three 1000-byte pieces: retain two, write a third, prune one, forever.
        try (SnapshotStore store = SnapshotStore.open(tmp.resolve("s"), SnapshotStore.Options.defaults().withBudget(3000))) {
            for (long step = 1; step <= 12; step++) {
                int size = step == 7 ? 600 : 1000; // a smaller piece takes over (and truncates) a larger file
                store.putPiece("job", step, "r", 0, bytes(size, (int) step));
                store.commit("job", step, "r", new byte[0]);
                long free;
                try (var f = Files.list(tmp.resolve("s/free"))) {
                    free = f.mapToLong(p -> p.toFile().length()).sum();
                }
                assertTrue(store.usedBytes() + free <= 3000, "step " + step + ": " + store.usedBytes() + " used + " + free + " free");
            }
            assertEquals(List.of(12L, 11L), store.committedSteps("job", "r"));
            for (long step = 11; step <= 12; step++) {
                MemorySegment dst = Arena.ofAuto().allocate(1000);
                assertEquals(SnapshotStore.PieceState.OK, store.readPiece("job", step, "r", 0, dst));
                assertEquals(-1, dst.mismatch(bytes(1000, (int) step)));
            }
        }
    }
}
