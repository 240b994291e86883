/**
 * Optimizers: SGD (momentum, Nesterov), AdamW, 8-bit AdamW, GaLore, Natural GaLore, APOLLO,
 * APOLLO-Mini, FRUGAL and Muon, built by name through {@link dev.weft.optimizers.Optimizers} and
 * combined over name-pattern parameter groups by {@link dev.weft.optimizers.ParameterGroups}.
 *
 * <h2>Where we differ from a paper or its reference implementation</h2>
 * <ul>
 *   <li>All: weight decay applies to matrices only (never to norm gains), as weft's AdamW always did;
 *       bias corrections use StrictMath so a resumed run is bit-identical.</li>
 *   <li>SGD: torch.optim.SGD; Nesterov is on by default (torch's default is off).</li>
 *   <li>8-bit AdamW: bitsandbytes' blockwise scheme (block 256, signed/unsigned dynamic maps, fp32
 *       below 4096 elements); map midpoints computed in double; codes packed four per float slot.</li>
 *   <li>GaLore: galore_torch's order (step lr·√(1−β₂ᵗ)/(1−β₁ᵗ), ε outside the root, decay after the
 *       update); SVD from LAPACK sgesdd with a fixed sign convention. On a projector refresh the
 *       moments are kept in the old basis, like the reference.</li>
 *   <li>Natural GaLore: empirical Fisher of the last {@code history} low-rank gradients with damping
 *       λ (default 0.1: a smaller λ over-whitens short histories; see the least-squares test), applied
 *       by Woodbury before Adam; the history is cleared on a refresh, the moments are kept.</li>
 *   <li>APOLLO / APOLLO-Mini: apollo_torch's rule, limiter and √scale; the Gaussian projector uses our
 *       own generator (same distribution, other numbers) and is regenerated from the seed every step
 *       instead of stored. Moments are kept across a refresh, like the reference. Each step
 *       reports how many matrices the limiter cut and by how much (step stats, in metrics.jsonl).</li>
 *   <li>FRUGAL: SVD projection; Adam moments are reset (and bias correction restarts) on a refresh;
 *       the state-free part is signSGD with step lr·free_lr_scale.</li>
 *   <li>Muon: Newton–Schulz in float32 (the reference uses bfloat16); lerp momentum, √max(1, m/n).</li>
 * </ul>
 *
 * <h2>Sharding</h2>
 * Each optimizer declares {@link dev.weft.optimizers.Sharding}: SGD and AdamW are elementwise (any
 * slice on any rank), 8-bit AdamW elementwise with slices aligned to its quantisation block, and
 * every matrix-aware optimizer (GaLore, Natural GaLore, APOLLO, FRUGAL, Muon) needs whole matrices:
 * under ZeRO each such matrix is owned by one rank, which receives its reduced gradient, holds its
 * state and updates it, and the weights are then all-gathered. Because optimizers are built over a
 * map of named parameters, a rank builds its optimizer over exactly the parameters it owns, and state
 * names ("FQN/state") are independent of the rank layout, so checkpoints reshard by name.
 *
 * <h2>One step loop, and where state lives</h2>
 * Every optimizer steps through {@code ParameterOptimizer}'s final
 * {@code step}: a per-step prologue, then each parameter with a gradient in a fixed order, its
 * state acquired from a {@link dev.weft.optimizers.StateResidency} around its update. No update
 * reads another parameter's state, which is what lets an offloader keep all but the parameter in
 * hand (and the next one, prefetched) off the device. What we found coupling parameters, and where
 * it went:
 * <ul>
 *   <li>AdamW, 8-bit AdamW: the bias corrections depend on the optimizer's step count alone; they
 *       are computed once in the prologue, exactly as before.</li>
 *   <li>APOLLO / APOLLO-Mini: the limiter is per matrix (each slot's previous norm); only its step
 *       stats sum over matrices, reset in the prologue and added to in parameter order, and nothing
 *       reads them during the step.</li>
 *   <li>GaLore, Natural GaLore, FRUGAL, APOLLO: the projector refresh cadence counts each matrix's
 *       own steps (a matrix without a gradient does not advance), and APOLLO's seeds are fixed by
 *       group position at construction: nothing step-wide.</li>
 *   <li>SGD, Muon: per-parameter throughout (SGD's first-step rule uses the parameter's own count).</li>
 *   <li>Outside the optimizers, gradient clipping's global norm couples parameters, but through
 *       gradients before the step, never through optimizer state.</li>
 * </ul>
 */
package dev.weft.optimizers;
