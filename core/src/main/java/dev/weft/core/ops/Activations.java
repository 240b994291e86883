package dev.weft.core.ops;

import dev.weft.core.Autograd;
import dev.weft.core.DType;
import dev.weft.core.GradFn;
import dev.weft.core.SavedTensor;
import dev.weft.core.Tensor;
import dev.weft.core.kernels.ActivationKernels;
import dev.weft.core.kernels.Parallel;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * SiLU and the SwiGLU gate of the Llama MLP, {@code silu(gate) * up}, each one fused kernel forward
 * and one backward. Backward recomputes the sigmoid from the saved inputs.
 */
public final class Activations {
    private static final int GRAIN = 1 << 13;

    private Activations() {}

    /** {@code x * sigmoid(x)}. */
    public static Tensor silu(Tensor x) {
        Tensor xc = Dense.of(x);
        Tensor y = Tensor.empty(DType.F32, "silu", x.shape());
        MemorySegment xm = xc.data(), ym = y.data();
        Parallel.forRange(Dense.elements(x, "silu"), GRAIN, (from, to) -> ActivationKernels.silu(xm, ym, from, to));
        if (Autograd.needsGrad(x)) y.attach(new SiluBackward(x, xc));
        else Dense.release(xc, x);
        return y;
    }

    /** {@code silu(gate) * up}; gate and up have the same shape. */
    public static Tensor swiglu(Tensor gate, Tensor up) {
        if (!Arrays.equals(gate.shape(), up.shape()))
            throw new IllegalArgumentException("swiglu: gate " + Dense.shape(gate) + " and up " + Dense.shape(up) + " must have the same shape");
        Tensor gc = Dense.of(gate), uc = Dense.of(up);
        Tensor y = Tensor.empty(DType.F32, "swiglu", gate.shape());
        MemorySegment gm = gc.data(), um = uc.data(), ym = y.data();
        Parallel.forRange(Dense.elements(gate, "swiglu"), GRAIN, (from, to) -> ActivationKernels.swiglu(gm, um, ym, from, to));
        if (Autograd.needsGrad(gate, up)) {
            y.attach(new SwigluBackward(gate, up, gc, uc));
        } else {
            Dense.release(gc, gate);
            Dense.release(uc, up);
        }
        return y;
    }

    private static final class SiluBackward extends GradFn {
        private final SavedTensor x;

        SiluBackward(Tensor xIn, Tensor xc) {
            super("silu", xIn);
            this.x = save(xc);
        }

        @Override
        protected Tensor[] backward(Tensor gIn) {
            Tensor g = Dense.of(gIn), xv = x.get();
            Tensor gx = Tensor.empty(DType.F32, "silu.grad", xv.shape());
            MemorySegment xm = xv.data(), gm = g.data(), om = gx.data();
            Parallel.forRange(Math.toIntExact(xv.numel()), GRAIN, (from, to) -> ActivationKernels.siluBackward(xm, gm, om, from, to));
            Dense.release(g, gIn);
            return new Tensor[] {gx};
        }
    }

    private static final class SwigluBackward extends GradFn {
        private final SavedTensor gate, up;

        SwigluBackward(Tensor gateIn, Tensor upIn, Tensor gc, Tensor uc) {
            super("swiglu", gateIn, upIn);
            this.gate = save(gc);
            this.up = save(uc);
        }

        @Override
        protected Tensor[] backward(Tensor gIn) {
            Tensor g = Dense.of(gIn), gv = gate.get(), uv = up.get();
            Tensor gGate = needsGrad(0) ? Tensor.empty(DType.F32, "swiglu.grad_gate", gv.shape()) : null;
            Tensor gUp = needsGrad(1) ? Tensor.empty(DType.F32, "swiglu.grad_up", uv.shape()) : null;
            MemorySegment gm = gv.data(), um = uv.data(), dm = g.data();
            MemorySegment ggm = gGate == null ? null : gGate.data(), gum = gUp == null ? null : gUp.data();
            Parallel.forRange(Math.toIntExact(gv.numel()), GRAIN,
                    (from, to) -> ActivationKernels.swigluBackward(gm, um, dm, ggm, gum, from, to));
            Dense.release(g, gIn);
            return new Tensor[] {gGate, gUp};
        }
    }
}
