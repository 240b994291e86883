package dev.weft.parallel;

import java.time.Duration;
import java.util.List;

/**
 * How ranks reach each other. A rank creates its transport first and publishes
 * {@link #localEndpoint()} at rendezvous; once it has every rank's endpoint it builds the world
 * group with {@link #connect}.
 */
public interface Transport extends AutoCloseable {
    /** What this rank publishes at rendezvous so that peers can reach it (opaque to the rendezvous). */
    String localEndpoint();

    /** Connects to every rank's endpoint (index = rank) and returns the world group. */
    ProcessGroup connect(int rank, List<String> endpoints, Duration timeout);

    @Override
    void close();
}
