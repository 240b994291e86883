/**
 * Erasure-coded, crash-surviving snapshots in shared memory.
 *
 * <h2>Pieces</h2>
 * <ul>
 *   <li>{@link dev.weft.checkpoint.ReedSolomon}: systematic RS(k, m) over GF(2^8) (polynomial
 *       0x11D), generator = identity over a Cauchy matrix, hence MDS for every k + m &lt;= 255.
 *       Two kernels: the Vector API one (byte shuffles as table lookups: on 64-lane CPUs a 128-entry
 *       two-register lookup plus the top bit, elsewhere split nibbles) and a 256-entry table
 *       reference. Work runs in 256 KiB stripes over the compute pool.</li>
 *   <li>{@link dev.weft.checkpoint.Snapshot} = {@link dev.weft.checkpoint.SnapshotRecord} (step,
 *       data position, RNG states, schedule) + layout-independent {@link dev.weft.checkpoint.Chunk}s
 *       (name, global shape, offsets, lengths, bytes).</li>
 *   <li>{@link dev.weft.checkpoint.SnapshotStore}: one failure domain's store.</li>
 *   <li>{@link dev.weft.checkpoint.ErasureCodedSnapshots}: placement over domains, save, restore, survey.</li>
 * </ul>
 *
 * <h2>Payload and pieces</h2>
 * A snapshot is serialised to one payload ("WEFTSNP1", a header with the record and each chunk's
 * name/shape/offsets/lengths/size, then chunk bytes at 64-byte alignment; see {@code SnapshotFormat}).
 * The payload is cut into k equal data pieces (padded to 64 bytes), RS(k, m) computes m parity
 * pieces, and piece i of owner o goes to domain (hash(o) + i) mod n, so the k + m pieces sit on
 * distinct domains.
 *
 * <h2>Store layout (one directory per domain, /dev/shm/weft-snapshots by default)</h2>
 * <pre>
 *   index.cmap   Chronicle Map: "job␁step␁owner␁piece" -&gt; (location, length, CRC32C, record)
 *   index.lock   OS file lock guarding every index access; byte 0 = dirty flag, bytes 8..16 = generation
 *   data/JOB/OWNER/STEP/PIECE.bin   one file per piece (bulk bytes never go into the map)
 *   free/        piece files of pruned snapshots, reused by later writes (tmpfs page faults are costly)
 * </pre>
 * Piece number -1 is the commit record; its value carries the code, piece and payload lengths,
 * the name of the domain holding each piece, and each piece's CRC32C.
 *
 * <h2>Commit protocol</h2>
 * <ol>
 *   <li>Each piece's bytes are written to its file, then its index entry (with CRC32C) is put.</li>
 *   <li>Only after every piece of the group is stored is the commit record put, in each domain
 *       that holds a piece. A commit record anywhere therefore means the whole group was written.</li>
 *   <li>Readers consider only steps with a commit record; restore takes the newest and reads any k
 *       pieces whose CRC32C matches (data pieces first, parity only if needed).</li>
 *   <li>After a commit, the store drops committed snapshots of that (job, owner) beyond the newest
 *       {@code retain} (default 2) and uncommitted leftovers of older steps.</li>
 * </ol>
 * A writer killed at any point leaves either no commit record for its step (the step is ignored
 * and cleaned up by the next commit) or a complete group; the previous committed snapshots are
 * never touched before the new commit record exists.
 *
 * <h2>Dead lock holders</h2>
 * Chronicle Map's segment locks live in the shared file, so a process killed inside a map
 * operation leaves a lock no one releases. Every index access therefore runs under an OS file lock
 * on {@code index.lock} (released by the kernel when its holder dies) and sets a dirty flag for its
 * duration. The next process to take the lock and find the flag set knows the previous holder died
 * mid-access, and, being the only one allowed near the map, runs Chronicle's
 * {@code recoverPersistedTo}, which resets the segment locks; it then bumps the generation so other
 * open instances reopen their view.
 *
 * <h2>Budget</h2>
 * A store holds at most {@code budgetBytes} of piece files; a write beyond it fails with
 * {@link dev.weft.checkpoint.SnapshotStoreFullException} naming what is in use. The budget must
 * hold {@code retain + 1} snapshots' pieces, since old ones are dropped only after the new commit.
 */
package dev.weft.checkpoint;
