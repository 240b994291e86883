package dev.weft.spark;

import dev.weft.core.UserError;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;

import java.io.PrintStream;
import java.util.Map;

/**
 * Starts the Spark session weft's jobs run in, for a master URL the user gave.
 *
 * <p>Spark is started only here, so a command that never asks for a master never loads it.
 */
public final class SparkStart {
    /** What a master URL may be, for the error a bad one gets. */
    static final String MASTER_FORMS = "local, local[N], local[*], local-cluster[WORKERS,CORES,MEMORY_MB], spark://HOST:PORT, yarn or k8s://URL";

    private SparkStart() {}

    /** A failure to start Spark, or of its cluster, whose message is the user's to act on. */
    public static final class StartFailure extends RuntimeException implements UserError {
        public StartFailure(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /**
     * A session on {@code master}, with {@code conf} on top of weft's defaults (no web UI, and
     * quiet logs). {@code progress}, if not null, gets a line per stage as jobs run.
     */
    public static SparkSession session(String master, String appName, Map<String, String> conf, PrintStream progress) {
        SparkConf c = new SparkConf().setMaster(master).setAppName(appName)
                .set("spark.ui.enabled", "false")
                .set("spark.ui.showConsoleProgress", "false");
        // A local master needs no routable address; looking one up can take seconds on a VM.
        if (master.startsWith("local")) c.set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1");
        conf.forEach(c::set);
        SparkSession spark;
        try {
            spark = SparkSession.builder().config(c).getOrCreate();
        } catch (Exception e) { // SparkException is checked, and Scala throws it undeclared
            String why = e.getMessage() == null ? e.toString() : e.getMessage().lines().findFirst().orElse(e.toString());
            throw new StartFailure("cannot start Spark on master '" + master + "': " + why + " (a master is " + MASTER_FORMS + ")", e);
        }
        spark.sparkContext().setLogLevel("WARN");
        if (progress != null) spark.sparkContext().addSparkListener(new StageProgress(progress));
        return spark;
    }

    /**
     * The message of the first user error in {@code e}'s causes (a bad input file found by an
     * executor reaches the driver wrapped in Spark's job failure), or null if there is none.
     */
    public static String userMessage(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (UserError.isUserError(t) && t.getMessage() != null) return t.getMessage();
        }
        return null;
    }
}
