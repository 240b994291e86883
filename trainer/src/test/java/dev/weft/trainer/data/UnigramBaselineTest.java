package dev.weft.trainer.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class UnigramBaselineTest {
    @TempDir
    Path dir;

    @Test
    void addOneSmoothedUnigramCrossEntropy() {
        Path train = dir.resolve("train.bin");
        Path val = dir.resolve("val.bin");
        TokenShard.write(train, new int[]{0, 0, 0, 1}, 4, "t"); // N = 4, V = 4: p = 4/8, 2/8, 1/8, 1/8
        TokenShard.write(val, new int[]{0, 1, 3}, 4, "t");
        try (TokenShard t = TokenShard.open(train); TokenShard v = TokenShard.open(val)) {
            double expected = -(Math.log(4 / 8.0) + Math.log(2 / 8.0) + Math.log(1 / 8.0)) / 3;
            assertEquals(expected, UnigramBaseline.crossEntropy(t, v), 1e-12);
        }
    }

    @Test
    void mismatchedTokenizersAreRejected() {
        Path a = dir.resolve("a.bin");
        Path b = dir.resolve("b.bin");
        TokenShard.write(a, new int[]{1, 2}, 256, "byte");
        TokenShard.write(b, new int[]{1, 2}, 50257, "gpt2");
        try (TokenShard x = TokenShard.open(a); TokenShard y = TokenShard.open(b)) {
            assertThrows(IllegalArgumentException.class, () -> UnigramBaseline.crossEntropy(x, y));
        }
    }
}
