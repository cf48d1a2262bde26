// Causal multi-head attention over the KV cache, split-KV ("flash decoding"):
//
//   split:  one workgroup per (split s, head h, token t). It walks the keys of
//           its split in CHUNK-sized blocks with an online softmax and writes
//           the unnormalized partial output plus its (max, sum) pair. Four
//           invocations score each key of a block and four groups of
//           invocations sum its values, so no invocation walks a whole key or
//           a whole block alone (decode is latency-bound, not bandwidth-bound).
//   reduce: one workgroup per (head, token) merges the splits:
//           out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s.
//           With a single split (at most CHUNK keys, or a caller that asks for
//           one) the split pass normalizes and writes `out` itself and the
//           reduce pass is not dispatched.
//
// Token t of the batch sits at position pos0 + t and sees keys 0..=pos0 + t,
// so the same two passes serve decode (n_tokens = 1) and prefill. Splitting
// the keys keeps every core busy at long contexts, where one workgroup per
// head would leave most of the GPU idle. GQA maps head h to kv head
// h / (n_head / n_head_kv). The 1/sqrt(head_dim) scale is folded into q.
//
// Defines: WG (256 = 4 * CHUNK), F16 (f16 cache), SUBGROUPS. head_dim <= 256.

#ifdef F16
alias kv2 = vec2<f16>;
#else
alias kv2 = vec2<f32>;
#endif

#include "step.wgsl"

struct AttentionParams {
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    scale: f32,     // 1 / sqrt(head_dim)
}

@group(0) @binding(1) var<uniform> p: AttentionParams;
@group(0) @binding(2) var<storage, read> q: array<vec2<f32>>;              // (n_tokens, n_head * head_dim / 2), roped
@group(0) @binding(3) var<storage, read> kc: array<kv2>;                   // (n_ctx, n_head_kv * head_dim / 2), roped keys
@group(0) @binding(4) var<storage, read> vc: array<kv2>;                   // (n_ctx, n_head_kv * head_dim / 2)
@group(0) @binding(5) var<storage, read_write> part_o: array<vec2<f32>>;   // (n_tokens, n_head, n_splits, head_dim / 2)
@group(0) @binding(6) var<storage, read_write> part_ml: array<vec2<f32>>;  // (n_tokens, n_head, n_splits): (max, sum)
@group(0) @binding(7) var<storage, read_write> out: array<vec2<f32>>;      // (n_tokens, n_head * head_dim / 2)

// Keys per block; invocations per key while scoring (WG = CHUNK * LANES, LANES = 4).
const CHUNK: u32 = 64u;
const LANES: u32 = WG / CHUNK;
// Invocations per key group while summing values (two pairs each: head_dim <= 256), and groups.
const PAIR_SLOTS: u32 = 64u;
const GROUPS: u32 = WG / PAIR_SLOTS;
// Finite "minus infinity": keeps exp(m_old - m_new) free of inf - inf = NaN.
const NEG: f32 = -1.0e30;

var<workgroup> qs: array<vec2<f32>, 2 * PAIR_SLOTS>;  // the scaled query of this head
var<workgroup> sc: array<f32, CHUNK>;                 // softmax numerators of the current block
var<workgroup> lane_sum: array<f32, WG>;              // partial key dot products
var<workgroup> red: array<f32, WG>;
var<workgroup> group_o: array<vec2<f32>, 2 * WG>;     // (group, 2, PAIR_SLOTS) value sums

#ifdef SUBGROUPS
fn wg_max(v: f32, lid: u32, sg_id: u32, sg_lane: u32, n_sg: u32) -> f32 {
    let s = subgroupMax(v);
    if sg_lane == 0u {
        red[sg_id] = s;
    }
    workgroupBarrier();
    var r = NEG;
    for (var i = 0u; i < n_sg; i++) {
        r = max(r, red[i]);
    }
    workgroupBarrier();
    return r;
}

fn wg_sum(v: f32, lid: u32, sg_id: u32, sg_lane: u32, n_sg: u32) -> f32 {
    let s = subgroupAdd(v);
    if sg_lane == 0u {
        red[sg_id] = s;
    }
    workgroupBarrier();
    var r = 0.0;
    for (var i = 0u; i < n_sg; i++) {
        r += red[i];
    }
    workgroupBarrier();
    return r;
}
#else
fn wg_max(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] = max(red[lid], red[lid + s]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn wg_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
#endif

@compute @workgroup_size(WG)
fn split(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
#ifdef SUBGROUPS
    @builtin(subgroup_id) sg_id: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
    @builtin(num_subgroups) n_sg: u32,
#endif
) {
    let s = wid.x;
    let h = wid.y;
    let t = wid.z;
    let half_hd = p.head_dim / 2u;
    let q_pairs = p.n_head * half_hd;
    let kv_pairs = p.n_head_kv * half_hd;
    let kvh = h / (p.n_head / p.n_head_kv);

    for (var i = lid; i < half_hd; i += WG) {
        qs[i] = q[t * q_pairs + h * half_hd + i] * p.scale;
    }
    workgroupBarrier();

    let kv_end = step.pos0 + t + 1u;
    let split_len = step.chunks_per_split * CHUNK;
    let start = s * split_len;
    let end = min(start + split_len, kv_end);
    // Scoring: LANES invocations per key of the block, each summing every LANES-th pair.
    let kk = lid / LANES;
    let lane = lid % LANES;
    // Values: GROUPS groups of PAIR_SLOTS invocations, group g taking keys g, g + GROUPS, ...
    // and invocation ps the pairs ps and ps + PAIR_SLOTS.
    let g = lid / PAIR_SLOTS;
    let ps = lid % PAIR_SLOTS;

    var m_run = NEG;
    var l_run = 0.0;
    var acc = array<vec2<f32>, 2>(vec2<f32>(0.0), vec2<f32>(0.0));
    for (var c0 = start; c0 < end; c0 += CHUNK) {
        let pos = c0 + kk;
        // Two independent sums, so two loads of the key are in flight at once.
        var d = vec2<f32>(0.0);
        if pos < end {
            let kb = pos * kv_pairs + kvh * half_hd;
            var i = lane;
            for (; i + LANES < half_hd; i += 2u * LANES) {
                d.x += dot(qs[i], vec2<f32>(kc[kb + i]));
                d.y += dot(qs[i + LANES], vec2<f32>(kc[kb + i + LANES]));
            }
            if i < half_hd {
                d.x += dot(qs[i], vec2<f32>(kc[kb + i]));
            }
        }
        lane_sum[lid] = d.x + d.y;
        workgroupBarrier();
        var score = NEG;
        if pos < end {
            let b = kk * LANES;
            score = (lane_sum[b] + lane_sum[b + 1u]) + (lane_sum[b + 2u] + lane_sum[b + 3u]);
        }
#ifdef SUBGROUPS
        let m_blk = wg_max(score, lid, sg_id, sg_lane, n_sg);
#else
        let m_blk = wg_max(score, lid);
#endif
        let m_new = max(m_run, m_blk);
        var e = 0.0;
        if pos < end && lane == 0u {
            e = exp(score - m_new);
            sc[kk] = e;
        }
#ifdef SUBGROUPS
        let l_blk = wg_sum(e, lid, sg_id, sg_lane, n_sg);
#else
        let l_blk = wg_sum(e, lid);
#endif
        let alpha = exp(m_run - m_new);
        let n_valid = min(CHUNK, end - c0);
        for (var r = 0u; r < 2u; r++) {
            let d2 = ps + r * PAIR_SLOTS;
            if d2 < half_hd {
                // Four keys per iteration into four sums: four loads in flight.
                let vb = c0 * kv_pairs + kvh * half_hd + d2;
                var a0 = acc[r] * alpha;
                var a1 = vec2<f32>(0.0);
                var a2 = vec2<f32>(0.0);
                var a3 = vec2<f32>(0.0);
                var j = g;
                for (; j + 3u * GROUPS < n_valid; j += 4u * GROUPS) {
                    a0 += sc[j] * vec2<f32>(vc[vb + j * kv_pairs]);
                    a1 += sc[j + GROUPS] * vec2<f32>(vc[vb + (j + GROUPS) * kv_pairs]);
                    a2 += sc[j + 2u * GROUPS] * vec2<f32>(vc[vb + (j + 2u * GROUPS) * kv_pairs]);
                    a3 += sc[j + 3u * GROUPS] * vec2<f32>(vc[vb + (j + 3u * GROUPS) * kv_pairs]);
                }
                for (; j < n_valid; j += GROUPS) {
                    a0 += sc[j] * vec2<f32>(vc[vb + j * kv_pairs]);
                }
                acc[r] = (a0 + a1) + (a2 + a3);
            }
        }
        l_run = l_run * alpha + l_blk;
        m_run = m_new;
        workgroupBarrier();
    }

    // The groups' partial value sums, added in group order.
    for (var r = 0u; r < 2u; r++) {
        group_o[(g * 2u + r) * PAIR_SLOTS + ps] = acc[r];
    }
    workgroupBarrier();
    let row = (t * p.n_head + h) * step.n_splits + s;
    let single = step.n_splits == 1u;
    if lid == 0u && !single {
        part_ml[row] = vec2<f32>(m_run, l_run);
    }
    if g == 0u {
        for (var r = 0u; r < 2u; r++) {
            let d2 = ps + r * PAIR_SLOTS;
            if d2 < half_hd {
                var o = vec2<f32>(0.0);
                for (var gg = 0u; gg < GROUPS; gg++) {
                    o += group_o[(gg * 2u + r) * PAIR_SLOTS + ps];
                }
                if single {
                    // Every row sees key 0, so l_run > 0.
                    out[t * p.n_head * half_hd + h * half_hd + d2] = o / l_run;
                } else {
                    part_o[row * half_hd + d2] = o;
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let t = wid.y;
    let half_hd = p.head_dim / 2u;
    let base = (t * p.n_head + h) * step.n_splits;
    var m = NEG;
    for (var s = 0u; s < step.n_splits; s++) {
        m = max(m, part_ml[base + s].x);
    }
    var l = 0.0;
    for (var s = 0u; s < step.n_splits; s++) {
        let ml = part_ml[base + s];
        l += exp(ml.x - m) * ml.y;
    }
    for (var i = lid; i < half_hd; i += WG) {
        var o = vec2<f32>(0.0);
        for (var s = 0u; s < step.n_splits; s++) {
            o += exp(part_ml[base + s].x - m) * part_o[(base + s) * half_hd + i];
        }
        out[t * p.n_head * half_hd + h * half_hd + i] = o / l;
    }
}
