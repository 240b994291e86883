package dev.weft.trainer.data;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

class BatchSamplerTest {
    private static final int SEQ = 8;
    /** 1003 tokens, seqLen 8: 125 windows per epoch and a slack of 2 tokens for the epoch offset. */
    private static final int TOKENS = 1003;

    @TempDir
    Path dir;
    TokenShard shard;

    @BeforeEach
    void writeShard() {
        // token i = i: a window's content tells where it starts.
        int[] tokens = new int[TOKENS];
        for (int i = 0; i < TOKENS; i++) tokens[i] = i;
        Path file = dir.resolve("t.bin");
        TokenShard.write(file, tokens, 4096, "test");
        shard = TokenShard.open(file);
    }

    @AfterEach
    void close() {
        shard.close();
    }

    /** The rows of a batch as lists, checking inputs/targets are one window shifted by one. */
    private static List<List<Integer>> rows(BatchSampler.Batch b) {
        List<List<Integer>> rows = new ArrayList<>();
        for (int r = 0; r < b.rows(); r++) {
            List<Integer> row = new ArrayList<>();
            for (int t = 0; t < b.seqLen(); t++) {
                int in = b.inputs()[r * b.seqLen() + t];
                int target = b.targets()[r * b.seqLen() + t];
                assertEquals(in + 1, target, "target is the next token");
                if (t > 0) assertEquals(in, b.inputs()[r * b.seqLen() + t - 1] + 1, "contiguous window");
                row.add(in);
            }
            rows.add(row);
        }
        return rows;
    }

    @Test
    void sameArgumentsGiveTheSameBatch() {
        BatchSampler a = new BatchSampler(shard, SEQ, 4, 2, 3, 42);
        BatchSampler b = new BatchSampler(shard, SEQ, 4, 2, 3, 42);
        for (long step : new long[]{0, 1, 17, 500}) {
            for (int m = 0; m < 3; m++) {
                for (int r = 0; r < 2; r++) {
                    BatchSampler.Batch x = a.batch(step, m, r);
                    assertArrayEquals(x.inputs(), b.batch(step, m, r).inputs());
                    assertArrayEquals(x.targets(), b.batch(step, m, r).targets());
                    assertArrayEquals(x.inputs(), a.batch(step, m, r).inputs(), "repeatable on one sampler");
                    assertEquals(4, x.rows());
                    assertEquals(SEQ, x.seqLen());
                    rows(x);
                }
            }
        }
        assertFalse(Arrays.equals(a.batch(0, 0, 0).inputs(), new BatchSampler(shard, SEQ, 4, 2, 3, 43).batch(0, 0, 0).inputs()),
                "another seed draws another batch");
    }

    @Test
    void ranksTakeDisjointRowsThatFormTheSingleRankBatch() {
        int dp = 4, micro = 2, accum = 2;
        BatchSampler sharded = new BatchSampler(shard, SEQ, micro, dp, accum, 7);
        BatchSampler single = new BatchSampler(shard, SEQ, micro * dp, 1, accum, 7);
        BatchSampler noAccum = new BatchSampler(shard, SEQ, micro * dp * accum, 1, 1, 7);
        for (long step : new long[]{0, 3, 40}) {
            List<List<Integer>> global = new ArrayList<>();
            for (int m = 0; m < accum; m++) {
                List<List<Integer>> micro0 = new ArrayList<>();
                for (int r = 0; r < dp; r++) micro0.addAll(rows(sharded.batch(step, m, r)));
                assertEquals(rows(single.batch(step, m, 0)), micro0, "ranks concatenated = the dp=1 micro-batch");
                global.addAll(micro0);
            }
            assertEquals(dp * micro * accum, new HashSet<>(global).size(), "rows are disjoint within a step");
            assertEquals(rows(noAccum.batch(step, 0, 0)), global, "same global batch without accumulation");
        }
    }

    @Test
    void freshSamplerMatchesOneThatIteratedUpToTheStep() {
        BatchSampler iterated = new BatchSampler(shard, SEQ, 3, 2, 2, 99);
        Map<Long, int[]> seen = new HashMap<>();
        for (long step = 0; step <= 60; step++) { // 60 steps x 12 rows crosses several epochs of 125 windows
            for (int m = 0; m < 2; m++) for (int r = 0; r < 2; r++) seen.put(step * 4 + m * 2 + r, iterated.batch(step, m, r).inputs());
        }
        BatchSampler fresh = new BatchSampler(shard, SEQ, 3, 2, 2, 99);
        for (long step : new long[]{60, 31, 0, 45}) {
            for (int m = 0; m < 2; m++) for (int r = 0; r < 2; r++) {
                assertArrayEquals(seen.get(step * 4 + m * 2 + r), fresh.batch(step, m, r).inputs(), "step " + step);
            }
        }
    }

    @Test
    void anEpochVisitsEveryWindowOnceAtOneOffset() {
        BatchSampler s = new BatchSampler(shard, SEQ, 5, 1, 1, 5);
        assertEquals(125, s.windows());
        assertEquals(25, s.stepsPerEpoch(1));
        assertEquals(12, s.stepsPerEpoch(2));
        Set<Integer> offsets = new HashSet<>();
        for (int epoch = 0; epoch < 6; epoch++) {
            Set<Integer> starts = new HashSet<>();
            for (int step = 0; step < 25; step++) {
                for (List<Integer> row : rows(s.batch(epoch * 25L + step, 0, 0))) starts.add(row.get(0));
            }
            assertEquals(125, starts.size(), "each window once per epoch");
            int offset = starts.stream().mapToInt(x -> x % SEQ).distinct().reduce((x, y) -> -1).orElseThrow();
            assertTrue(offset >= 0 && offset <= 2, "one offset within the slack, got " + offset);
            offsets.add(offset);
            assertTrue(starts.stream().allMatch(x -> x + SEQ < TOKENS), "windows stay inside the shard");
        }
        assertTrue(offsets.size() > 1, "the offset changes between epochs: " + offsets);
    }

    @Test
    void evalBatchesCoverTheShardInOrder() {
        BatchSampler s = new BatchSampler(shard, SEQ, 16, 4, 1);
        assertEquals(8, s.evalBatches()); // 125 windows, 16 per batch
        List<Integer> starts = new ArrayList<>();
        for (int i = 0; i < s.evalBatches(); i++) {
            BatchSampler.Batch b = s.evalBatch(i);
            assertEquals(i < 7 ? 16 : 13, b.rows());
            for (List<Integer> row : rows(b)) starts.add(row.get(0));
        }
        for (int w = 0; w < 125; w++) assertEquals(w * SEQ, starts.get(w));
        assertArrayEquals(s.evalBatch(3).inputs(), new BatchSampler(shard, SEQ, 16, 1, 2).evalBatch(3).inputs(), "seed-independent");
        assertThrows(IllegalArgumentException.class, () -> s.evalBatch(8));
    }

    @Test
    void badArgumentsAreClearErrors() {
        BatchSampler s = new BatchSampler(shard, SEQ, 2, 2, 1);
        var e = assertThrows(IllegalArgumentException.class, () -> s.batch(0, 1, 0));
        assertTrue(e.getMessage().contains("accumulation 1"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> s.batch(0, 0, 2));
        assertThrows(IllegalArgumentException.class, () -> s.batch(-1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new BatchSampler(shard, 0, 2, 2, 1));
    }

    @Test
    void tooShortShardIsAClearError() {
        Path file = dir.resolve("short.bin");
        TokenShard.write(file, new int[]{1, 2, 3, 4, 5}, 256, "byte");
        try (TokenShard tiny = TokenShard.open(file)) {
            var e = assertThrows(IllegalArgumentException.class, () -> new BatchSampler(tiny, 8, 1, 1, 0));
            assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("5 tokens")
                    && e.getMessage().contains("at least 9"), e.getMessage());
            assertEquals(1, new BatchSampler(tiny, 4, 1, 1, 0).windows(), "exactly seqLen + 1 tokens is one window");
        }
    }
}
