package dev.weft.spark;

import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerStageCompleted;
import org.apache.spark.scheduler.SparkListenerStageSubmitted;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.scheduler.StageInfo;

import java.io.PrintStream;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A progress line per Spark stage: when it starts, every few seconds while its tasks finish,
 * and when it ends. Spark delivers these events on its listener thread, so printing here never
 * slows the job.
 */
final class StageProgress extends SparkListener {
    private static final long EVERY_NS = 5_000_000_000L;
    private final PrintStream out;
    private final Map<Integer, AtomicInteger> done = new ConcurrentHashMap<>();
    private final Map<Integer, Integer> total = new ConcurrentHashMap<>();
    private volatile long lastLine = System.nanoTime();

    StageProgress(PrintStream out) {
        this.out = out;
    }

    @Override
    public void onStageSubmitted(SparkListenerStageSubmitted e) {
        StageInfo s = e.stageInfo();
        done.put(s.stageId(), new AtomicInteger());
        total.put(s.stageId(), s.numTasks());
        out.printf("spark: stage %d (%s): %d tasks%n", s.stageId(), name(s), s.numTasks());
    }

    @Override
    public void onTaskEnd(SparkListenerTaskEnd e) {
        AtomicInteger n = done.get(e.stageId());
        if (n == null) return;
        int finished = n.incrementAndGet();
        long now = System.nanoTime();
        if (now - lastLine >= EVERY_NS) {
            lastLine = now;
            out.printf("spark: stage %d: %d of %d tasks done%n", e.stageId(), finished, total.getOrDefault(e.stageId(), 0));
        }
    }

    @Override
    public void onStageCompleted(SparkListenerStageCompleted e) {
        StageInfo s = e.stageInfo();
        done.remove(s.stageId());
        total.remove(s.stageId());
        long ms = s.completionTime().isDefined() && s.submissionTime().isDefined()
                ? (Long) s.completionTime().get() - (Long) s.submissionTime().get() : -1;
        String result = s.failureReason().isDefined() ? "failed: " + s.failureReason().get().lines().findFirst().orElse("") : "done";
        out.printf("spark: stage %d (%s) %s, %d tasks in %.1f s%n", s.stageId(), name(s), result, s.numTasks(), ms / 1000.0);
    }

    private static String name(StageInfo s) {
        return s.name().replaceFirst(" at .*$", "");
    }
}
