package dev.weft.launcher.spark;

import org.apache.spark.ExceptionFailure;
import org.apache.spark.Success$;
import org.apache.spark.TaskEndReason;
import org.apache.spark.TaskKilled;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.apache.spark.scheduler.SparkListenerTaskEnd;

import java.util.HashSet;
import java.util.Set;

import java.util.List;
import java.util.Optional;

/**
 * Keeps the first task failure of a barrier job, in the order the driver learnt of them. When one
 * rank fails Spark kills the others' tasks, and a rank whose peer died may fail on its own
 * deadline just after: the first one is the cause, the rest are the cascade.
 */
final class FirstFailure extends SparkListener {
    /** A failed task: the rank's own report when its rank exited non-zero, else Spark's reason. */
    record Cause(int rank, String description, String log, List<String> tail) {}

    /** The job property naming the launch attempt a job runs. */
    static final String ATTEMPT_PROPERTY = "weft.launch.attempt";

    private final Set<Integer> stages = new HashSet<>();
    private String attempt;
    private Cause first;

    /** Watch the job of {@code attempt} only: a late report from an earlier attempt's stage is not its cause. */
    synchronized void watch(int attempt) {
        this.attempt = Integer.toString(attempt);
        stages.clear();
        first = null;
    }

    @Override
    public synchronized void onJobStart(SparkListenerJobStart start) {
        if (start.properties() != null && attempt != null && attempt.equals(start.properties().getProperty(ATTEMPT_PROPERTY)))
            for (Object id : scala.jdk.javaapi.CollectionConverters.asJava(start.stageIds())) stages.add((Integer) id);
    }

    synchronized Optional<Cause> first() {
        return Optional.ofNullable(first);
    }

    @Override
    public synchronized void onTaskEnd(SparkListenerTaskEnd end) {
        TaskEndReason reason = end.reason();
        if (first != null || reason == Success$.MODULE$ || reason instanceof TaskKilled) return;
        if (!stages.contains(end.stageId())) return;
        int partition = end.taskInfo().partitionId();
        if (reason instanceof ExceptionFailure f && f.exception().isDefined() && f.exception().get() instanceof RankFailedException r) {
            first = new Cause(r.rank(), r.exitCause(), r.log(), r.tail());
        } else if (reason instanceof ExceptionFailure f) {
            first = new Cause(partition, f.description(), null, List.of());
        } else {
            first = new Cause(partition, reason.toString(), null, List.of());
        }
    }
}
