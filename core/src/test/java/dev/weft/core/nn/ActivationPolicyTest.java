package dev.weft.core.nn;

import dev.weft.core.Autograd;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.ops.Elementwise;
import dev.weft.core.ops.Reductions;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Where a module's activation policy sits: innermost, inside the boundary and the hooks. */
class ActivationPolicyTest {
    /** y = 2x, wrapped by every seam a layout can install, each logging what it sees. */
    private static final class Doubling extends Module {
        Tensor forward(Tensor x) {
            return around(x, in -> Elementwise.scale(in, 2f));
        }
    }

    @Test
    void thePolicyWrapsTheBodyInsideTheHooksAndTheBoundary() {
        List<String> log = new ArrayList<>();
        Doubling m = new Doubling();
        m.boundary(new Module.Boundary() {
            @Override
            public Tensor input(Tensor x) {
                log.add("boundary.input");
                return x;
            }

            @Override
            public Tensor output(Tensor y) {
                log.add("boundary.output");
                return y;
            }
        });
        m.hooks(new Module.Hooks() {
            public void beforeForward(Module x) { log.add("beforeForward"); }
            public void afterForward(Module x) { log.add("afterForward"); }
            public void beforeBackward(Module x) { log.add("beforeBackward"); }
            public void afterBackward(Module x) { log.add("afterBackward"); }
        });
        ActivationPolicy policy = (module, x, body) -> {
            assertSame(m, module);
            log.add("policy before body");
            Tensor y = body.apply(x);
            log.add("policy after body");
            return y;
        };
        m.activations(policy);
        assertSame(policy, m.activations());
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.full(1.5f, 3).requiresGrad(true);
            Tensor y = m.forward(x);
            assertEquals(List.of("boundary.input", "beforeForward", "policy before body", "policy after body", "afterForward", "boundary.output"), log);
            log.clear();
            Autograd.backward(Reductions.sum(y));
            assertEquals(List.of("beforeBackward", "afterBackward"), log);
            assertEquals(2f, x.grad().get(0));
            x.clearGrad();
            m.activations(null);
            log.clear();
            m.forward(x);
            assertFalse(log.contains("policy before body"), "removed: " + log);
        }
    }
}
