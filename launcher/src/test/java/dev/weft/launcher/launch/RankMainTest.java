package dev.weft.launcher.launch;

import dev.weft.launcher.ErrorReportTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class RankMainTest {
    @TempDir
    Path dir;

    static String report(Throwable e) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        RankMain.reportFailure("weft rank 1", e, out);
        return bytes.toString(StandardCharsets.UTF_8);
    }

    /** A rank and the CLI agree on what is bad input. */
    @Test
    void badInputIsOneLine() throws IOException {
        for (RuntimeException e : ErrorReportTest.userErrors(dir)) {
            assertEquals("weft rank 1: error: " + e.getMessage() + System.lineSeparator(), report(e), e.getClass().getSimpleName());
        }
    }

    @Test
    void aTransportThatCannotStartIsOneLine() {
        assertEquals("weft rank 1: error: cannot listen for peers on 10.0.0.1: Address already in use" + System.lineSeparator(),
                report(new IllegalStateException("cannot listen for peers on 10.0.0.1: Address already in use")));
    }

    @Test
    void aBugKeepsItsStackTrace() {
        String out = report(new NullPointerException("tensor was null"));
        assertTrue(out.startsWith("weft rank 1: failed: java.lang.NullPointerException: tensor was null"), out);
        assertTrue(out.contains("\tat "), out);
    }
}
