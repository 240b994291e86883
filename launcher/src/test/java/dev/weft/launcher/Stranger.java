package dev.weft.launcher;

import dev.weft.parallel.rendezvous.JobSecret;
import dev.weft.parallel.rendezvous.Rendezvous;
import dev.weft.parallel.rendezvous.RendezvousException;

import java.time.Duration;

/**
 * A process without the job secret that tries to join a job's rendezvous as a rank (run on a
 * node of {@link TwoNodes}, inside its namespace, with {@link TwoNodes#runJava}). Prints
 * "REFUSED message" or "ADMITTED peers".
 *
 * <p>Arguments: RDZV_ENDPOINT RANK WORLD_SIZE.
 */
public final class Stranger {
    private Stranger() {}

    public static void main(String[] args) {
        try {
            System.out.println("ADMITTED " + Rendezvous.join(args[0], JobSecret.random(), 0, Integer.parseInt(args[1]), Integer.parseInt(args[2]),
                    "intruder", Duration.ofSeconds(30)));
        } catch (RendezvousException e) {
            System.out.println("REFUSED " + e.getMessage());
        }
    }
}
