package dev.weft.trainer;

import dev.weft.core.model.LlamaConfig;

import java.util.List;

/**
 * How the layers split into pipeline stages: stage 0 also computes the embedding and the last stage
 * the final norm, the head and the loss, so an even count of layers is not an even cost. Unless the
 * config lists the layers per stage ({@code parallel.pp_split}), the split minimises the costliest
 * stage under a cost model of forward FLOPs per token.
 */
final class PipelineStages {
    private PipelineStages() {}

    /** [stage] = {first layer, end} for {@code stages} stages. */
    static int[][] split(LlamaConfig c, int stages, List<Integer> explicit, int seq) {
        int layers = c.layers();
        int[][] out = new int[stages][2];
        if (!explicit.isEmpty()) {
            int at = 0;
            for (int s = 0; s < stages; s++) {
                out[s][0] = at;
                at += explicit.get(s);
                out[s][1] = at;
            }
            return out;
        }
        double layer = layerCost(c, seq), head = headCost(c), embedding = c.dModel();
        // best[s][l]: the least possible costliest stage when stages 0..s hold layers 0..l-1; each stage holds at least one
        double[][] best = new double[stages][layers + 1];
        int[][] cut = new int[stages][layers + 1];
        for (double[] row : best) java.util.Arrays.fill(row, Double.POSITIVE_INFINITY);
        for (int l = 1; l <= layers; l++) best[0][l] = embedding + l * layer + (stages == 1 ? head : 0);
        for (int s = 1; s < stages; s++) {
            for (int l = s + 1; l <= layers; l++) {
                for (int k = s; k < l; k++) { // stage s holds layers k..l-1
                    double cost = (l - k) * layer + (s == stages - 1 ? head : 0);
                    double worst = Math.max(best[s - 1][k], cost);
                    if (worst < best[s][l]) {
                        best[s][l] = worst;
                        cut[s][l] = k;
                    }
                }
            }
        }
        int end = layers;
        for (int s = stages - 1; s >= 0; s--) {
            int from = s == 0 ? 0 : cut[s][end];
            out[s][0] = from;
            out[s][1] = end;
            end = from;
        }
        return out;
    }

    /** Forward FLOPs per token of one decoder layer: the projections, and attention over {@code seq} positions (causal: half). */
    static double layerCost(LlamaConfig c, int seq) {
        double d = c.dModel(), hd = c.headDim();
        double projections = 2 * (d * hd * (c.heads() + 2.0 * c.kvHeads()) + c.heads() * hd * d + 3 * d * c.ffnDim());
        return projections + 2.0 * seq * c.heads() * hd;
    }

    /** Forward FLOPs per token of the head and the loss. */
    static double headCost(LlamaConfig c) {
        return 2.0 * c.dModel() * c.vocab() + 5.0 * c.vocab();
    }

    /** The stage that holds layer {@code layer}. */
    static int stageOf(int[][] stages, int layer) {
        for (int s = 0; s < stages.length; s++) if (layer >= stages[s][0] && layer < stages[s][1]) return s;
        throw new IllegalArgumentException("layer " + layer + " is in no stage");
    }

    /** The stage that holds parameter {@code name}: by its layer, the embedding on the first stage, the final norm and head on the last. */
    static int stageOfParameter(int[][] stages, String name) {
        String prefix = "model.layers.";
        if (name.startsWith(prefix)) return stageOf(stages, Integer.parseInt(name.substring(prefix.length(), name.indexOf('.', prefix.length()))));
        return name.startsWith("model.embed_tokens.") ? 0 : stages.length - 1;
    }

    /** "stage 0: layers 0-1 + embedding, stage 1: layers 2-3 + head". */
    static String describe(int[][] stages) {
        StringBuilder out = new StringBuilder();
        for (int s = 0; s < stages.length; s++) {
            if (s > 0) out.append(", ");
            out.append("stage ").append(s).append(": layers ").append(stages[s][0]).append('-').append(stages[s][1] - 1);
            if (s == 0) out.append(" + embedding");
            if (s == stages.length - 1) out.append(" + head");
        }
        return out.toString();
    }
}
