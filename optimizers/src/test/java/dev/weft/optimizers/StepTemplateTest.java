package dev.weft.optimizers;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every optimizer steps through {@link ParameterOptimizer}'s one loop: its results are the exact
 * bits of the per-optimizer loops it replaced, and the {@link StateResidency} it calls sees each
 * parameter's state, and only that, acquired around its update, so state held off the device
 * between uses gives the same bits as resident state.
 *
 * <p>{@code step-fixture.tsv} is {@link SeededRun}'s record of every optimizer as written by
 * {@link StepFixtureRecorder} from the code before the template (see there how to rewrite it; it
 * must never be rewritten to make a change pass).
 */
class StepTemplateTest {
    static List<String> names() {
        return Optimizers.names();
    }

    private static Map<String, Map<String, String>> fixture() throws IOException {
        Map<String, Map<String, String>> out = new TreeMap<>();
        try (InputStream in = StepTemplateTest.class.getResourceAsStream("step-fixture.tsv")) {
            assertNotNull(in, "step-fixture.tsv on the test class path");
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                if (line.isBlank()) continue;
                String[] f = line.split("\t");
                out.computeIfAbsent(f[0], k -> new LinkedHashMap<>()).put(f[1], f[2]);
            }
        }
        return out;
    }

    @Test
    void theFixtureCoversEveryOptimizer() throws IOException {
        assertEquals(new java.util.TreeSet<>(names()), fixture().keySet());
    }

    @ParameterizedTest
    @MethodSource("names")
    void residentStateGivesTheRecordedBits(String name) throws IOException {
        assertEquals(fixture().get(name), SeededRun.record(name, o -> {}), name);
    }

    @ParameterizedTest
    @MethodSource("names")
    void stateOffloadedToHostBetweenUsesGivesTheRecordedBits(String name) throws IOException {
        List<HostStaging> staged = new ArrayList<>();
        try {
            assertEquals(fixture().get(name), SeededRun.record(name, o -> staged.add(HostStaging.install(o))), name);
            assertTrue(staged.getFirst().acquires > 0, "the residency was used");
        } finally {
            staged.forEach(HostStaging::close);
        }
    }

    /** Saving through withState and loading through loadState, with both optimizers offloaded, resumes exactly. */
    @ParameterizedTest
    @MethodSource("names")
    void offloadedStateSavesAndLoadsOneParameterAtATime(String name) throws IOException {
        List<HostStaging> staged = new ArrayList<>();
        try {
            assertEquals(fixture().get(name), SeededRun.record(name, o -> staged.add(HostStaging.install(o)), 4), name);
            assertEquals(2, staged.size());
            // loadState acquires each parameter once, steps 4..8 each one with a gradient (one has none on step 5), and the
            // final record reads each once more
            int parameters = staged.get(1).parameters();
            assertEquals(parameters + (5 * parameters - 1) + parameters, staged.get(1).acquires);
        } finally {
            staged.forEach(HostStaging::close);
        }
    }

    @ParameterizedTest
    @MethodSource("names")
    void offloadedStateIsUnreachableOutsideItsWindow(String name) {
        try (Scope s = Scope.open(); Optimizer o = Optimizers.create(name, SeededRun.parameters(name), SeededRun.settings(name));
             HostStaging h = HostStaging.install(o)) {
            for (Tensor t : o.stateTensors().values()) {
                var e = assertThrows(IllegalStateException.class, t::data, t.name());
                assertTrue(e.getMessage().contains("offloaded"), e.getMessage());
            }
            String first = o.stateByParameter().keySet().iterator().next();
            o.withState(first, ts -> ts.forEach(t -> assertDoesNotThrow(t::data, t.name())));
        }
    }

    /**
     * The residency's view of a step: for each parameter with a gradient, in order, it is
     * announced, then acquired (the next one announced while it is held and before it changes),
     * updated, and released; the tensors passed are exactly that parameter's state.
     */
    @ParameterizedTest
    @MethodSource("names")
    void eachParameterWithAGradientIsAnnouncedAcquiredUpdatedAndReleasedInOrder(String name) {
        try (Scope s = Scope.open()) {
            Map<String, Tensor> ps = SeededRun.parameters(name);
            try (Optimizer o = Optimizers.create(name, ps, SeededRun.settings(name))) {
                Recording rec = new Recording(o, ps);
                o.residency(rec);
                List<String> order = List.copyOf(ps.keySet());
                assertEquals(order, List.copyOf(o.stateByParameter().keySet()));
                for (int t = 0; t < SeededRun.STEPS; t++) {
                    SeededRun.gradients(ps, t);
                    rec.events.clear();
                    o.step(SeededRun.lr(t));
                    List<String> want = new ArrayList<>();
                    List<String> due = order.stream().filter(n -> ps.get(n).grad() != null).toList();
                    assertEquals(t == 2 || t == 5 ? order.size() - 1 : order.size(), due.size());
                    want.add("upcoming " + due.getFirst());
                    for (int j = 0; j < due.size(); j++) {
                        want.add("acquire " + due.get(j));
                        if (j + 1 < due.size()) want.add("upcoming " + due.get(j + 1));
                        want.add("release " + due.get(j));
                    }
                    assertEquals(want, rec.events, name + " step " + t);
                }
            }
        }
    }

    @Test
    void parameterGroupsSetTheResidencyOnEveryGroup() {
        try (Scope s = Scope.open()) {
            Map<String, Tensor> ps = SeededRun.parameters("adamw");
            var galore = new ParameterGroups.Spec("galore", List.of("layer0.*", "layer1.*"), SeededRun.settings("galore"), 1);
            try (Optimizer o = new ParameterGroups(ps, List.of(galore), new ParameterGroups.Spec("adamw", List.of(), Map.of(), 1));
                 HostStaging h = HostStaging.install(o)) {
                assertEquals(List.copyOf(ps.keySet()), List.copyOf(new TreeMap<>(o.stateByParameter()).keySet()));
                for (int t = 0; t < 3; t++) {
                    SeededRun.gradients(ps, t);
                    o.step(SeededRun.lr(t));
                }
                assertEquals(3 * ps.size() - 1, h.acquires); // layer1 has no gradient on step 2
                var e = assertThrows(IllegalArgumentException.class, () -> o.withState("nope", ts -> {}));
                assertTrue(e.getMessage().contains("nope"), e.getMessage());
            }
        }
    }

    /** Records the calls, checking each against the optimizer's own view of that parameter's state. */
    private static final class Recording implements StateResidency {
        final List<String> events = new ArrayList<>();
        private final Map<String, List<Tensor>> expected = new LinkedHashMap<>();
        private final Map<String, Tensor> params;
        private String held;
        private float[] before;

        Recording(Optimizer o, Map<String, Tensor> params) {
            this.params = params;
            Map<String, Tensor> all = o.stateTensors();
            Set<String> seen = new java.util.HashSet<>();
            for (String p : params.keySet()) {
                List<Tensor> mine = all.entrySet().stream().filter(e -> e.getKey().startsWith(p + "/")).map(Map.Entry::getValue).toList();
                assertFalse(mine.isEmpty(), p + " has state");
                expected.put(p, mine);
                mine.forEach(t -> assertTrue(seen.add(t.name()), t.name()));
            }
            assertEquals(all.keySet(), seen, "every state tensor belongs to one parameter");
        }

        private void check(String parameter, List<Tensor> state) {
            List<Tensor> want = expected.get(parameter);
            assertEquals(want.size(), state.size(), parameter);
            for (int i = 0; i < want.size(); i++) assertSame(want.get(i), state.get(i), parameter + " state " + i);
        }

        @Override
        public void upcoming(String parameter, List<Tensor> state) {
            check(parameter, state);
            if (held != null) assertArrayEquals(before, params.get(held).toArray(), held + " is not updated before the next is announced");
            events.add("upcoming " + parameter);
        }

        @Override
        public void acquire(String parameter, List<Tensor> state) {
            check(parameter, state);
            assertNull(held);
            held = parameter;
            before = params.get(parameter).toArray();
            events.add("acquire " + parameter);
        }

        @Override
        public void release(String parameter, List<Tensor> state) {
            check(parameter, state);
            assertEquals(held, parameter);
            assertFalse(Arrays.equals(before, params.get(parameter).toArray()), parameter + " is updated while its state is held");
            held = null;
            events.add("release " + parameter);
        }
    }
}
