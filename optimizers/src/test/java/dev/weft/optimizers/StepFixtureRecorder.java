package dev.weft.optimizers;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfEnvironmentVariable;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes {@code step-fixture.tsv}, the record of {@link SeededRun} for every optimizer, to the
 * path in environment variable {@code WEFT_RECORD_STEP_FIXTURE}. Off unless it is set. The
 * committed fixture was written this way from the optimizers as they were before each of them
 * stepped through {@link ParameterOptimizer}'s template, so {@code StepTemplateTest} holds the
 * template to their exact bits:
 * {@code WEFT_RECORD_STEP_FIXTURE=$PWD/optimizers/src/test/resources/dev/weft/optimizers/step-fixture.tsv
 * ./build -q -o test -pl optimizers -am -Dtest=StepFixtureRecorder -Dsurefire.failIfNoSpecifiedTests=false}
 */
class StepFixtureRecorder {
    @Test
    @EnabledIfEnvironmentVariable(named = "WEFT_RECORD_STEP_FIXTURE", matches = ".+")
    void record() throws IOException {
        List<String> lines = new ArrayList<>();
        for (String name : Optimizers.names())
            SeededRun.record(name, o -> {}).forEach((k, v) -> lines.add(name + "\t" + k + "\t" + v));
        Files.write(Path.of(System.getenv("WEFT_RECORD_STEP_FIXTURE")), lines);
    }
}
