package dev.weft.trainer.metrics;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.AffineTransform;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Line charts of training curves as PNG, drawn with headless Java2D: one line per series in
 * distinct colours, a legend, axes with tidy ticks (1, 2 or 5 times a power of ten) and labels,
 * ranges fitted to the data. Points whose x or y is NaN or infinite are skipped and break the
 * line, so a diverged stretch shows as a gap rather than a spike to the edge.
 */
public final class LossPlot {
    public static final int WIDTH = 900;
    public static final int HEIGHT = 540;

    /** Tableau 10: distinct and readable on white, also for common colour-vision deficiencies. */
    private static final Color[] PALETTE = {
            new Color(0x1f77b4), new Color(0xff7f0e), new Color(0x2ca02c), new Color(0xd62728), new Color(0x9467bd),
            new Color(0x8c564b), new Color(0xe377c2), new Color(0x7f7f7f), new Color(0xbcbd22), new Color(0x17becf)};
    private static final int LEFT = 78, RIGHT = 24, TOP = 44, BOTTOM = 56;
    private static final int TARGET_TICKS = 6;

    private LossPlot() {}

    /** Writes a {@link #WIDTH} x {@link #HEIGHT} chart; each series is a list of {x = step, y = value} points. */
    public static void write(Path png, String title, String yLabel, Map<String, List<double[]>> series) throws IOException {
        write(png, title, yLabel, series, WIDTH, HEIGHT);
    }

    public static void write(Path png, String title, String yLabel, Map<String, List<double[]>> series, int width, int height) throws IOException {
        if (width < LEFT + RIGHT + 50 || height < TOP + BOTTOM + 50)
            throw new IllegalArgumentException("plot size " + width + "x" + height + " is too small (at least "
                    + (LEFT + RIGHT + 50) + "x" + (TOP + BOTTOM + 50) + ")");
        if (series == null) throw new IllegalArgumentException("series must not be null");
        for (Map.Entry<String, List<double[]>> s : series.entrySet()) {
            if (s.getValue() == null) throw new IllegalArgumentException("series '" + s.getKey() + "' is null");
            for (double[] p : s.getValue())
                if (p == null || p.length != 2)
                    throw new IllegalArgumentException("series '" + s.getKey() + "': points must be {x, y} pairs");
        }
        BufferedImage image = render(title, yLabel, series, width, height);
        Path target = png.toAbsolutePath();
        Files.createDirectories(target.getParent());
        Path tmp = target.resolveSibling("." + target.getFileName() + ".tmp");
        if (!ImageIO.write(image, "png", tmp.toFile())) throw new IOException("no PNG writer available");
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    static BufferedImage render(String title, String yLabel, Map<String, List<double[]>> series, int width, int height) {
        BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setRenderingHint(RenderingHints.KEY_STROKE_CONTROL, RenderingHints.VALUE_STROKE_PURE);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, width, height);

            int x0 = LEFT, x1 = width - RIGHT, y0 = height - BOTTOM, y1 = TOP; // plot area, y grows downwards
            double[] xr = range(series, 0), yr = range(series, 1);
            Axis xa = Axis.of(xr[0], xr[1]), ya = Axis.of(yr[0], yr[1]);

            Font small = new Font(Font.SANS_SERIF, Font.PLAIN, 12);
            g.setFont(small);
            FontMetrics fm = g.getFontMetrics();

            // grid and ticks
            for (double t : ya.ticks()) {
                int y = (int) Math.round(map(t, ya.lo, ya.hi, y0, y1));
                g.setColor(new Color(0xe6e6e6));
                g.drawLine(x0, y, x1, y);
                g.setColor(Color.DARK_GRAY);
                g.drawLine(x0 - 5, y, x0, y);
                String label = ya.format(t);
                g.drawString(label, x0 - 8 - fm.stringWidth(label), y + fm.getAscent() / 2 - 1);
            }
            for (double t : xa.ticks()) {
                int x = (int) Math.round(map(t, xa.lo, xa.hi, x0, x1));
                g.setColor(new Color(0xe6e6e6));
                g.drawLine(x, y0, x, y1);
                g.setColor(Color.DARK_GRAY);
                g.drawLine(x, y0, x, y0 + 5);
                String label = xa.format(t);
                g.drawString(label, x - fm.stringWidth(label) / 2, y0 + 8 + fm.getAscent());
            }
            g.setColor(Color.DARK_GRAY);
            g.drawRect(x0, y1, x1 - x0, y0 - y1);

            // axis labels and title
            g.setColor(Color.BLACK);
            Font label = new Font(Font.SANS_SERIF, Font.PLAIN, 13);
            g.setFont(label);
            FontMetrics lm = g.getFontMetrics();
            g.drawString("step", (x0 + x1 - lm.stringWidth("step")) / 2, height - 12);
            if (yLabel != null && !yLabel.isEmpty()) {
                AffineTransform saved = g.getTransform();
                g.rotate(-Math.PI / 2);
                g.drawString(yLabel, -(y0 + y1 + lm.stringWidth(yLabel)) / 2, 18);
                g.setTransform(saved);
            }
            if (title != null && !title.isEmpty()) {
                g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 16));
                FontMetrics tm = g.getFontMetrics();
                g.drawString(title, (width - tm.stringWidth(title)) / 2, TOP - 16);
            }

            // series, clipped to the plot area
            g.setClip(x0, y1, x1 - x0 + 1, y0 - y1 + 1);
            g.setStroke(new BasicStroke(2f, BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND));
            int i = 0;
            for (List<double[]> points : series.values()) {
                g.setColor(PALETTE[i++ % PALETTE.length]);
                Path2D.Double path = new Path2D.Double();
                boolean penDown = false;
                for (int k = 0; k < points.size(); k++) {
                    double[] p = points.get(k);
                    if (!finite(p)) {
                        penDown = false;
                        continue;
                    }
                    double px = map(p[0], xa.lo, xa.hi, x0, x1), py = map(p[1], ya.lo, ya.hi, y0, y1);
                    if (penDown) path.lineTo(px, py);
                    else path.moveTo(px, py);
                    // a point with no finite neighbour would be invisible as a line: mark it
                    boolean prev = k > 0 && finite(points.get(k - 1)), next = k + 1 < points.size() && finite(points.get(k + 1));
                    if (!prev && !next) g.fill(new Ellipse2D.Double(px - 3, py - 3, 6, 6));
                    penDown = true;
                }
                g.draw(path);
            }
            g.setClip(null);

            drawLegend(g, series, x1, y1, small);
            if (xr[2] == 0) {
                g.setFont(label);
                g.setColor(Color.GRAY);
                String none = "no data";
                g.drawString(none, (x0 + x1 - g.getFontMetrics().stringWidth(none)) / 2, (y0 + y1) / 2);
            }
        } finally {
            g.dispose();
        }
        return image;
    }

    private static void drawLegend(Graphics2D g, Map<String, List<double[]>> series, int right, int top, Font font) {
        if (series.isEmpty()) return;
        g.setFont(font);
        FontMetrics fm = g.getFontMetrics();
        int swatch = 22, pad = 8, row = fm.getHeight() + 2;
        int textWidth = 0;
        for (String name : series.keySet()) textWidth = Math.max(textWidth, fm.stringWidth(name));
        int w = pad + swatch + 6 + textWidth + pad, h = pad + row * series.size() + pad - 2;
        int x = right - 10 - w, y = top + 10;
        g.setColor(new Color(255, 255, 255, 225));
        g.fillRect(x, y, w, h);
        g.setColor(new Color(0xb0b0b0));
        g.setStroke(new BasicStroke(1f));
        g.drawRect(x, y, w, h);
        int i = 0;
        for (String name : series.keySet()) {
            int cy = y + pad + row * i + row / 2 - 1;
            g.setColor(PALETTE[i % PALETTE.length]);
            g.setStroke(new BasicStroke(3f, BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND));
            g.drawLine(x + pad, cy, x + pad + swatch, cy);
            g.setColor(Color.BLACK);
            g.drawString(name, x + pad + swatch + 6, cy + fm.getAscent() / 2 - 1);
            i++;
        }
    }

    private static boolean finite(double[] p) {
        return Double.isFinite(p[0]) && Double.isFinite(p[1]);
    }

    private static double map(double v, double lo, double hi, double to0, double to1) {
        return to0 + (v - lo) / (hi - lo) * (to1 - to0);
    }

    /** {min, max, count} of coordinate {@code c} over the finite points. */
    private static double[] range(Map<String, List<double[]>> series, int c) {
        double lo = Double.POSITIVE_INFINITY, hi = Double.NEGATIVE_INFINITY;
        int n = 0;
        for (List<double[]> points : series.values())
            for (double[] p : points)
                if (finite(p)) {
                    lo = Math.min(lo, p[c]);
                    hi = Math.max(hi, p[c]);
                    n++;
                }
        return n == 0 ? new double[] {0, 1, 0} : new double[] {lo, hi, n};
    }

    /** An axis range widened to whole ticks of a 1-2-5 step. */
    record Axis(double lo, double hi, double step) {
        static Axis of(double min, double max) {
            if (max - min <= 0) { // a single value: centre it in a small range
                double pad = min == 0 ? 1 : Math.abs(min) * 0.1;
                min -= pad;
                max += pad;
            }
            double step = niceStep((max - min) / TARGET_TICKS);
            double lo = Math.floor(min / step + 1e-9) * step, hi = Math.ceil(max / step - 1e-9) * step;
            return new Axis(lo, hi, step);
        }

        static double niceStep(double raw) {
            double mag = Math.pow(10, Math.floor(Math.log10(raw)));
            double f = raw / mag;
            return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
        }

        List<Double> ticks() {
            List<Double> t = new ArrayList<>();
            long first = Math.round(lo / step), last = Math.round(hi / step);
            for (long k = first; k <= last; k++) t.add(k * step);
            return t;
        }

        /** Enough decimals to tell ticks apart, none more; thousands as k when the values are large. */
        String format(double v) {
            if (Math.abs(v) < step * 1e-6) v = 0; // no "-0" or 1e-17 from rounding
            if (v == 0 && step >= 1) return "0";
            double scale = 1;
            String suffix = "";
            double max = Math.max(Math.abs(lo), Math.abs(hi));
            if (max < 1e-3) { // learning rates: 3.0e-4 reads better than 0.00030
                if (v == 0) return "0";
                int exp = (int) Math.floor(Math.log10(Math.abs(v)) + 1e-9);
                // the same number of decimals on every tick, enough for the step
                int decimals = Math.max(0, (int) Math.floor(Math.log10(max) + 1e-9) - (int) Math.floor(Math.log10(step) + 1e-9));
                return String.format(Locale.ROOT, "%." + decimals + "fe%d", v / Math.pow(10, exp), exp);
            }
            if (max >= 1e6 && step >= 1e5) {
                scale = 1e6;
                suffix = "M";
            } else if (max >= 1e4 && step >= 100) {
                scale = 1e3;
                suffix = "k";
            }
            int decimals = Math.max(0, (int) -Math.floor(Math.log10(step / scale) + 1e-9));
            return String.format(Locale.ROOT, "%." + decimals + "f", v / scale) + suffix;
        }
    }
}
