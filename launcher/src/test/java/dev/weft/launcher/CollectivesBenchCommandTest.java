package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

class CollectivesBenchCommandTest {
    @Test
    void sizesParseWithSuffixes() {
        assertEquals(4096, CollectivesBenchCommand.parseSize("--min-size", "4K"));
        assertEquals(256L << 20, CollectivesBenchCommand.parseSize("--max-size", "256m"));
        assertEquals(12, CollectivesBenchCommand.parseSize("--max-size", "12"));
        var e = assertThrows(IllegalArgumentException.class, () -> CollectivesBenchCommand.parseSize("--max-size", "lots"));
        assertTrue(e.getMessage().contains("--max-size: 'lots'"), e.getMessage());
        assertEquals("64 MiB", CollectivesBenchCommand.human(64L << 20));
    }

    @Test
    void isRegisteredUnderBenchAndRejectsAnInvertedRange() {
        CommandLine cl = new CommandLine(new BenchCommand());
        assertTrue(cl.getSubcommands().containsKey("collectives"));
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err));
        int rc = cl.execute("collectives", "--min-size", "1M", "--max-size", "4K");
        assertNotEquals(0, rc);
        assertTrue(err.toString().contains("--max-size at least --min-size"), err.toString());
    }

    @Test
    void busBandwidthFollowsTheNcclTestsConvention() {
        // 1 GB in 1 s: all-reduce moves 2(n-1)/n of it per rank, the others (n-1)/n, a message all of it
        assertEquals(1.5, CollectivesBenchCommand.busBandwidth("all-reduce", 4, 1_000_000_000L, 1.0), 1e-12);
        assertEquals(0.75, CollectivesBenchCommand.busBandwidth("reduce-scatter", 4, 1_000_000_000L, 1.0), 1e-12);
        assertEquals(0.5, CollectivesBenchCommand.busBandwidth("all-gather", 2, 1_000_000_000L, 1.0), 1e-12);
        assertEquals(2.0, CollectivesBenchCommand.busBandwidth("send-recv", 2, 1_000_000_000L, 0.5), 1e-12);
    }

    @Test
    void theBundledOpenMpiBenchmarkCompilesAndReportsEveryCase() throws Exception {
        OpenMpiBaseline mpi = OpenMpiBaseline.find(new PrintWriter(new StringWriter()));
        assumeTrue(mpi != null, "no Open MPI here: " + OpenMpiBaseline.why());
        var lines = mpi.run(2, 4096, 16384, 0.01, "sync");
        for (String op : new String[] {"all-reduce", "reduce-scatter", "all-gather", "send-recv"})
            for (long size : new long[] {4096, 16384})
                assertTrue(lines.stream().anyMatch(l -> l.startsWith("CASE " + op + " " + size + " ") && Double.parseDouble(l.split(" ")[3]) > 0),
                        op + " " + size + " missing from " + lines);
        assertTrue(lines.stream().anyMatch(l -> l.matches("MEM \\d+ \\d+")), "no MEM line in " + lines);
    }
}
