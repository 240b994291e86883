package dev.weft.parallel.pipeline;

/**
 * One step of a pipeline schedule on one rank: a computation on a stage, or a transfer to or from
 * a neighbouring stage.
 *
 * <p>{@code stage} means the stage the step runs on for computations. For transfers it names the
 * <em>peer</em>: the stage a send goes to, the stage a receive comes from, so the peer rank is
 * {@code schedule.rankOf(stage)}. The local stage follows from the direction data flows
 * (activations go up, gradients down): {@code SEND_ACTIVATION(mb, s)} runs on stage s-1's rank and
 * pairs with {@code RECV_ACTIVATION(mb, s-1)} on stage s's rank; {@code SEND_GRADIENT(mb, s)} runs
 * on stage s+1's rank and pairs with {@code RECV_GRADIENT(mb, s+1)} on stage s's rank. Neighbouring
 * stages on one rank (a single-rank pipeline) hand tensors over in memory and schedule no transfer.
 */
public record Action(Kind kind, int microBatch, int stage) {
    public enum Kind {
        FORWARD("F"),
        /** The input-gradient half of a split backward (zero-bubble's B): what the previous stage waits for. */
        BACKWARD_INPUT("I"),
        /** The weight-gradient half of a split backward (zero-bubble's W): nobody waits for it. */
        BACKWARD_WEIGHT("W"),
        /** Input and weight gradients in one pass, as GPipe and 1F1B run it. */
        BACKWARD("B"),
        SEND_ACTIVATION("sendA"),
        RECV_ACTIVATION("recvA"),
        SEND_GRADIENT("sendG"),
        RECV_GRADIENT("recvG");

        private final String symbol;

        Kind(String symbol) {
            this.symbol = symbol;
        }

        public boolean isTransfer() {
            return ordinal() >= SEND_ACTIVATION.ordinal();
        }

        public boolean isSend() {
            return this == SEND_ACTIVATION || this == SEND_GRADIENT;
        }

        /** The kind that completes this transfer on the peer: a send's receive and a receive's send. */
        public Kind counterpart() {
            return switch (this) {
                case SEND_ACTIVATION -> RECV_ACTIVATION;
                case RECV_ACTIVATION -> SEND_ACTIVATION;
                case SEND_GRADIENT -> RECV_GRADIENT;
                case RECV_GRADIENT -> SEND_GRADIENT;
                default -> throw new IllegalStateException(this + " is a computation, not a transfer");
            };
        }
    }

    public Action {
        if (kind == null) throw new IllegalArgumentException("an action needs a kind");
    }

    public static Action forward(int microBatch, int stage) {
        return new Action(Kind.FORWARD, microBatch, stage);
    }

    public static Action backward(int microBatch, int stage) {
        return new Action(Kind.BACKWARD, microBatch, stage);
    }

    public static Action backwardInput(int microBatch, int stage) {
        return new Action(Kind.BACKWARD_INPUT, microBatch, stage);
    }

    public static Action backwardWeight(int microBatch, int stage) {
        return new Action(Kind.BACKWARD_WEIGHT, microBatch, stage);
    }

    /** The stage whose data this step computes or moves: {@code stage} for a computation, the sender or receiver for a transfer. */
    public int localStage() {
        return switch (kind) {
            case SEND_ACTIVATION, RECV_GRADIENT -> stage - 1;
            case RECV_ACTIVATION, SEND_GRADIENT -> stage + 1;
            default -> stage;
        };
    }

    /** The same transfer seen from the peer: {@code SEND_ACTIVATION(mb, s)} ↔ {@code RECV_ACTIVATION(mb, s-1)}. */
    public Action counterpart() {
        return new Action(kind.counterpart(), microBatch, localStage());
    }

    /** Compact text: {@code F3@1} (forward of micro-batch 3 on stage 1), {@code sendA3>2}, {@code recvG3<2}. */
    @Override
    public String toString() {
        if (!kind.isTransfer()) return kind.symbol + microBatch + "@" + stage;
        return kind.symbol + microBatch + (kind.isSend() ? ">" : "<") + stage;
    }
}
