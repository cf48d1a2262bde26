// Per-submit parameters shared by the position-dependent kernels (rope,
// attention, elementwise, sample, the fused q/k/v + RoPE mat-vec). The engine writes this one
// small uniform per queue submit; everything else is static and prebuilt.
struct StepParams {
    n_tokens: u32,          // tokens in this batch
    pos0: u32,              // position of the batch's first token
    chunks_per_split: u32,  // attention: CHUNK-sized key blocks per split
    n_splits: u32,          // attention: splits of the longest row
    rng_step: u32,          // sampler: RNG stream index of this draw
    n_recent: u32,          // sampler: valid entries of the recent-token window
    recent_head: u32,       // sampler: ring slot the sampled token is written to
    suppress: u32,          // sampler: 1 + id of a token that may not be drawn (0 = none)
}

// Binding 0 unless the including shader defines STEP_BINDING (matvec's fused RoPE).
#ifndef STEP_BINDING
#define STEP_BINDING 0
#endif
@group(0) @binding(STEP_BINDING) var<uniform> step: StepParams;
