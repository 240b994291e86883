package dev.weft.core.model;

import dev.weft.core.Tensor;
import dev.weft.core.nn.Init;
import dev.weft.core.nn.Linear;
import dev.weft.core.nn.Module;
import dev.weft.core.ops.Activations;

/** The SwiGLU feed-forward block ("mlp"): down(silu(gate(x)) * up(x)). */
final class LlamaMlp extends Module {
    private final Linear gate, up, down;

    LlamaMlp(LlamaConfig c) {
        Init.Scheme init = Init.normal(c.initStd());
        gate = child("gate_proj", new Linear(c.dModel(), c.ffnDim(), init));
        up = child("up_proj", new Linear(c.dModel(), c.ffnDim(), init));
        down = child("down_proj", new Linear(c.ffnDim(), c.dModel(), init));
    }

    Tensor forward(Tensor x) {
        return down.forward(Activations.swiglu(gate.forward(x), up.forward(x)));
    }
}
