package dev.weft.trainer.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;

/** The trainer's data cache: one folder per source, tokenizer and split, prepared atomically. */
class DataCacheTest {
    @TempDir
    Path dir;

    private static String text(String word, int lines) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < lines; i++) b.append(word).append(" line ").append(i).append(" of the corpus\n");
        return b.toString();
    }

    @Test
    void twoCorporaInOneCacheDoNotOverwriteEachOther() throws Exception {
        Path a = Files.writeString(dir.resolve("a.txt"), text("alpha", 50));
        Path b = Files.writeString(dir.resolve("b.txt"), text("beta", 60));
        Path cache = dir.resolve("cache");
        Tokenizer bytes = Tokenizer.byName("byte");
        PreparedData pa = Prepare.cached(a, cache, bytes, 0.1, null);
        PreparedData pb = Prepare.cached(b, cache, bytes, 0.1, null);
        assertNotEquals(pa.train().getParent(), pb.train().getParent());
        assertEquals(cache, pa.train().getParent().getParent());
        assertTrue(pa.train().getParent().getFileName().toString().startsWith("a-byte-"), pa.train().toString());
        PreparedData again = Prepare.cached(a, cache, bytes, 0.1, null);
        assertTrue(again.reused(), "corpus a's shards survive preparing b");
        assertEquals(pa.train(), again.train());
        assertArrayEquals(bytes.encode(Files.readString(a)), tokens(again));
        assertArrayEquals(bytes.encode(Files.readString(b)), tokens(Prepare.cached(b, cache, bytes, 0.1, null)));
        // another tokenizer or split is another folder too
        assertNotEquals(pa.train(), Prepare.cached(a, cache, Tokenizer.byName("gpt2"), 0.1, null).train());
        assertNotEquals(pa.train(), Prepare.cached(a, cache, bytes, 0.2, null).train());
        assertTrue(Prepare.cached(a, cache, bytes, 0.1, null).reused());
    }

    @Test
    void aChangedCorpusIsPreparedAgainInItsFolder() throws Exception {
        Path a = Files.writeString(dir.resolve("a.txt"), text("alpha", 50));
        Path cache = dir.resolve("cache");
        Tokenizer bytes = Tokenizer.byName("byte");
        PreparedData first = Prepare.cached(a, cache, bytes, 0.1, null);
        String edited = text("alpha", 50).replace("corpus", "CORPUS"); // same size: only the CRC tells
        Files.writeString(a, edited);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        PreparedData second = Prepare.cached(a, cache, bytes, 0.1, new PrintStream(log, true, StandardCharsets.UTF_8));
        assertFalse(second.reused(), log.toString());
        assertTrue(log.toString().contains("a.txt changed"), log.toString());
        assertEquals(first.train(), second.train());
        assertArrayEquals(bytes.encode(edited), tokens(second));
        assertTrue(Prepare.cached(a, cache, bytes, 0.1, null).reused());
        assertEquals(List.of(first.train().getParent()), listing(cache), "no temporary or replaced folder is left behind");
    }

    @Test
    void twoConcurrentPreparesOfOneKeyBothSucceedWithIdenticalShards() throws Exception {
        Path a = Files.writeString(dir.resolve("a.txt"), text("alpha", 400));
        Path cache = dir.resolve("cache");
        Tokenizer gpt2 = Tokenizer.byName("gpt2");
        // Both preparations complete before either renames, so the rename race is certain.
        CyclicBarrier bothPrepared = new CyclicBarrier(2);
        Prepare.beforeInstall = () -> {
            try {
                bothPrepared.await(60, TimeUnit.SECONDS);
            } catch (Exception e) {
                throw new IllegalStateException("the other preparer never arrived", e);
            }
        };
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<PreparedData> one = pool.submit(() -> Prepare.cached(a, cache, gpt2, 0.1, null));
            Future<PreparedData> two = pool.submit(() -> Prepare.cached(a, cache, gpt2, 0.1, null));
            PreparedData p1 = one.get(), p2 = two.get();
            assertEquals(p1.train(), p2.train());
            assertArrayEquals(Files.readAllBytes(p1.train()), Files.readAllBytes(p2.train()));
            assertArrayEquals(gpt2.encode(Files.readString(a)), tokens(p1));
            assertEquals(List.of(p1.train().getParent()), listing(cache), "the loser's temporary folder is removed");
        } finally {
            Prepare.beforeInstall = () -> {};
            pool.shutdownNow();
        }
        assertTrue(Prepare.cached(a, cache, gpt2, 0.1, null).reused());
    }

    private static int[] tokens(PreparedData p) {
        try (TokenShard t = TokenShard.open(p.train()); TokenShard v = TokenShard.open(p.val())) {
            int[] out = new int[Math.toIntExact(t.count() + v.count())];
            for (int i = 0; i < t.count(); i++) out[i] = t.get(i);
            for (int i = 0; i < v.count(); i++) out[(int) t.count() + i] = v.get(i);
            return out;
        }
    }

    private static List<Path> listing(Path d) throws java.io.IOException {
        try (Stream<Path> s = Files.list(d)) {
            return s.sorted().toList();
        }
    }
}
