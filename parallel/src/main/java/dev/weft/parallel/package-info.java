/**
 * Process groups and collectives.
 *
 * <p><b>Public API.</b> {@link dev.weft.parallel.ProcessGroup} (collectives, asynchronous with a
 * {@link dev.weft.parallel.Work} handle or synchronous; tagged send/recv; subgroups),
 * {@link dev.weft.parallel.Transport} with three implementations: {@link dev.weft.parallel.AeronTransport}
 * (real ranks; {@code AeronTransport.fromEnvironment(host, peerKey)} in a launched rank),
 * {@link dev.weft.parallel.TcpTransport} and {@link dev.weft.parallel.InJvmTransport} (ranks as
 * threads, for tests; it has no network and no hello), and
 * {@link dev.weft.parallel.AeronDriver} (the per-node media driver the launcher starts).
 *
 * <p><b>One set of algorithms.</b> Every transport provides only a small internal message layer
 * ({@code Fabric}: addressed frames of bounded size between world ranks); the algorithms
 * ({@code Collectives}) are written once against it, so the in-JVM tests run exactly the code the
 * Aeron ranks run. Payloads are chunked into frames; a direct exchange (one round) serves payloads
 * up to 64 KiB and a ring (reduce-scatter + all-gather, n-1 steps each) larger ones.
 *
 * <p><b>Determinism.</b> A float sum depends on its order, so no rank ever combines in an order of
 * its own: the direct and shared-memory paths combine ranks 0..n-1 in rank order, and the ring
 * combines each block in a fixed order on one rank and then copies it. Every rank gets identical
 * bits, every run; the algorithm is chosen from the payload size and group size alone.
 *
 * <p><b>Deadlines.</b> Each operation gets a deadline when it starts (the group's timeout); every
 * frame wait, back-pressure retry and shared-memory phase checks it, and on expiry throws
 * {@link dev.weft.parallel.CollectiveTimeoutException} with the operation, group, sequence number
 * and the ranks that never arrived (for the ring: the neighbour it waited on; for barrier and the
 * shared-memory phases: every rank that had not signalled).
 *
 * <p><b>Same host: shared memory, not Aeron IPC, for all-reduce, reduce-scatter, all-gather and
 * point to point.</b> Measured with {@code weft bench collectives} on the 2-core development machine
 * (a VM on a shared host, so the figures are noisy): a 64 MiB all-reduce on 2 ranks ran at 0.3-0.6
 * GB/s bus bandwidth when every byte went through Aeron IPC frames, 2.1-3.0 GB/s through shared
 * memory in lockstep rounds, and 5.5-7.7 GB/s with the rounds pipelined. Over frames each byte is
 * copied into the log buffer, out of it into a frame, and then combined or copied into the
 * tensor, and every 64 KiB costs a claim, a poll and an inbox look-up; the shared-memory path
 * copies each byte once in and once out and reduces straight out of the peers' slots
 * ({@code ShmCollectives}; on two ranks, and for small payloads on more, in one shot: one
 * hand-off per piece). A 4 KiB all-reduce takes it too: one counter wait costs a few microseconds
 * against a round trip of frames. Sends and receives between ranks of such a group go through
 * per-pair channels in the same region ({@code ShmPointToPoint}), on the caller's thread when
 * synchronous: over frames, through the send and receive lanes, a 4 KiB message had taken
 * 30-500 us. So a group whose ranks all share one node's driver runs those through a file in the
 * driver's directory. Asynchronous collectives (DDP's and ZeRO's buckets during backward, ZeRO-3's
 * gathers) stay on frames by default: the lane that would run them shares the cores with the
 * compute threads, and its hand-offs then wait for the scheduler (a 2-rank DDP step: 1.1-1.4 s
 * against 0.66-0.71 s; dp 2 ZeRO-2 in `weft bench zero`: 1.86x DDP's step against 0.97x).
 * {@code -Dweft.shm.async=true} sends asynchronous all-reduces, reduce-scatters and all-gathers
 * through shared memory on the group's collective lane (in issue order, with the synchronous
 * bits), which is faster on idle cores; {@code -Dweft.shm.async=await} runs them through shared
 * memory on the thread that awaits them, as Open MPI progresses its non-blocking collectives in
 * MPI_Wait (no overlap, and no hand-off to a lane: for hosts whose cores the compute holds);
 * {@code -Dweft.shm.p2p=false} keeps messages on frames and {@code -Dweft.shm=false} turns the
 * shared-memory path off altogether. Aeron keeps the other collectives and all traffic between
 * hosts (UDP).
 *
 * <p><b>Nothing allocated per frame.</b> Received frames are pooled native buffers
 * ({@code FramePool}, by power-of-two size class) that the receiver gives back once consumed; the
 * inbox chains them through a fixed table; a send reuses its publication's {@code BufferClaim};
 * an operation re-points one frame address; the algorithms' scratch belongs to the group. The pool
 * grows only to the most frames held at once.
 *
 * <p><b>Native memory only, for the kernels.</b> Frames that arrive before their receive are kept
 * in native memory, not byte arrays: once the Vector API has loaded from a heap segment anywhere
 * in the JVM, its loads from native segments compile without the intrinsic and run at half speed.
 * That had held the shared-memory all-reduce at 4-5 GB/s while the benchmark's reduce-scatter
 * still went through frames.
 *
 * <p><b>Cores.</b> Ranks compute on the cores they would wait on, so nothing spins for long: the
 * driver runs one shared thread that sleeps 1 ms when idle; a waiting rank spins briefly, yields,
 * then parks with growing pauses (to 200 us); there is no receiver thread: whoever waits polls the
 * subscription and files frames for the others.
 */
package dev.weft.parallel;
