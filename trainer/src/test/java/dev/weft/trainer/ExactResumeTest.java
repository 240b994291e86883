package dev.weft.trainer;

import dev.weft.trainer.config.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/** Train N steps; or N/2, save, resume in a fresh trainer, N/2 more: the losses are bit-identical. */
class ExactResumeTest {
    @TempDir
    Path dir;

    static String corpus() {
        StringBuilder sb = new StringBuilder();
        String[] words = {"to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler", "in", "mind"};
        long x = 1;
        while (sb.length() < 40_000) {
            x = x * 6364136223846793005L + 1442695040888963407L;
            sb.append(words[(int) ((x >>> 33) % words.length)]).append((x & 7) == 0 ? ".\n" : " ");
        }
        return sb.toString();
    }

    static TrainConfig tinyConfig(Path dir, String out, List<String> extra) throws IOException {
        Files.writeString(dir.resolve("corpus.txt"), corpus());
        Path cfg = dir.resolve("tiny.yaml");
        Files.writeString(cfg, """
                model: {layers: 2, d_model: 32, heads: 4, kv_heads: 2, ffn_dim: 64, vocab: 256, max_seq_len: 32}
                data: {text: corpus.txt, tokenizer: byte, cache_dir: cache}
                train: {steps: 8, micro_batch: 4, grad_accum: 2, seq_len: 32, eval_every: 4, eval_batches: 2, save_every: 0, out_dir: OUT}
                optimizer: {lr: 0.01, warmup_steps: 2}
                sample: {tokens: 0}
                """.replace("OUT", out));
        return TrainConfig.load(cfg, extra);
    }

    private static List<Double> train(TrainConfig cfg, boolean resume, long stopAfter) {
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream());
        try (Trainer t = new Trainer(cfg, quiet)) {
            return new ArrayList<>(t.run(resume, stopAfter).trainLosses());
        }
    }

    @Test
    void resumedRunMatchesUninterruptedRunBitForBit() throws IOException {
        checkResume("", List.of());
    }

    /**
     * Every optimizer through the trainer's checkpoint: projector refresh every 3 steps so one falls
     * after the resume, APOLLO's seeds and limiter, 8-bit AdamW's quantised blocks.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"sgd", "adamw8bit", "galore", "natural_galore", "apollo", "apollo_mini", "frugal", "muon"})
    void resumeIsBitExactForEveryOptimizer(String name) throws IOException {
        List<String> extra = new ArrayList<>(List.of("optimizer.name=" + name));
        if (!List.of("sgd", "muon", "adamw8bit").contains(name)) extra.add("optimizer.update_proj_gap=3");
        if (List.of("galore", "natural_galore", "frugal", "apollo").contains(name)) extra.add("optimizer.rank=4");
        if (name.equals("adamw8bit")) extra.add("optimizer.min_8bit_size=256");
        checkResume(name + "-", extra);
        if (name.startsWith("apollo")) limiterStatsReachTheMetricsLog(dir.resolve(name + "-straight/metrics.jsonl"), name);
    }

    /** APOLLO's step stats land in every metrics record after the first step (which has no earlier norm to limit against). */
    private static void limiterStatsReachTheMetricsLog(Path metrics, String name) throws IOException {
        List<String> records = Files.readAllLines(metrics);
        assertEquals(8, records.size());
        Pattern limited = Pattern.compile("\"" + name + "/limited\":([0-9.eE-]+)"), limiter = Pattern.compile("\"" + name + "/limiter\":([0-9.eE-]+)");
        assertFalse(limited.matcher(records.get(0)).find(), records.get(0));
        for (String r : records.subList(1, records.size())) {
            Matcher f = limited.matcher(r), l = limiter.matcher(r);
            assertTrue(f.find() && l.find(), "no limiter stats in " + r);
            double fraction = Double.parseDouble(f.group(1)), factor = Double.parseDouble(l.group(1));
            assertTrue(fraction >= 0 && fraction <= 1 && factor >= 1 && (fraction > 0) == (factor > 1), r);
        }
    }

    private void checkResume(String prefix, List<String> extra) throws IOException {
        List<Double> straight = train(tinyConfig(dir, prefix + "straight", extra), false, 0);
        assertEquals(8, straight.size());

        TrainConfig cfg = tinyConfig(dir, prefix + "interrupted", extra);
        List<Double> firstHalf = train(cfg, false, 4);
        assertEquals(4, firstHalf.size());
        assertNotNull(Checkpoint.latest(cfg.train().outDir()), "stopping early must leave a checkpoint");
        List<Double> secondHalf = train(cfg, true, 0);
        assertEquals(4, secondHalf.size());

        List<Double> joined = new ArrayList<>(firstHalf);
        joined.addAll(secondHalf);
        for (int i = 0; i < straight.size(); i++) {
            assertEquals(Double.doubleToRawLongBits(straight.get(i)), Double.doubleToRawLongBits(joined.get(i)),
                    "step " + (i + 1) + ": " + straight.get(i) + " vs " + joined.get(i));
        }
        assertTrue(straight.get(7) < straight.get(0), "the loss should fall: " + straight);
    }
}
