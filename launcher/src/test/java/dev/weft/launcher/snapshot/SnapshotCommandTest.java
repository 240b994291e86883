package dev.weft.launcher.snapshot;

import dev.weft.checkpoint.Chunk;
import dev.weft.checkpoint.ErasureCodedSnapshots;
import dev.weft.checkpoint.Snapshot;
import dev.weft.checkpoint.SnapshotRecord;
import dev.weft.checkpoint.SnapshotStore;
import dev.weft.launcher.Main;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class SnapshotCommandTest {
    @TempDir Path tmp;

    record Run(int code, String out, String err) {}

    private static Run weft(String... args) {
        CommandLine cl = Main.commandLine();
        StringWriter out = new StringWriter(), err = new StringWriter();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    private static Snapshot snapshot(long step) {
        byte[] b = new byte[3000];
        for (int i = 0; i < b.length; i++) b[i] = (byte) (i * step);
        return new Snapshot(new SnapshotRecord(step, step * 10, new long[]{step}, Map.of("lr", "0.1")),
                List.of(Chunk.whole("w", new long[]{b.length}, b)));
    }

    private static void wipe(Path dir) throws IOException {
        try (var w = Files.walk(dir)) {
            for (Path p : w.sorted(Comparator.reverseOrder()).toList()) Files.delete(p);
        }
    }

    @Test
    void lsVerifyAndRestoreReportWhatIsCommittedMissingOrCorrupt() throws IOException {
        List<SnapshotStore> stores = new ArrayList<>();
        for (int i = 0; i < 3; i++) stores.add(SnapshotStore.open(tmp.resolve("node" + i)));
        ErasureCodedSnapshots ec = new ErasureCodedSnapshots(stores, 2, 1);
        ec.save("job", "rank0", snapshot(1));
        ec.save("job", "rank0", snapshot(2));
        stores.get(0).putPiece("job", 3, "rank0", 0, Arena.ofAuto().allocate(64)); // a writer died here
        SnapshotStore holder = stores.get(ec.domainOf("rank0", 1));
        Path piece1 = holder.pieceFile(holder.entry("job", 2, "rank0", 1).orElseThrow());
        for (SnapshotStore s : stores) s.close();

        Run ls = weft("snapshot", "ls", "--store", tmp.toString());
        assertEquals(0, ls.code(), ls.err());
        assertTrue(ls.out().contains("3 failure domains"), ls.out());
        assertTrue(ls.out().contains("job / rank0 / step 2: committed, intact, RS(2, 1), 3/3 pieces readable"), ls.out());
        assertTrue(ls.out().contains("job / rank0 / step 3: PARTIAL"), ls.out());

        byte[] raw = Files.readAllBytes(piece1);
        raw[10] ^= 1;
        Files.write(piece1, raw);
        Run verify = weft("snapshot", "verify", "--store", tmp.toString());
        assertEquals(1, verify.code(), verify.out());
        assertTrue(verify.out().contains("step 2: committed, DEGRADED (recoverable)")
                && verify.out().contains("piece 1 on domain node" + ec.domainOf("rank0", 1) + ": corrupt (CRC32C mismatch)"), verify.out());
        assertTrue(verify.out().contains("summary: 1 intact, 1 degraded but recoverable, 0 unrecoverable, 1 partial (ignored)"), verify.out());

        Run restore = weft("snapshot", "restore", "--store", tmp.toString(), "--repair");
        assertEquals(0, restore.code(), restore.out() + restore.err());
        assertTrue(restore.out().contains("job / rank0: restored step 2 (1 chunks, 3000 bytes), rebuilt pieces [1] and wrote them back"), restore.out());
        assertEquals(0, weft("snapshot", "verify", "--store", tmp.toString()).code(), "the repair made the group whole");

        wipe(tmp.resolve("node0"));
        wipe(tmp.resolve("node1"));
        Run lost = weft("snapshot", "restore", "--store", tmp.resolve("node2").toString());
        assertEquals(2, lost.code(), lost.out());
        assertTrue(lost.err().contains("unrecoverable: RS(2, 1) needs 2 of 3 pieces, only 1 are readable"), lost.err());
    }

    @Test
    void aMissingStoreIsAClearError() {
        Run r = weft("snapshot", "ls", "--store", tmp.resolve("nope").toString());
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--store: no such directory"), r.err());
        Run empty = weft("snapshot", "ls", "--store", tmp.toString());
        assertEquals(2, empty.code());
        assertTrue(empty.err().contains("neither a snapshot store"), empty.err());
    }

    @Test
    void benchRunsOnTinySizes() {
        Run r = weft("bench", "ec", "--shard-kib", "4", "--codes", "2:1", "--store-mib", "1", "--min-time", "0.01",
                "--store", tmp.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("RS(2,1)") && r.out().contains("memory copy") && r.out().contains("EC restore"), r.out());
    }
}
