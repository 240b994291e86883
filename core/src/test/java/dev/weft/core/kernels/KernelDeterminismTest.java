package dev.weft.core.kernels;

import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import dev.weft.core.model.Llama;
import dev.weft.core.model.LlamaConfig;
import dev.weft.core.ops.CrossEntropy;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Exact resume needs a training step to give the same bits whichever tier of the JVM runs it: a
 * resumed process starts with interpreted code where the original had C2-compiled code. The probe
 * (a small Llama's loss and gradients, plus the exp and lane-sum primitives) runs in a child JVM
 * with {@code -Xint} and here after enough repetitions for C2 to compile the kernels; the digests
 * must be equal. With {@code lanewise(EXP)} or {@code reduceLanes(ADD)} in the kernels they are not.
 */
class KernelDeterminismTest {

    /** CRC of the loss and every gradient of a 2-layer Llama on fixed tokens, and of exp / sumLanes outputs. */
    static long digest() {
        CRC32 crc = new CRC32();
        LlamaConfig c = new LlamaConfig(2, 64, 4, 2, 96, 40, 32, 10000f, 1e-5f, false, 0.02);
        Llama m = new Llama(c, 11);
        try {
            int batch = 2, seq = 32;
            int[] ids = new int[batch * seq], targets = new int[batch * seq];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = (i * 7 + 3) % 40;
                targets[i] = (i * 5 + 1) % 40;
            }
            try (Scope s = Scope.open()) {
                Tensor loss = CrossEntropy.loss(m.forward(ids, batch, seq), targets, -1);
                update(crc, loss.item());
                loss.backward();
            }
            for (Tensor p : m.namedParameters().values())
                for (float g : p.grad().toArray()) update(crc, g);
        } finally {
            m.close();
        }
        try (Arena arena = Arena.ofConfined()) {
            int n = 4099;
            MemorySegment x = arena.allocate(4L * n);
            for (int i = 0; i < n; i++) x.setAtIndex(VectorMath.F, i, -110f + 200f * i / n);
            for (int i = 0; i + VectorMath.LANES <= n; i += VectorMath.LANES) {
                FloatVector e = VectorMath.exp(VectorMath.load(x, i));
                for (int l = 0; l < VectorMath.LANES; l++) update(crc, e.lane(l));
                update(crc, VectorMath.sumLanes(e));
            }
            update(crc, VectorMath.sum(x, 0, n));
            update(crc, SoftmaxKernels.logSumExp(x, 0, n));
        }
        return crc.getValue();
    }

    private static void update(CRC32 crc, float v) {
        int b = Float.floatToRawIntBits(v);
        crc.update(new byte[] {(byte) b, (byte) (b >> 8), (byte) (b >> 16), (byte) (b >> 24)});
    }

    private static void update(CRC32 crc, double v) {
        update(crc, (float) v);
        update(crc, (float) (v - (float) v));
    }

    /** Entry point of the interpreted child JVM. */
    public static void main(String[] args) {
        System.out.println("digest " + Long.toHexString(digest()));
    }

    @Test
    void interpretedAndCompiledKernelsGiveIdenticalBits() throws Exception {
        long first = digest();
        long compiled = first;
        for (int i = 0; i < 300; i++) {
            compiled = digest(); // long enough for C2 to compile the kernels' loops
            assertEquals(first, compiled, "digest changed after " + (i + 1) + " repetitions in one JVM");
        }
        String interpreted = runInterpreted();
        assertEquals(Long.toHexString(compiled), interpreted, "an -Xint JVM computes other bits than this (JIT-compiled) one");
    }

    private static String runInterpreted() throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "@" + repoRoot().resolve("config/jvm.options"), "-Xint", "-Xmx256m", "-cp", System.getProperty("java.class.path"),
                KernelDeterminismTest.class.getName()));
        Path log = Files.createTempFile("weft-xint", ".log");
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("the -Xint probe did not finish within 120 s");
            }
            String out = Files.readString(log, StandardCharsets.UTF_8);
            assertEquals(0, p.exitValue(), "the -Xint probe failed:\n" + out);
            String line = out.lines().filter(l -> l.startsWith("digest ")).findFirst().orElse(null);
            assertTrue(line != null, "no digest in the -Xint probe's output:\n" + out);
            return line.substring("digest ".length());
        } finally {
            Files.deleteIfExists(log);
        }
    }

    private static Path repoRoot() {
        for (Path p = Path.of(System.getProperty("user.dir")).toAbsolutePath(); p != null; p = p.getParent())
            if (Files.exists(p.resolve("config/jvm.options"))) return p;
        throw new IllegalStateException("no config/jvm.options above " + System.getProperty("user.dir"));
    }
}
