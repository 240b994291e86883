package dev.weft.launcher.launch;

import java.util.Map;

/**
 * The environment {@code weft launch} hands each rank process, in the manner of torchrun's
 * RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR:
 * <pre>
 *   WEFT_RANK              global rank, 0 .. WEFT_WORLD_SIZE-1 (node_rank * nproc_per_node + local_rank)
 *   WEFT_LOCAL_RANK        rank on this node, 0 .. WEFT_LOCAL_WORLD_SIZE-1
 *   WEFT_WORLD_SIZE        ranks in the job (nnodes * nproc_per_node)
 *   WEFT_LOCAL_WORLD_SIZE  ranks on this node (nproc_per_node)
 *   WEFT_NODE_RANK         this node's index, 0 .. nnodes-1
 *   WEFT_RDZV_ENDPOINT     host:port of the rendezvous coordinator (run by the launcher of node 0)
 *   WEFT_JOB_SECRET        the per-job secret (hex) proving membership at rendezvous; never sent over the wire
 *   WEFT_RESTART_COUNT     0 on the first attempt, n on the n-th restart (also the rendezvous generation)
 * </pre>
 */
public record RankEnv(int rank, int localRank, int worldSize, int localWorldSize, int nodeRank, String rdzvEndpoint, String jobSecret,
                      int restartCount) {
    public static final String RANK = "WEFT_RANK", LOCAL_RANK = "WEFT_LOCAL_RANK", WORLD_SIZE = "WEFT_WORLD_SIZE",
            LOCAL_WORLD_SIZE = "WEFT_LOCAL_WORLD_SIZE", NODE_RANK = "WEFT_NODE_RANK", RDZV_ENDPOINT = "WEFT_RDZV_ENDPOINT",
            JOB_SECRET = "WEFT_JOB_SECRET", RESTART_COUNT = "WEFT_RESTART_COUNT";

    public RankEnv {
        if (worldSize < 1) throw new IllegalArgumentException(WORLD_SIZE + " must be >= 1, got " + worldSize);
        if (rank < 0 || rank >= worldSize) throw new IllegalArgumentException(RANK + " = " + rank + " is outside [0, " + worldSize + ")");
        if (localRank < 0 || localRank >= localWorldSize)
            throw new IllegalArgumentException(LOCAL_RANK + " = " + localRank + " is outside [0, " + localWorldSize + ")");
    }

    /** Writes these variables into a child's environment. */
    public void exportTo(Map<String, String> env) {
        env.put(RANK, Integer.toString(rank));
        env.put(LOCAL_RANK, Integer.toString(localRank));
        env.put(WORLD_SIZE, Integer.toString(worldSize));
        env.put(LOCAL_WORLD_SIZE, Integer.toString(localWorldSize));
        env.put(NODE_RANK, Integer.toString(nodeRank));
        env.put(RDZV_ENDPOINT, rdzvEndpoint);
        env.put(JOB_SECRET, jobSecret);
        env.put(RESTART_COUNT, Integer.toString(restartCount));
    }

    /** Reads the variables back in a rank process; a missing or malformed one is named. */
    public static RankEnv from(Map<String, String> env) {
        return new RankEnv(integer(env, RANK), integer(env, LOCAL_RANK), integer(env, WORLD_SIZE), integer(env, LOCAL_WORLD_SIZE),
                integer(env, NODE_RANK), string(env, RDZV_ENDPOINT), string(env, JOB_SECRET), integer(env, RESTART_COUNT));
    }

    private static String string(Map<String, String> env, String key) {
        String v = env.get(key);
        if (v == null || v.isBlank())
            throw new IllegalArgumentException(key + " is not set: rank processes are started by `weft launch`, which sets it");
        return v;
    }

    private static int integer(Map<String, String> env, String key) {
        String v = string(env, key);
        try {
            return Integer.parseInt(v.strip());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(key + " = '" + v + "' is not an integer");
        }
    }
}
