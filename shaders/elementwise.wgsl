// Element-wise ops of the Llama block, in place on `a`:
//   add:    a += b                   (residual adds)
//   swiglu: a = silu(a) * b          (a = gate projection, b = up projection)
// The element count is n_tokens (per submit, from Step) * row_len.
//
// Defines: WG.

#include "step.wgsl"

struct ElementwiseParams {
    row_len: u32,  // elements per token row
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(1) var<uniform> p: ElementwiseParams;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;  // (n_tokens, row_len)
@group(0) @binding(3) var<storage, read> b: array<f32>;        // (n_tokens, row_len)

@compute @workgroup_size(WG)
fn add(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i < step.n_tokens * p.row_len {
        a[i] += b[i];
    }
}

@compute @workgroup_size(WG)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if i < step.n_tokens * p.row_len {
        let g = a[i];
        a[i] = g / (1.0 + exp(-g)) * b[i];
    }
}
