package dev.weft.parallel.pipeline;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class SchedulesTest {
    @Test
    void byNameBuildsEachScheduleAndListsTheValidNamesOtherwise() {
        for (String name : List.of("gpipe", "1f1b", "zbh1")) assertEquals(name, Schedules.byName(name, 2, 4, 1).name());
        Schedule interleaved = Schedules.byName("interleaved", 2, 4, 2);
        assertEquals(4, interleaved.stages());
        assertEquals(2, interleaved.virtualStages());
        var e = assertThrows(IllegalArgumentException.class, () -> Schedules.byName("zb-v", 2, 4, 1));
        assertTrue(e.getMessage().contains("'zb-v'") && e.getMessage().contains("gpipe, 1f1b, interleaved, zbh1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Schedules.byName("1f1b", 2, 4, 2));
        assertTrue(e.getMessage().contains("interleaved"), e.getMessage());
    }

    @Test
    void fewerMicroBatchesThanRanksAreRefusedWithTheConfigKeysNamed() {
        for (String name : List.of("1f1b", "interleaved", "zbh1")) {
            var e = assertThrows(IllegalArgumentException.class, () -> Schedules.byName(name, 4, 3, name.equals("interleaved") ? 2 : 1), name);
            assertTrue(e.getMessage().contains("train.grad_accum") && e.getMessage().contains("parallel.pp") && e.getMessage().contains(">="), e.getMessage());
        }
        assertEquals(3, Schedules.gpipe(4, 3).microBatches(), "gpipe takes any number of micro-batches");
    }

    @Test
    void interleavedRefusesMicroBatchesThatAreNotAMultipleOfTheRanksAndASingleChunk() {
        var e = assertThrows(IllegalArgumentException.class, () -> Schedules.interleaved1F1B(4, 6, 2));
        assertTrue(e.getMessage().contains("multiple of parallel.pp"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Schedules.interleaved1F1B(4, 8, 1));
        assertTrue(e.getMessage().contains("at least 2 virtual stages"), e.getMessage());
    }

    @Test
    void nonPositiveSizesAreRefused() {
        var e = assertThrows(IllegalArgumentException.class, () -> Schedules.oneFOneB(0, 4));
        assertTrue(e.getMessage().contains("parallel.pp"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Schedules.gpipe(2, 0));
        assertTrue(e.getMessage().contains("train.grad_accum"), e.getMessage());
    }

    @Test
    void interleavedPlacesStageSOnRankSModP() {
        Schedule s = Schedules.interleaved1F1B(4, 8, 2);
        for (int r = 0; r < 4; r++)
            for (Action a : s.actions(r)) assertEquals(r, s.rankOf(a.localStage()), a + " on rank " + r);
        assertEquals(List.of(1, 5), s.actions(1).stream().filter(a -> a.kind() == Action.Kind.FORWARD).map(Action::stage).distinct().sorted().toList());
    }

    @Test
    void transfersNameThePeerStage() {
        Action send = new Action(Action.Kind.SEND_ACTIVATION, 3, 2);
        assertEquals(1, send.localStage());
        assertEquals(new Action(Action.Kind.RECV_ACTIVATION, 3, 1), send.counterpart());
        Action grad = new Action(Action.Kind.SEND_GRADIENT, 3, 1);
        assertEquals(2, grad.localStage());
        assertEquals(new Action(Action.Kind.RECV_GRADIENT, 3, 2), grad.counterpart());
        assertEquals("sendA3>2", send.toString());
    }
}
