package dev.weft.launcher.spark;

import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * How the job secret reaches the executors without travelling in the clear: it rides in the
 * serialized barrier task, and every Spark connection that carries tasks (RPC and block transfer)
 * is authenticated ({@code spark.authenticate}) and AES-encrypted ({@code spark.network.crypto.enabled});
 * blocks an executor keeps on local disk are encrypted too ({@code spark.io.encryption.enabled}).
 * Spark's own secret authenticates both ends, so a stranger can neither join nor read a task.
 *
 * <p>Why not derive the job secret on the executors instead: they would need a key shared with the
 * driver, and the only one they have is Spark's RPC secret, so the guarantee would be the same, with
 * more code of our own. With {@code local[N]} the tasks run inside the driver's JVM and nothing
 * crosses a network, so nothing is switched on.
 *
 * <p>Spark generates its RPC secret itself on YARN and Kubernetes. In local-cluster mode the
 * master, workers and driver share this JVM's configuration, so a random one is made here. A
 * standalone cluster's master and workers hold theirs in their own configuration: the user passes
 * the same one ({@code --spark-conf spark.authenticate.secret=...} or {@code spark.authenticate.secret.file}).
 */
final class SparkSecurity {
    static final String AUTHENTICATE = "spark.authenticate", CRYPTO = "spark.network.crypto.enabled", IO_CRYPTO = "spark.io.encryption.enabled",
            SECRET = "spark.authenticate.secret", SECRET_FILE = "spark.authenticate.secret.file";

    private SparkSecurity() {}

    /** The settings the job runs with: {@code given} (the user's) with authentication and encryption on where a network is crossed. */
    static Map<String, String> settings(String master, Map<String, String> given) {
        Map<String, String> conf = new LinkedHashMap<>(given);
        if (isLocal(master)) return conf;
        for (String key : new String[] {AUTHENTICATE, CRYPTO, IO_CRYPTO}) {
            String v = conf.get(key);
            if (v != null && !v.strip().equalsIgnoreCase("true"))
                throw new IllegalArgumentException("--spark-conf " + key + "=" + v + " is refused: the tasks carry the job secret, so Spark's RPC "
                        + "must be authenticated and encrypted on --spark-master " + master);
            conf.put(key, "true");
        }
        boolean generatedBySpark = master.equals("yarn") || master.startsWith("k8s://");
        if (!generatedBySpark && !conf.containsKey(SECRET) && !conf.containsKey(SECRET_FILE)) {
            if (!master.startsWith("local-cluster"))
                throw new IllegalArgumentException("--spark-master " + master + " needs Spark's RPC secret, the one the cluster's master and "
                        + "workers are configured with: pass --spark-conf " + SECRET + "=... or --spark-conf " + SECRET_FILE + "=PATH "
                        + "(the tasks carry the job secret, so weft runs them over authenticated, encrypted RPC only)");
            byte[] key = new byte[32];
            new SecureRandom().nextBytes(key);
            conf.put(SECRET, HexFormat.of().formatHex(key));
        }
        return conf;
    }

    /** {@code local}, {@code local[N]}, {@code local[N,F]}: tasks are threads of the driver. */
    static boolean isLocal(String master) {
        return master.equals("local") || master.startsWith("local[");
    }
}
