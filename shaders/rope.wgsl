// Rotary position embedding in llama.cpp's NORMAL mode (the mode of
// LLM_ARCH_LLAMA): consecutive pairs (x[2i], x[2i+1]) of each head rotate by
// theta = pos * base^(-2i / rope_dim); dims at or past rope_dim pass through.
// Works for any even head_dim (Ahma-3B has 100).
//
// Fused with the KV-cache store: q rotates in place, the rotated k and the
// plain v of every token go straight into the caches at row pos0 + t (as f16
// pairs with F16, f32 otherwise). The angles come from a cos/sin table the
// engine computes in f64 at load time, so accuracy does not depend on the
// GPU's sin/cos at large arguments.
//
// Defines: WG, F16.

#ifdef F16
alias kv2 = vec2<f16>;
#else
alias kv2 = vec2<f32>;
#endif

#include "step.wgsl"

struct RopeParams {
    n_head: u32,     // query heads
    n_head_kv: u32,  // key/value heads
    head_dim: u32,   // even
    rope_dim: u32,   // even, <= head_dim
}

@group(0) @binding(1) var<uniform> p: RopeParams;
@group(0) @binding(2) var<storage, read_write> q: array<vec2<f32>>;  // (n_tokens, n_head * head_dim / 2)
@group(0) @binding(3) var<storage, read> k: array<vec2<f32>>;        // (n_tokens, n_head_kv * head_dim / 2)
@group(0) @binding(4) var<storage, read> v: array<vec2<f32>>;        // (n_tokens, n_head_kv * head_dim / 2)
@group(0) @binding(5) var<storage, read_write> kc: array<kv2>;       // (n_ctx, n_head_kv * head_dim / 2)
@group(0) @binding(6) var<storage, read_write> vc: array<kv2>;       // (n_ctx, n_head_kv * head_dim / 2)
@group(0) @binding(7) var<storage, read> cs: array<vec2<f32>>;       // (n_ctx, rope_dim / 2): (cos, sin)

fn rotate(x: vec2<f32>, pair_in_head: u32, pos: u32) -> vec2<f32> {
    if 2u * pair_in_head >= p.rope_dim {
        return x;
    }
    let c = cs[pos * (p.rope_dim / 2u) + pair_in_head];
    return vec2<f32>(x.x * c.x - x.y * c.y, x.x * c.y + x.y * c.x);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.y;
    let half_hd = p.head_dim / 2u;
    let q_pairs = p.n_head * half_hd;
    let kv_pairs = p.n_head_kv * half_hd;
    let i = gid.x;
    if t >= step.n_tokens || i >= q_pairs + kv_pairs {
        return;
    }
    let pos = step.pos0 + t;
    if i < q_pairs {
        let qi = t * q_pairs + i;
        q[qi] = rotate(q[qi], i % half_hd, pos);
    } else {
        let j = i - q_pairs;
        let src = t * kv_pairs + j;
        let dst = pos * kv_pairs + j;
        kc[dst] = kv2(rotate(k[src], j % half_hd, pos));
        vc[dst] = kv2(v[src]);
    }
}
