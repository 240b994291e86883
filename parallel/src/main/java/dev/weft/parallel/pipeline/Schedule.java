package dev.weft.parallel.pipeline;

import java.util.ArrayList;
import java.util.List;

/**
 * A pipeline schedule as data: for each rank, the actions it runs, in order. The model is cut into
 * {@code stages} consecutive stages (stage 0 holds the embedding, stage {@code stages - 1} the
 * loss); stage s lives on rank {@code s % ranks}, so with {@code virtualStages() = v} chunks per
 * rank, rank r holds stages r, r + ranks, r + 2·ranks, ... (Megatron's interleaved placement).
 * {@link ScheduleValidator} says whether a schedule is sound; a runtime executes it by posting
 * sends asynchronously and blocking on receives.
 */
public record Schedule(int ranks, int stages, int microBatches, String name, List<List<Action>> perRank) {
    public Schedule {
        if (ranks < 1) throw new IllegalArgumentException("a schedule needs at least one rank, got " + ranks);
        if (stages < ranks || stages % ranks != 0)
            throw new IllegalArgumentException("stages (" + stages + ") must be a positive multiple of ranks (" + ranks + ")");
        if (microBatches < 1) throw new IllegalArgumentException("a schedule needs at least one micro-batch, got " + microBatches);
        if (perRank.size() != ranks)
            throw new IllegalArgumentException("a schedule over " + ranks + " ranks lists actions for " + perRank.size());
        List<List<Action>> copy = new ArrayList<>(ranks);
        for (List<Action> actions : perRank) copy.add(List.copyOf(actions));
        perRank = List.copyOf(copy);
    }

    /** The rank that holds {@code stage}. */
    public int rankOf(int stage) {
        return stage % ranks;
    }

    /** Stages per rank: 1 for GPipe, 1F1B and ZB-H1, v for interleaved 1F1B. */
    public int virtualStages() {
        return stages / ranks;
    }

    public List<Action> actions(int rank) {
        return perRank.get(rank);
    }

    /** One line per rank, actions in order: {@code rank 0: F0@0 sendA0>1 ...}. */
    public String describe() {
        StringBuilder out = new StringBuilder(name).append(": ").append(ranks).append(" ranks, ").append(stages)
                .append(" stages, ").append(microBatches).append(" micro-batches\n");
        for (int r = 0; r < ranks; r++) {
            out.append("rank ").append(r).append(':');
            for (Action a : perRank.get(r)) out.append(' ').append(a);
            out.append('\n');
        }
        return out.toString();
    }
}
