// RMSNorm fused with its weight (llama.cpp `rms_norm` followed by `mul`):
//   y[t, i] = x[t, i] / sqrt(mean_i(x[t, i]^2) + eps) * w[i]
// One workgroup per token row. (The output head of a prompt needs only the
// last row: the engine fuses that norm into the head's mat-vec instead.)
//
// Defines: WG (workgroup size, power of two), SUBGROUPS (use subgroupAdd for
// the partial sums).

struct RmsNormParams {
    n_embd: u32,  // row length
    eps: f32,     // rms_norm_eps
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(1) var<uniform> p: RmsNormParams;
@group(0) @binding(2) var<storage, read> x: array<f32>;        // (n_tokens, n_embd)
@group(0) @binding(3) var<storage, read> w: array<f32>;        // (n_embd)
@group(0) @binding(4) var<storage, read_write> y: array<f32>;  // (n_tokens, n_embd)

var<workgroup> red: array<f32, WG>;

#ifdef SUBGROUPS
fn wg_sum(v: f32, lid: u32, sg_id: u32, sg_lane: u32, n_sg: u32) -> f32 {
    let s = subgroupAdd(v);
    if sg_lane == 0u {
        red[sg_id] = s;
    }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < n_sg; i++) {
        total += red[i];
    }
    workgroupBarrier();
    return total;
}
#else
fn wg_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}
#endif

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
#ifdef SUBGROUPS
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(num_subgroups) n_sg: u32,
#endif
) {
    let xo = wid.x * p.n_embd;
    var acc = 0.0;
    for (var i = lid; i < p.n_embd; i += WG) {
        let v = x[xo + i];
        acc += v * v;
    }
#ifdef SUBGROUPS
    let ss = wg_sum(acc, lid, sg_id, sg_lane, n_sg);
#else
    let ss = wg_sum(acc, lid);
#endif
    let scale = 1.0 / sqrt(ss / f32(p.n_embd) + p.eps);
    for (var i = lid; i < p.n_embd; i += WG) {
        y[xo + i] = x[xo + i] * scale * w[i];
    }
}
