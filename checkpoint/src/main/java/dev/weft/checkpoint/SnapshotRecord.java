package dev.weft.checkpoint;

import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;

/**
 * The small metadata a snapshot carries besides its chunks: the step it was taken after, the
 * position in the data stream, the random-generator states, and free-form schedule state
 * (learning-rate schedule, loss scale, ...) as name/value strings.
 */
public record SnapshotRecord(long step, long dataPosition, long[] rngStates, Map<String, String> schedule) {
    public SnapshotRecord {
        if (step < 0) throw new IllegalArgumentException("snapshot step must be >= 0, got " + step);
        rngStates = rngStates.clone();
        schedule = java.util.Collections.unmodifiableMap(new TreeMap<>(schedule));
    }

    public static SnapshotRecord ofStep(long step) {
        return new SnapshotRecord(step, 0, new long[0], Map.of());
    }

    @Override public long[] rngStates() { return rngStates.clone(); }

    @Override
    public boolean equals(Object o) {
        return o instanceof SnapshotRecord r && step == r.step && dataPosition == r.dataPosition
                && Arrays.equals(rngStates, r.rngStates) && schedule.equals(r.schedule);
    }

    @Override public int hashCode() { return Long.hashCode(step) * 31 + schedule.hashCode(); }
}
