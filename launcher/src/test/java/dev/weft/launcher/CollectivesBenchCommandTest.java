package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.*;

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
}
