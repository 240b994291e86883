package dev.weft.launcher;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class MemoryBaselinesTest {
    @Test
    void copyMeasuresAPositiveRate() {
        double gbs = dev.weft.offload.Bandwidth.hostCopy(1 << 20);
        assertTrue(gbs > 0 && Double.isFinite(gbs), "copy: " + gbs);
    }

    @Test
    void exchangeDeliversEveryPieceAndMeasuresARate() throws InterruptedException {
        // 16 pieces through a 4-deep ring: the ring wraps several times; exchange() checks each
        // thread received exactly the other's bytes and throws otherwise
        double gbs = MemoryBaselines.exchange(1 << 20, 64 << 10);
        assertTrue(gbs > 0 && Double.isFinite(gbs), "exchange: " + gbs);
    }
}
