package dev.weft.parallel.pipeline;

import dev.weft.parallel.pipeline.Action.Kind;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.*;

class ScheduleValidatorTest {
    /** Every schedule over a grid of p and m (interleaved with v = 2 and m a multiple of p) is sound. */
    @Test
    void everyBuiltScheduleIsSoundOverTheGrid() {
        int checked = 0;
        for (int p = 1; p <= 4; p++) {
            for (int m : new int[] {p, p + 1, 2 * p, 8}) {
                List<Schedule> built = new ArrayList<>(List.of(Schedules.gpipe(p, m), Schedules.oneFOneB(p, m), Schedules.zbh1(p, m)));
                if (m % p == 0) built.add(Schedules.interleaved1F1B(p, m, 2));
                for (Schedule s : built) {
                    String where = s.name() + " p=" + p + " m=" + m;
                    assertDoesNotThrow(() -> ScheduleValidator.validate(s), where);
                    assertEquals(p, s.ranks(), where);
                    assertEquals(p * (s.name().equals("interleaved") ? 2 : 1), s.stages(), where);
                    for (int r = 0; r < p; r++) {
                        long forwards = s.actions(r).stream().filter(a -> a.kind() == Kind.FORWARD).count();
                        assertEquals((long) m * s.virtualStages(), forwards, where + " rank " + r);
                    }
                    checked++;
                }
            }
        }
        assertEquals(4 * 4 * 3 + 12, checked, "gpipe, 1f1b and zbh1 everywhere; interleaved where m is a multiple of p");
    }

    @Test
    void zbh1SplitsEveryBackwardButTheFirstStages() {
        Schedule s = Schedules.zbh1(4, 8);
        for (int r = 0; r < 4; r++) {
            for (Action a : s.actions(r)) {
                if (r == 0) assertNotEquals(Kind.BACKWARD_INPUT, a.kind(), "the first stage has nobody to send a gradient to, so it runs B whole");
                else assertNotEquals(Kind.BACKWARD, a.kind(), "rank " + r + " splits B and W");
            }
        }
    }

    @Test
    void aBackwardBeforeItsForwardIsRejected() {
        assertBroken("forward-before-backward", "rank 1, action 1", Schedules.oneFOneB(2, 4), r -> {
            List<Action> rank1 = r.get(1); // recvA0<0 F0@1 B0@1 ...
            Action f = rank1.get(1);
            rank1.set(1, rank1.get(2));
            rank1.set(2, f);
        });
    }

    @Test
    void aDroppedReceiveIsRejected() {
        assertBroken("activation-received", "rank 1, action 0 (F0@1)", Schedules.oneFOneB(2, 4), r -> r.get(1).remove(0));
    }

    @Test
    void aDroppedGradientReceiveIsRejected() {
        Schedule s = Schedules.gpipe(2, 2); // rank 0: F0 sendA0 F1 sendA1 recvG0 B0 ...
        assertBroken("gradient-received", "(B0@0)", s, r -> r.get(0).remove(new Action(Kind.RECV_GRADIENT, 0, 1)));
    }

    @Test
    void aDuplicatedMicroBatchIsRejected() {
        assertBroken("forward-once", "rank 0, action 2 (F0@0)", Schedules.oneFOneB(2, 4), r -> r.get(0).set(2, Action.forward(0, 0)));
    }

    @Test
    void aWeightPassBeforeItsInputPassIsRejected() {
        Schedule s = Schedules.zbh1(2, 4); // rank 1: recvA0<0 F0@1 I0@1 sendG0>0 recvA1<0 F1@1 I1@1 sendG1>0 W0@1 ...
        assertBroken("input-before-weight", "(W0@1)", s, r -> {
            List<Action> rank1 = r.get(1);
            int w = rank1.indexOf(Action.backwardWeight(0, 1));
            rank1.add(2, rank1.remove(w));
        });
    }

    @Test
    void aSecondWeightPassAfterAWholeBackwardIsRejected() {
        assertBroken("backward-once", "(W3@0)", Schedules.oneFOneB(2, 4), r -> r.get(0).add(Action.backwardWeight(3, 0)));
    }

    /** Both ranks receive before they send: each waits for the other forever. */
    @Test
    void aReceiveBeforeSendCycleIsReportedAsADeadlockWithTheStuckRanks() {
        Schedule s = Schedules.oneFOneB(2, 4);
        var e = assertBroken("no-deadlock", "rank 0 at action 0 (recvG0<1)", s, r -> {
            List<Action> rank0 = r.get(0);
            rank0.add(0, rank0.remove(rank0.indexOf(new Action(Kind.RECV_GRADIENT, 0, 1))));
        });
        assertTrue(e.getMessage().contains("rank 1 at action 0 (recvA0<0) waits for sendA0>1 from rank 0"), e.getMessage());
    }

    @Test
    void aSendWithoutItsReceiveIsRejected() {
        assertBroken("send-matched", "rank 0, action 1 (sendA0>1)", Schedules.gpipe(2, 2), r -> {
            r.get(1).remove(new Action(Kind.RECV_ACTIVATION, 0, 0));
            r.get(1).remove(Action.forward(0, 1)); // so that nothing on rank 1 trips over the missing receive first
            r.get(1).remove(Action.backward(0, 1));
            r.get(1).remove(new Action(Kind.SEND_GRADIENT, 0, 0));
        });
    }

    @Test
    void aReceiveWithoutItsSendIsRejected() {
        assertBroken("send-matched", "rank 1, action 0 (recvA0<0)", Schedules.gpipe(2, 2), r -> r.get(0).remove(new Action(Kind.SEND_ACTIVATION, 0, 1)));
    }

    @Test
    void aReceiveNobodyUsesIsRejected() {
        assertBroken("recv-used", "(recvG0<1)", Schedules.gpipe(2, 2), r -> r.get(0).remove(Action.backward(0, 0)));
    }

    @Test
    void aMissingBackwardIsRejected() {
        assertBroken("complete", "stage 0 never runs the backward of micro-batch 1", Schedules.gpipe(2, 2), r -> {
            r.get(0).remove(Action.backward(1, 0));
            r.get(0).remove(new Action(Kind.RECV_GRADIENT, 1, 1));
            r.get(1).remove(new Action(Kind.SEND_GRADIENT, 1, 0));
        });
    }

    @Test
    void aStageOnTheWrongRankIsRejected() {
        assertBroken("stage-on-rank", "rank 0, action 0 (F0@1)", Schedules.gpipe(2, 2), r -> r.get(0).set(0, Action.forward(0, 1)));
    }

    @Test
    void aTransferBetweenStagesOfOneRankIsRejected() {
        Schedule one = Schedules.interleaved1F1B(1, 1, 2); // stages 0 and 1 on rank 0, handed over in memory
        assertDoesNotThrow(() -> ScheduleValidator.validate(one));
        assertTrue(one.actions(0).stream().noneMatch(a -> a.kind().isTransfer()), one.describe());
        assertBroken("same-rank-transfer", "(sendA0>1)", one, r -> r.get(0).add(1, new Action(Kind.SEND_ACTIVATION, 0, 1)));
    }

    @Test
    void anOutOfRangeMicroBatchIsRejected() {
        assertBroken("in-range", "micro-batch 5", Schedules.gpipe(2, 2), r -> r.get(0).set(0, Action.forward(5, 0)));
    }

    /** Applies {@code breakIt} to a copy of {@code s}'s actions and checks the validator names the rule and place. */
    private static IllegalArgumentException assertBroken(String rule, String where, Schedule s, Consumer<List<List<Action>>> breakIt) {
        List<List<Action>> perRank = new ArrayList<>();
        for (List<Action> actions : s.perRank()) perRank.add(new ArrayList<>(actions));
        breakIt.accept(perRank);
        Schedule broken = new Schedule(s.ranks(), s.stages(), s.microBatches(), s.name() + "-broken", perRank);
        var e = assertThrows(IllegalArgumentException.class, () -> ScheduleValidator.validate(broken), broken.describe());
        assertTrue(e.getMessage().contains("rule '" + rule + "'"), e.getMessage());
        assertTrue(e.getMessage().contains(where), e.getMessage());
        return e;
    }
}
