package dev.weft.launcher;

import org.junit.jupiter.api.Test;
import org.slf4j.spi.SLF4JServiceProvider;

import java.util.ServiceLoader;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Chronicle Map logs through slf4j. Without a provider on the CLI's runtime classpath slf4j prints
 * three "SLF4J(W): No SLF4J providers were found" lines into the middle of {@code weft bench ec}'s
 * table and every command that opens a snapshot store; with two (Spark brings Log4j's) it warns of
 * multiple providers on every command. The one provider is Log4j's, configured by the launcher's
 * log4j2.properties.
 */
class Slf4jProviderTest {
    @Test
    void theCliShipsExactlyOneSlf4jProvider() {
        long providers = ServiceLoader.load(SLF4JServiceProvider.class).stream().count();
        assertEquals(1, providers, "slf4j providers on the launcher's runtime classpath");
        assertEquals("org.apache.logging.slf4j.SLF4JServiceProvider",
                ServiceLoader.load(SLF4JServiceProvider.class).findFirst().orElseThrow().getClass().getName());
    }
}
