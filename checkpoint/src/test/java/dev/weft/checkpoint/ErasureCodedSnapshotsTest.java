package dev.weft.checkpoint;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class ErasureCodedSnapshotsTest {
    @TempDir Path tmp;

    @Test
    void snapshotFormatRoundTrips() {
        Snapshot s = Fixtures.snapshot(3, 777);
        byte[] h = SnapshotFormat.header(s);
        var seg = java.lang.foreign.Arena.ofAuto().allocate(SnapshotFormat.payloadSize(s, h));
        SnapshotFormat.write(s, h, seg);
        Fixtures.assertSame(s, SnapshotFormat.read(seg));
    }

    @Test
    void losingMDomainsRestoresBitExactAndMPlusOneIsAClearError() throws IOException {
        List<Path> dirs = Fixtures.domainDirs(tmp, 6);
        List<SnapshotStore> stores = Fixtures.open(dirs);
        ErasureCodedSnapshots ec = new ErasureCodedSnapshots(stores, 3, 2);
        Snapshot s1 = Fixtures.snapshot(1, 10_000), s2 = Fixtures.snapshot(2, 10_001);
        ec.save("job", "rank0", s1);
        ec.save("job", "rank0", s2);
        Fixtures.close(stores);

        // Wipe the domains of two pieces (one data, one parity).
        Fixtures.wipe(dirs.get(ec.domainOf("rank0", 0)));
        Fixtures.wipe(dirs.get(ec.domainOf("rank0", 4)));
        stores = Fixtures.open(dirs);
        var r = new ErasureCodedSnapshots(stores, 3, 2).restore("job", "rank0");
        assertEquals(2, r.step());
        assertArrayEquals(new int[]{0, 4}, r.rebuiltPieces());
        Fixtures.assertSame(s2, r.snapshot());
        r.close();
        Fixtures.close(stores);

        Fixtures.wipe(dirs.get(ec.domainOf("rank0", 2)));
        stores = Fixtures.open(dirs);
        var ec3 = new ErasureCodedSnapshots(stores, 3, 2);
        var e = assertThrows(UnrecoverableSnapshotException.class, () -> ec3.restore("job", "rank0"));
        assertTrue(e.getMessage().contains("step 2 is unrecoverable: RS(3, 2) needs 3 of 5 pieces, only 2 are readable")
                && e.getMessage().contains("piece 0 (domain node" + ec.domainOf("rank0", 0) + "): missing")
                && e.getMessage().contains("piece 2") && e.getMessage().contains("piece 4"), e.getMessage());
        Fixtures.close(stores);
    }

    @Test
    void unreachableDomainsCountAsLost() throws IOException {
        List<Path> dirs = Fixtures.domainDirs(tmp, 4);
        List<SnapshotStore> stores = Fixtures.open(dirs);
        ErasureCodedSnapshots ec = new ErasureCodedSnapshots(stores, 2, 2);
        Snapshot s = Fixtures.snapshot(7, 3000);
        ec.save("job", "r1", s);
        List<SnapshotStore> partial = new ArrayList<>(stores);
        partial.set(ec.domainOf("r1", 0), null);
        partial.set(ec.domainOf("r1", 1), null);
        var r = ErasureCodedSnapshots.forReading(partial).restore("job", "r1");
        assertArrayEquals(new int[]{0, 1}, r.rebuiltPieces());
        assertTrue(r.problems().get(0).contains("domain unreachable"), r.problems().toString());
        Fixtures.assertSame(s, r.snapshot());
        r.close();
        Fixtures.close(stores);
    }

    @Test
    void aFlippedByteIsDetectedAndRebuiltFromParity() throws IOException {
        List<SnapshotStore> stores = Fixtures.open(Fixtures.domainDirs(tmp, 5));
        ErasureCodedSnapshots ec = new ErasureCodedSnapshots(stores, 4, 1);
        Snapshot s = Fixtures.snapshot(5, 20_000);
        ec.save("job", "r", s);
        SnapshotStore holder = stores.get(ec.domainOf("r", 1));
        IndexEntry e = holder.entry("job", 5, "r", 1).orElseThrow();
        byte[] raw = Files.readAllBytes(holder.pieceFile(e));
        raw[123] ^= 1;
        Files.write(holder.pieceFile(e), raw);

        var status = ec.survey(true).get(0);
        assertEquals("corrupt (CRC32C mismatch)", status.pieces().get(1).state());
        assertTrue(status.recoverable());
        var r = ec.restore("job", "r", true);
        assertArrayEquals(new int[]{1}, r.rebuiltPieces());
        assertTrue(r.problems().get(0).contains("piece 1") && r.problems().get(0).contains("corrupt"), r.problems().toString());
        Fixtures.assertSame(s, r.snapshot());
        r.close();
        // The repair wrote the rebuilt piece back: the next restore needs no rebuilding.
        assertEquals(SnapshotStore.PieceState.OK, holder.verifyPiece("job", 5, "r", 1));
        try (var again = ec.restore("job", "r")) {
            assertArrayEquals(new int[0], again.rebuiltPieces());
        }
        Fixtures.close(stores);
    }

    @Test
    void noCommittedSnapshotIsAClearError() throws IOException {
        List<SnapshotStore> stores = Fixtures.open(Fixtures.domainDirs(tmp, 3));
        var e = assertThrows(UnrecoverableSnapshotException.class, () -> new ErasureCodedSnapshots(stores, 2, 1).restore("job", "nobody"));
        assertTrue(e.getMessage().contains("no committed snapshot of job 'job' owner 'nobody'"), e.getMessage());
        var few = assertThrows(IllegalArgumentException.class, () -> new ErasureCodedSnapshots(stores, 3, 1));
        assertTrue(few.getMessage().contains("only 3 domains"), few.getMessage());
        Fixtures.close(stores);
    }

    @Test
    void aRepairAlsoMendsLostParity() throws IOException {
        List<SnapshotStore> stores = Fixtures.open(Fixtures.domainDirs(tmp, 4));
        ErasureCodedSnapshots ec = new ErasureCodedSnapshots(stores, 2, 2);
        Snapshot s = Fixtures.snapshot(9, 5000);
        ec.save("job", "r", s);
        SnapshotStore holder = stores.get(ec.domainOf("r", 3));
        Files.delete(holder.pieceFile(holder.entry("job", 9, "r", 3).orElseThrow()));
        try (var plain = ec.restore("job", "r")) {
            assertArrayEquals(new int[0], plain.rebuiltPieces(), "with every data piece intact, parity is not read");
            Fixtures.assertSame(s, plain.snapshot());
        }
        try (var repaired = ec.restore("job", "r", true)) {
            assertArrayEquals(new int[]{3}, repaired.rebuiltPieces());
            assertEquals(List.of("piece 3 (domain node" + ec.domainOf("r", 3) + "): missing"), repaired.problems());
        }
        assertEquals(SnapshotStore.PieceState.OK, holder.verifyPiece("job", 9, "r", 3));
        Fixtures.close(stores);
    }
}
