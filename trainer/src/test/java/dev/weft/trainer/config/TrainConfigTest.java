package dev.weft.trainer.config;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class TrainConfigTest {
    @TempDir
    Path dir;

    private Path write(String yaml) throws IOException {
        Path p = dir.resolve("c.yaml");
        Files.writeString(p, yaml);
        return p;
    }

    private String error(String yaml, String... overrides) throws IOException {
        Path p = write(yaml);
        return assertThrows(ConfigException.class, () -> TrainConfig.load(p, List.of(overrides))).getMessage();
    }

    @Test
    void aMinimalConfigGetsDefaultsAndRelativePaths() throws IOException {
        TrainConfig c = TrainConfig.load(write("data:\n  text: corpus.txt\n"), List.of());
        assertEquals(dir.resolve("corpus.txt").toAbsolutePath().normalize(), c.data().text());
        assertEquals("byte", c.data().tokenizer());
        assertEquals(4, c.model().layers());
        assertEquals(c.model().maxSeqLen(), c.train().seqLen());
    }

    @Test
    void overridesAreTypedAndApplied() throws IOException {
        TrainConfig c = TrainConfig.load(write("data: {text: a.txt}\ntrain: {steps: 10}\n"),
                List.of("train.steps=25", "optimizer.lr=0.01", "model.tied_embeddings=true"));
        assertEquals(25, c.train().steps());
        assertEquals(0.01, c.optimizer().lr());
        assertTrue(c.model().tiedEmbeddings());
    }

    @Test
    void aWarmupLongerThanTheRunIsANoticeNotAnError() throws IOException {
        TrainConfig c = TrainConfig.load(write("data: {text: a.txt}\noptimizer: {warmup_steps: 50}\n"), List.of("train.steps=20"));
        assertEquals(List.of("optimizer.warmup_steps = 50 is more than train.steps = 20: warming up over all 20 steps"), c.notices());
        assertEquals(List.of(), TrainConfig.load(write("data: {text: a.txt}\noptimizer: {warmup_steps: 20}\n"), List.of("train.steps=20")).notices());
    }

    @Test
    void unknownKeysAreNamedWithTheAllowedOnes() throws IOException {
        String m = error("data: {text: a.txt}\ntrain: {stepz: 10}\n");
        assertTrue(m.contains("train.stepz") && m.contains("allowed") && m.contains("steps"), m);
        m = error("data: {text: a.txt}\nmodle: {layers: 2}\n");
        assertTrue(m.contains("modle"), m);
        m = error("data: {text: a.txt}\n", "train.bogus=1");
        assertTrue(m.contains("train.bogus"), m);
    }

    @Test
    void badValuesNameKeyValueAndWhatIsAllowed() throws IOException {
        String m = error("data: {text: a.txt}\ntrain: {steps: -5}\n");
        assertTrue(m.contains("train.steps = -5") && m.contains(">= 1"), m);
        m = error("data: {text: a.txt}\ntrain: {steps: many}\n");
        assertTrue(m.contains("train.steps = 'many'") && m.contains("integer"), m);
        m = error("data: {text: a.txt, tokenizer: words}\n");
        assertTrue(m.contains("data.tokenizer") && m.contains("byte, gpt2"), m);
        m = error("data: {text: a.txt}\nmodel: {d_model: 100, heads: 3}\n");
        assertTrue(m.contains("d_model = 100") && m.contains("heads = 3"), m);
        m = error("data: {text: a.txt}\nmodel: {max_seq_len: 64}\ntrain: {seq_len: 128}\n");
        assertTrue(m.contains("train.seq_len = 128") && m.contains("[1, 64]"), m);
        m = error("model: {layers: 2}\n");
        assertTrue(m.contains("data.text is required"), m);
    }

    @Test
    void malformedYamlAndMissingFilesAreClear() throws IOException {
        String m = error("data: {text: a.txt\ntrain: [\n");
        assertTrue(m.contains("malformed YAML") && m.contains("line"), m);
        m = error("- just\n- a list\n");
        assertTrue(m.contains("top level"), m);
        var e = assertThrows(ConfigException.class, () -> TrainConfig.load(dir.resolve("nope.yaml"), List.of()));
        assertTrue(e.getMessage().contains("not found"), e.getMessage());
        m = error("data: {text: a.txt}\n", "train.steps");
        assertTrue(m.contains("key=value"), m);
    }

    @Test
    void theBundledExampleIsValid() {
        Path example = findRepoRoot().resolve("examples/tinyshakespeare.yaml");
        TrainConfig c = TrainConfig.load(example, List.of());
        assertTrue(Files.exists(c.data().text()), "example corpus missing: " + c.data().text());
    }

    static Path findRepoRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.exists(p.resolve("config/jvm.options"))) p = p.getParent();
        assertNotNull(p, "repository root not found");
        return p;
    }

    @Test
    void optimizerGroupsAreReadWithPerGroupSettings() throws IOException {
        TrainConfig c = TrainConfig.load(write("""
                data: {text: a.txt}
                optimizer:
                  lr: 0.002
                  weight_decay: 0.05
                  groups:
                    - name: galore
                      params: [model.layers.*.self_attn.*_proj.weight, model.layers.*.mlp.*_proj.weight]
                      rank: 64
                      update_proj_gap: 100
                    - name: muon
                      params: lm_head.weight
                      lr: 0.02
                """), List.of());
        var groups = c.optimizer().groups();
        assertEquals(2, groups.size());
        assertEquals("galore", groups.get(0).optimizer());
        assertEquals(64, groups.get(0).settings().get("rank"));
        assertEquals(100, groups.get(0).settings().get("update_proj_gap"));
        assertEquals(0.05, groups.get(0).settings().get("weight_decay"));
        assertEquals(0.25, groups.get(0).settings().get("scale"));
        assertEquals(10.0, groups.get(1).lrScale(), 1e-12);
        assertEquals("adamw", c.optimizer().fallback().optimizer());
    }

    @Test
    void aMatrixOptimizerByNameGetsTheUsualSplit() throws IOException {
        TrainConfig c = TrainConfig.load(write("data: {text: a.txt}\noptimizer: {name: apollo_mini}\n"), List.of());
        assertEquals(List.of("apollo_mini"), c.optimizer().groups().stream().map(g -> g.optimizer()).toList());
        assertEquals(TrainConfig.HIDDEN_MATRICES, c.optimizer().groups().get(0).patterns());
        assertEquals(128.0, c.optimizer().groups().get(0).settings().get("scale"));
        assertEquals("adamw", c.optimizer().fallback().optimizer());
    }

    @Test
    void badOptimizerConfigsAreRejectedClearly() throws IOException {
        String e = error("data: {text: a.txt}\noptimizer: {name: lion}\n");
        assertTrue(e.contains("optimizer.name = 'lion' is invalid") && e.contains("adamw, sgd, adamw8bit, galore"), e);
        e = error("data: {text: a.txt}\noptimizer: {groups: [{name: galore, params: 'x*', rnak: 3}]}\n");
        assertTrue(e.contains("optimizer.groups[0].rnak") && e.contains("rank") && e.contains("update_proj_gap"), e);
        e = error("data: {text: a.txt}\noptimizer: {groups: [{name: galore, params: 'x*', rank: 0}]}\n");
        assertTrue(e.contains("optimizer.groups[0].rank = 0 is invalid: expected an integer in [1, 1048576]"), e);
        e = error("data: {text: a.txt}\noptimizer: {groups: [{name: galore}]}\n");
        assertTrue(e.contains("optimizer.groups[0].params"), e);
        e = error("data: {text: a.txt}\noptimizer: {groups: [{params: 'x*'}]}\n");
        assertTrue(e.contains("optimizer.groups[0].name is required"), e);
        e = error("data: {text: a.txt}\noptimizer: {name: adamw, rank: 4}\n");
        assertTrue(e.contains("unknown key optimizer.rank"), e);
        e = error("data: {text: a.txt}\noptimizer: {name: apollo, scale_type: row}\n");
        assertTrue(e.contains("optimizer.scale_type = 'row' is invalid: expected one of channel, tensor"), e);
    }
}
