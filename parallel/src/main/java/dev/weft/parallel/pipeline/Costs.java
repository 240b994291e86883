package dev.weft.parallel.pipeline;

/**
 * What {@link ScheduleSimulator} charges, the same for every stage: times of a forward, of a
 * backward's input half (B), of its weight half (W), of a whole backward (B and W in one pass; it may
 * cost less than B + W, which share work), and of one point-to-point transfer (latency from a send
 * to its data's arrival; the sender does not wait). An interleaved schedule's stage is 1/v of a
 * rank's layers: give it 1/v of the times to compare it with 1F1B at the same model.
 *
 * <p>Bytes, where given, price the memory a rank holds: {@code bytesPerActivation} from a forward
 * until its backward's input half (or whole backward) has run, {@code bytesHeldForWeights} from the
 * input half until the weight half (what W still reads: linear layers' inputs and output gradients).
 */
public record Costs(double forward, double backwardInput, double backwardWeight, double backward, double transfer,
                    long bytesPerActivation, long bytesHeldForWeights) {
    public Costs {
        for (double t : new double[] {forward, backwardInput, backwardWeight, backward, transfer})
            if (!(t >= 0) || Double.isInfinite(t)) throw new IllegalArgumentException("costs must be finite and >= 0, got " + t);
        if (bytesPerActivation < 0 || bytesHeldForWeights < 0) throw new IllegalArgumentException("bytes must be >= 0");
    }

    /** F, B and W times, a whole backward costing B + W, and the transfer latency; no bytes. */
    public static Costs of(double forward, double backwardInput, double backwardWeight, double transfer) {
        return new Costs(forward, backwardInput, backwardWeight, backwardInput + backwardWeight, transfer, 0, 0);
    }

    public Costs withBytes(long perActivation, long heldForWeights) {
        return new Costs(forward, backwardInput, backwardWeight, backward, transfer, perActivation, heldForWeights);
    }

    double of(Action.Kind kind) {
        return switch (kind) {
            case FORWARD -> forward;
            case BACKWARD_INPUT -> backwardInput;
            case BACKWARD_WEIGHT -> backwardWeight;
            case BACKWARD -> backward;
            default -> 0;
        };
    }
}
