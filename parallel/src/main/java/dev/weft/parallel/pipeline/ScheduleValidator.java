package dev.weft.parallel.pipeline;

import dev.weft.parallel.pipeline.Action.Kind;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Proves a {@link Schedule} sound before any rank runs it, or says which rule it breaks, where.
 *
 * <p>The rules, each named in the error:
 * <ul>
 * <li>{@code in-range}: micro-batches in [0, m), stages in [0, stages), transfers to a stage that exists;
 * <li>{@code stage-on-rank}: a rank computes only its own stages and sends or receives only for them;
 * <li>{@code same-rank-transfer}: neighbouring stages on one rank hand over in memory, never by transfer;
 * <li>{@code forward-once}, {@code backward-once}: each (stage, micro-batch) runs one forward and one
 *     backward, either BACKWARD or the pair BACKWARD_INPUT + BACKWARD_WEIGHT;
 * <li>{@code forward-before-backward}: a backward (or its input half) follows the forward;
 * <li>{@code input-before-weight}: BACKWARD_WEIGHT follows that micro-batch's BACKWARD_INPUT on its stage;
 * <li>{@code activation-received}: the forward of stage s > 0 follows the receive of stage s-1's
 *     activation (or stage s-1's forward, when both are on one rank);
 * <li>{@code gradient-received}: the backward of stage s < last follows the receive of stage s+1's
 *     gradient (or stage s+1's backward on the same rank);
 * <li>{@code send-after-compute}: a send follows the computation that produced what it sends;
 * <li>{@code recv-used}: each receive happens once and feeds a later computation;
 * <li>{@code send-matched}: every send has exactly one receive on the peer rank and vice versa;
 * <li>{@code complete}: every (stage, micro-batch) has its forward and its whole backward;
 * <li>{@code no-deadlock}: run with sends that never block (the runtime posts them asynchronously and
 *     buffers them) and receives that block until their send was posted, every rank finishes.
 * </ul>
 */
public final class ScheduleValidator {
    private ScheduleValidator() {}

    /** Throws {@link IllegalArgumentException} naming the rank, the action index and the broken rule. */
    public static void validate(Schedule s) {
        int stages = s.stages(), m = s.microBatches();
        boolean[][] forward = new boolean[stages][m], input = new boolean[stages][m], weight = new boolean[stages][m];
        // Receives seen, by the stage they feed: the index of the receive, -1 once a computation used it.
        Map<Action, int[]> received = new HashMap<>();
        for (int r = 0; r < s.ranks(); r++) {
            List<Action> actions = s.actions(r);
            for (int i = 0; i < actions.size(); i++) {
                Action a = actions.get(i);
                int mb = a.microBatch(), st = a.stage(), local = a.localStage();
                if (mb < 0 || mb >= m) throw fail(s, r, i, a, "in-range", "micro-batch " + mb + " is outside 0.." + (m - 1));
                if (st < 0 || st >= stages || local < 0 || local >= stages)
                    throw fail(s, r, i, a, "in-range", "stage " + (st < 0 || st >= stages ? st : local) + " is outside 0.." + (stages - 1));
                if (s.rankOf(local) != r)
                    throw fail(s, r, i, a, "stage-on-rank", "stage " + local + " lives on rank " + s.rankOf(local) + ", not here");
                if (a.kind().isTransfer() && s.rankOf(st) == r)
                    throw fail(s, r, i, a, "same-rank-transfer", "stages " + local + " and " + st + " are both on rank " + r
                            + ", which hands the tensor over in memory");
                switch (a.kind()) {
                    case FORWARD -> {
                        if (forward[st][mb]) throw fail(s, r, i, a, "forward-once", "a second forward of micro-batch " + mb + " on stage " + st);
                        if (st > 0) needInput(s, r, i, a, received, forward[st - 1][mb], new Action(Kind.RECV_ACTIVATION, mb, st - 1),
                                "activation-received", "the activation of stage " + (st - 1));
                        forward[st][mb] = true;
                    }
                    case BACKWARD, BACKWARD_INPUT -> {
                        if (input[st][mb]) throw fail(s, r, i, a, "backward-once", "a second backward of micro-batch " + mb + " on stage " + st);
                        if (!forward[st][mb])
                            throw fail(s, r, i, a, "forward-before-backward", "micro-batch " + mb + " has not run forward on stage " + st + " yet");
                        if (st < stages - 1) needInput(s, r, i, a, received, input[st + 1][mb], new Action(Kind.RECV_GRADIENT, mb, st + 1),
                                "gradient-received", "the gradient of stage " + (st + 1));
                        input[st][mb] = true;
                        if (a.kind() == Kind.BACKWARD) weight[st][mb] = true;
                    }
                    case BACKWARD_WEIGHT -> {
                        if (weight[st][mb]) throw fail(s, r, i, a, "backward-once", "micro-batch " + mb + "'s weight gradient on stage " + st + " was already computed");
                        if (!input[st][mb])
                            throw fail(s, r, i, a, "input-before-weight", "micro-batch " + mb + " has not run BACKWARD_INPUT on stage " + st + " yet");
                        weight[st][mb] = true;
                    }
                    case SEND_ACTIVATION -> {
                        if (!forward[local][mb])
                            throw fail(s, r, i, a, "send-after-compute", "stage " + local + " has not run the forward of micro-batch " + mb + " yet");
                    }
                    case SEND_GRADIENT -> {
                        if (!input[local][mb])
                            throw fail(s, r, i, a, "send-after-compute", "stage " + local + " has not run the backward of micro-batch " + mb + " yet");
                    }
                    case RECV_ACTIVATION, RECV_GRADIENT -> {
                        if (received.putIfAbsent(a, new int[] {i}) != null)
                            throw fail(s, r, i, a, "recv-used", "the same receive came before");
                    }
                }
            }
        }
        for (var e : received.entrySet()) {
            if (e.getValue()[0] >= 0) {
                Action a = e.getKey();
                int r = s.rankOf(a.localStage());
                throw fail(s, r, e.getValue()[0], a, "recv-used", "no later computation uses what it receives");
            }
        }
        matchTransfers(s);
        for (int st = 0; st < stages; st++) {
            for (int mb = 0; mb < m; mb++) {
                String missing = !forward[st][mb] ? "the forward" : !input[st][mb] ? "the backward" : !weight[st][mb] ? "BACKWARD_WEIGHT" : null;
                if (missing != null)
                    throw new IllegalArgumentException("schedule '" + s.name() + "' breaks rule 'complete' on rank " + s.rankOf(st)
                            + ": stage " + st + " never runs " + missing + " of micro-batch " + mb);
            }
        }
        runToCompletion(s);
    }

    /** A computation's input is local (the neighbour stage ran here) or came by an earlier, unused receive. */
    private static void needInput(Schedule s, int r, int i, Action a, Map<Action, int[]> received, boolean neighbourRanHere,
                                  Action recv, String rule, String what) {
        if (s.rankOf(recv.stage()) == r) {
            if (!neighbourRanHere) throw fail(s, r, i, a, rule, what + " (on this rank) has not been computed yet");
            return;
        }
        int[] at = received.get(recv);
        if (at == null || at[0] < 0)
            throw fail(s, r, i, a, rule, "needs " + what + " from rank " + s.rankOf(recv.stage()) + ", and no " + recv + " came before it");
        at[0] = -1;
    }

    private static void matchTransfers(Schedule s) {
        Set<Action> sends = new HashSet<>(), recvs = new HashSet<>();
        Map<Action, Integer> recvIndex = new HashMap<>();
        for (int r = 0; r < s.ranks(); r++) {
            List<Action> actions = s.actions(r);
            for (int i = 0; i < actions.size(); i++) {
                Action a = actions.get(i);
                if (!a.kind().isTransfer()) continue;
                if (a.kind().isSend()) {
                    if (!sends.add(a)) throw fail(s, r, i, a, "send-matched", "the same send came before; its receive can match only one");
                } else {
                    recvs.add(a);
                    recvIndex.put(a, i);
                }
            }
        }
        for (int r = 0; r < s.ranks(); r++) {
            List<Action> actions = s.actions(r);
            for (int i = 0; i < actions.size(); i++) {
                Action a = actions.get(i);
                if (a.kind().isSend() && !recvs.contains(a.counterpart()))
                    throw fail(s, r, i, a, "send-matched", "rank " + s.rankOf(a.stage()) + " never runs the matching " + a.counterpart());
                if (a.kind().isTransfer() && !a.kind().isSend() && !sends.contains(a.counterpart()))
                    throw fail(s, r, i, a, "send-matched", "rank " + s.rankOf(a.stage()) + " never runs the matching " + a.counterpart());
            }
        }
    }

    /**
     * Runs every rank with buffered sends and blocking receives until all finish or none can move;
     * in the second case names every rank still waiting and what it waits for.
     */
    private static void runToCompletion(Schedule s) {
        int ranks = s.ranks();
        int[] next = new int[ranks];
        Set<Action> posted = new HashSet<>();
        boolean moved = true;
        while (moved) {
            moved = false;
            for (int r = 0; r < ranks; r++) {
                List<Action> actions = s.actions(r);
                while (next[r] < actions.size()) {
                    Action a = actions.get(next[r]);
                    if (a.kind().isTransfer() && !a.kind().isSend() && !posted.contains(a.counterpart())) break;
                    if (a.kind().isSend()) posted.add(a);
                    next[r]++;
                    moved = true;
                }
            }
        }
        List<String> stuck = new ArrayList<>();
        for (int r = 0; r < ranks; r++) {
            if (next[r] == s.actions(r).size()) continue;
            Action a = s.actions(r).get(next[r]);
            int peer = s.rankOf(a.stage());
            Action peerAt = next[peer] < s.actions(peer).size() ? s.actions(peer).get(next[peer]) : null;
            stuck.add("rank " + r + " at action " + next[r] + " (" + a + ") waits for " + a.counterpart() + " from rank " + peer
                    + (peerAt == null ? "" : ", itself at action " + next[peer] + " (" + peerAt + ")"));
        }
        if (!stuck.isEmpty())
            throw new IllegalArgumentException("schedule '" + s.name() + "' breaks rule 'no-deadlock': with buffered sends and blocking receives, "
                    + String.join("; ", stuck));
    }

    private static IllegalArgumentException fail(Schedule s, int rank, int index, Action a, String rule, String detail) {
        return new IllegalArgumentException("schedule '" + s.name() + "' breaks rule '" + rule + "' at rank " + rank + ", action " + index
                + " (" + a + "): " + detail);
    }
}
