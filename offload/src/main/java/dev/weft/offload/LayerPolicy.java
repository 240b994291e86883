package dev.weft.offload;

/**
 * What one decoder layer does with the activations it saves for backward: keep them, recompute
 * some or all of them, or move them to host or disk until its backward. The planner chooses one
 * per layer.
 */
public enum LayerPolicy {
    KEEP("none", Tier.DEVICE),
    SELECTIVE("selective", Tier.DEVICE),
    FULL("full", Tier.DEVICE),
    HOST("none", Tier.HOST),
    DISK("none", Tier.DISK);

    private final String recompute;
    private final Tier activations;

    LayerPolicy(String recompute, Tier activations) {
        this.recompute = recompute;
        this.activations = activations;
    }

    /** offload.recompute's word for this policy: none, selective or full. */
    public String recompute() {
        return recompute;
    }

    /** offload.activations' tier for this policy. */
    public Tier activations() {
        return activations;
    }

    /** The policy for a layer's config words. */
    public static LayerPolicy of(String recompute, String activations) {
        Tier t = Tier.parse("offload.activations", activations);
        if (!recompute.equals("none") && t != Tier.DEVICE)
            throw new IllegalArgumentException("a layer either recomputes its activations or offloads them, not both: offload.recompute = "
                    + recompute + " with offload.activations = " + activations);
        return switch (recompute) {
            case "selective" -> SELECTIVE;
            case "full" -> FULL;
            case "none" -> t == Tier.HOST ? HOST : t == Tier.DISK ? DISK : KEEP;
            default -> throw new IllegalArgumentException("offload.recompute must be none, selective or full, got '" + recompute + "'");
        };
    }

    /** How the plan table names it. */
    public String label() {
        return switch (this) {
            case KEEP -> "keep";
            case SELECTIVE -> "recompute selective";
            case FULL -> "recompute full";
            case HOST -> "offload to host";
            case DISK -> "offload to disk";
        };
    }
}
