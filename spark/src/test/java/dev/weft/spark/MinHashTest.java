package dev.weft.spark;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

class MinHashTest {
    private static final MinHash MH = new MinHash(MinHash.Params.DEFAULT);

    private static List<String> words(String prefix, int from, int to) {
        List<String> w = new ArrayList<>();
        for (int i = from; i < to; i++) w.add(prefix + i);
        return w;
    }

    /** The exact Jaccard similarity of the 5-word shingle sets, computed here without MinHash. */
    private static double jaccard(List<String> a, List<String> b) {
        Set<List<String>> sa = new HashSet<>(), sb = new HashSet<>();
        for (int i = 0; i + 5 <= a.size(); i++) sa.add(a.subList(i, i + 5));
        for (int i = 0; i + 5 <= b.size(); i++) sb.add(b.subList(i, i + 5));
        Set<List<String>> both = new HashSet<>(sa);
        both.retainAll(sb);
        Set<List<String>> either = new HashSet<>(sa);
        either.addAll(sb);
        return (double) both.size() / either.size();
    }

    @Test
    void theSignatureAgreementEstimatesTheShingleJaccardSimilarity() {
        List<String> a = words("w", 0, 1000);
        // b shares a's first `shared` words, then goes its own way
        for (int shared : new int[]{950, 668, 200, 0}) {
            List<String> b = new ArrayList<>(a.subList(0, shared));
            b.addAll(words("v", shared, 1000));
            double exact = jaccard(a, b);
            double estimate = MinHash.similarity(MH.signature(String.join(" ", a)), MH.signature(String.join(" ", b)));
            // 120 positions: the estimate's standard error is at most sqrt(0.25 / 120) = 0.046; 0.15 is over 3 of them
            assertEquals(exact, estimate, 0.15, "shared " + shared + " of 1000 words");
        }
    }

    @Test
    void caseAndWhitespaceDoNotMatterAndIdenticalTextsShareEveryBand() {
        int[] a = MH.signature("The quick brown fox jumps over the lazy dog again and again");
        int[] b = MH.signature("  the QUICK brown\tfox jumps\nover the lazy dog again and AGAIN ");
        assertArrayEquals(a, b);
        assertEquals(1.0, MinHash.similarity(a, b));
        assertArrayEquals(MH.bandKeys(a), MH.bandKeys(b));
        assertTrue(MH.nearDuplicate(a, b));
        int[] other = MH.signature("Something entirely different is written in this one sentence here");
        assertFalse(MH.nearDuplicate(a, other));
    }

    @Test
    void badThresholdsAreRejectedWithTheirOptionNames() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new MinHash.Params(5, 20, 6, 1.5, 1));
        assertTrue(e.getMessage().contains("--near-threshold"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new MinHash.Params(0, 20, 6, 0.8, 1));
        assertTrue(e.getMessage().contains("--shingle-words"), e.getMessage());
    }
}
