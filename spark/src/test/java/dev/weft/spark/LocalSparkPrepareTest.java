package dev.weft.spark;

import org.junit.jupiter.api.BeforeAll;

import java.util.Map;

/** {@link SparkPrepareCases} in {@code local[2]}: two task threads in this JVM. */
class LocalSparkPrepareTest extends SparkPrepareCases {
    @BeforeAll
    static void startSpark() {
        spark = SparkStart.session("local[2]", "weft test", Map.of(), null);
    }
}
