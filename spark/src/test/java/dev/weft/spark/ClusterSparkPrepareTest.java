package dev.weft.spark;

import org.junit.jupiter.api.BeforeAll;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link SparkPrepareCases} in {@code local-cluster[2,1,1024]}: a standalone master and two
 * workers in this JVM, each running its executor as a separate JVM, so tasks, shuffles and
 * results cross processes as on a real cluster. The workers build the executor's command from
 * {@code SPARK_HOME} (which needs a {@code jars/} directory, empty here) and
 * {@code SPARK_SCALA_VERSION}, both set for the test JVM by this module's surefire
 * configuration; the executors get this JVM's classpath.
 */
class ClusterSparkPrepareTest extends SparkPrepareCases {
    @BeforeAll
    static void startSpark() throws Exception {
        String home = System.getenv("SPARK_HOME");
        assumeTrue(home != null && "2.13".equals(System.getenv("SPARK_SCALA_VERSION")),
                "local-cluster needs SPARK_HOME and SPARK_SCALA_VERSION=2.13 in the environment (set by the spark module's surefire configuration)");
        Files.createDirectories(Path.of(home, "jars"));
        spark = SparkStart.session("local-cluster[2,1,1024]", "weft test", Map.of(
                "spark.executor.extraClassPath", System.getProperty("java.class.path"),
                "spark.executor.memory", "1024m"), null);
    }
}
