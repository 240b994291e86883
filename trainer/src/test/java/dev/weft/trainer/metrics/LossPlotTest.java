package dev.weft.trainer.metrics;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class LossPlotTest {
    @TempDir
    Path dir;

    static List<double[]> curve(int n, double start, double end, double noise) {
        List<double[]> pts = new ArrayList<>();
        java.util.Random r = new java.util.Random(1);
        for (int i = 0; i <= n; i++) {
            double y = end + (start - end) * Math.exp(-i / (n / 5.0)) + noise * r.nextGaussian();
            pts.add(new double[] {i * 10, y});
        }
        return pts;
    }

    private static BufferedImage read(Path png) throws IOException {
        byte[] head = Files.readAllBytes(png);
        assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}, java.util.Arrays.copyOf(head, 8), "PNG signature");
        BufferedImage img = ImageIO.read(png.toFile());
        assertNotNull(img, "ImageIO can decode it");
        return img;
    }

    /** Counts pixels close to a colour (antialiased edges aside). */
    private static int count(BufferedImage img, int rgb) {
        int n = 0;
        for (int y = 0; y < img.getHeight(); y++)
            for (int x = 0; x < img.getWidth(); x++)
                if ((img.getRGB(x, y) & 0xffffff) == rgb) n++;
        return n;
    }

    @Test
    void writesAPngOfTheExpectedSizeWithEachSeriesInItsOwnColour() throws IOException {
        Path png = dir.resolve("plots/loss.png");
        Map<String, List<double[]>> series = new LinkedHashMap<>();
        series.put("train", curve(200, 4.2, 1.6, 0.05));
        series.put("val", curve(20, 4.3, 1.8, 0.0).stream().map(p -> new double[] {p[0] * 10, p[1]}).toList());
        LossPlot.write(png, "tinyshakespeare", "loss", series);
        BufferedImage img = read(png);
        assertEquals(LossPlot.WIDTH, img.getWidth());
        assertEquals(LossPlot.HEIGHT, img.getHeight());
        assertTrue(count(img, 0x1f77b4) > 500, "first series drawn in blue");
        assertTrue(count(img, 0xff7f0e) > 300, "second series drawn in orange");
        assertEquals(0, count(img, 0x2ca02c), "no third colour");
    }

    @Test
    void customSizeAndNaNGaps() throws IOException {
        Path png = dir.resolve("nan.png");
        List<double[]> pts = new ArrayList<>(curve(50, 3, 1, 0));
        pts.set(25, new double[] {250, Double.NaN});
        pts.add(new double[] {510, Double.POSITIVE_INFINITY});
        LossPlot.write(png, "with gaps", "loss", Map.of("train", pts), 400, 300);
        BufferedImage img = read(png);
        assertEquals(400, img.getWidth());
        assertEquals(300, img.getHeight());
        assertTrue(count(img, 0x1f77b4) > 100);
    }

    @Test
    void singlePointEmptySeriesAndNoSeriesDoNotThrow() throws IOException {
        Path one = dir.resolve("one.png");
        LossPlot.write(one, "one point", "loss", Map.of("train", List.<double[]>of(new double[] {100, 2.5})));
        assertTrue(count(read(one), 0x1f77b4) > 10, "a lone point is drawn as a dot");

        Path empty = dir.resolve("empty.png");
        Map<String, List<double[]>> s = new LinkedHashMap<>();
        s.put("train", List.of());
        s.put("val", List.of(new double[] {Double.NaN, 1}));
        LossPlot.write(empty, "empty", "loss", s);
        assertEquals(LossPlot.WIDTH, read(empty).getWidth());

        Path none = dir.resolve("none.png");
        LossPlot.write(none, null, null, Map.of());
        assertEquals(LossPlot.HEIGHT, read(none).getHeight());
    }

    @Test
    void rejectsMalformedInput() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LossPlot.write(dir.resolve("x.png"), "t", "y", Map.of("train", List.of(new double[] {1, 2, 3}))));
        assertEquals("series 'train': points must be {x, y} pairs", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> LossPlot.write(dir.resolve("x.png"), "t", "y", Map.of(), 10, 10));
    }

    @Test
    void ticksAreOneTwoOrFiveTimesAPowerOfTen() {
        LossPlot.Axis a = LossPlot.Axis.of(1.63, 4.27);
        assertEquals(0.5, a.step(), 1e-12);
        assertEquals(1.5, a.lo(), 1e-12);
        assertEquals(4.5, a.hi(), 1e-12);
        assertEquals(List.of("1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5"), a.ticks().stream().map(a::format).toList());

        LossPlot.Axis steps = LossPlot.Axis.of(0, 20_000);
        assertEquals(5000, steps.step(), 1e-9);
        assertEquals(List.of("0", "5k", "10k", "15k", "20k"), steps.ticks().stream().map(steps::format).toList());

        LossPlot.Axis small = LossPlot.Axis.of(0, 2000);
        assertEquals(List.of("0", "500", "1000", "1500", "2000"), small.ticks().stream().map(small::format).toList());

        LossPlot.Axis lr = LossPlot.Axis.of(0, 3e-4);
        assertEquals(List.of("0", "5.0e-5", "1.0e-4", "1.5e-4", "2.0e-4", "2.5e-4", "3.0e-4"), lr.ticks().stream().map(lr::format).toList());

        LossPlot.Axis single = LossPlot.Axis.of(2.5, 2.5);
        assertTrue(single.lo() < 2.5 && single.hi() > 2.5);
    }
}
