// Causal multi-head attention of a prefill batch laid out for CPU adapters: each invocation one
// query token (wid.x * WG + t) of one head (wid.y), walking every key it sees with an online
// softmax, its query and its output sums in private registers. There is no workgroup memory and
// no barrier (a CPU driver switches every SIMD group of a workgroup at each one), and no split:
// the batch's tokens and heads are the parallelism. The lanes of a workgroup are consecutive
// tokens of one head, so they read the same keys and values: with SUBGROUPS each lane loads
// one pair of a key (or value) row, and the pairs go to every lane by `subgroupBroadcast` from
// constant lanes, one load instruction per SGW pairs instead of one per pair (the CPU drivers
// issue a storage load lane by lane). Token t sits at position pos0 + t and sees keys
// 0..=pos0 + t; a lane whose keys end before its neighbours' gives the rest zero weight.
// Same bindings and results as attention.wgsl's passes; a decode step (one token, which would
// leave all but one lane idle here) has an entry point of its own, `decode`.
//
// Entry points: `main` (a batch) and `decode` (one token, see below).
//
// Defines: HP (head_dim / 2, pairs per head), HPR (HP rounded up to a multiple of 8), WG, F16
// (f16 cache), SUBGROUPS (subgroups of at least 4 lanes), SGW8 (of at least 8).

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
@group(0) @binding(2) var<storage, read> q: array<vec2<f32>>;              // (n_tokens, n_head * HP), roped
@group(0) @binding(3) var<storage, read> kc: array<kv2>;                   // (n_ctx, n_head_kv * HP), roped keys
@group(0) @binding(4) var<storage, read> vc: array<kv2>;                   // (n_ctx, n_head_kv * HP)
@group(0) @binding(7) var<storage, read_write> out: array<vec2<f32>>;      // (n_tokens, n_head * HP)

// Finite "minus infinity": keeps exp(m_old - m_new) free of inf - inf = NaN.
const NEG: f32 = -1.0e30;

// The scaled query and the output sums of this lane, zero past HP.
var<private> qv: array<vec2<f32>, HPR>;
var<private> acc: array<vec2<f32>, HPR>;

// q . k for the key row at `b`, from this lane's own loads.
fn score_own(b: u32) -> f32 {
    var s0 = 0.0;
    var s1 = 0.0;
    var i = 0u;
    for (; i + 1u < HP; i += 2u) {
        s0 += dot(qv[i], vec2<f32>(kc[b + i]));
        s1 += dot(qv[i + 1u], vec2<f32>(kc[b + i + 1u]));
    }
    if (i < HP) {
        s0 += dot(qv[i], vec2<f32>(kc[b + i]));
    }
    return s0 + s1;
}

// acc = acc * alpha + w * v for the value row at `b`, from this lane's own loads.
fn add_value_own(b: u32, alpha: f32, w: f32) {
    for (var i = 0u; i < HP; i++) {
        acc[i] = acc[i] * alpha + w * vec2<f32>(vc[b + i]);
    }
}

#ifdef SUBGROUPS
var<private> lane: u32;
#ifdef SGW8
const SGW: u32 = 8u;
#else
const SGW: u32 = 4u;
#endif

// Pair c + lane of the row at `b` (pairs past HP repeat the last one: their q is zero and
// their output is never stored).
fn load_k(b: u32, c: u32) -> vec2<f32> {
    return vec2<f32>(kc[b + min(c + lane, HP - 1u)]);
}

fn load_v(b: u32, c: u32) -> vec2<f32> {
    return vec2<f32>(vc[b + min(c + lane, HP - 1u)]);
}

// q . k for the key row at `b`.
fn score(b: u32) -> f32 {
    var s0 = 0.0;
    var s1 = 0.0;
    for (var c = 0u; c < HPR; c += SGW) {
        let k = load_k(b, c);
        s0 += dot(qv[c], subgroupBroadcast(k, 0u)) + dot(qv[c + 1u], subgroupBroadcast(k, 1u));
        s1 += dot(qv[c + 2u], subgroupBroadcast(k, 2u)) + dot(qv[c + 3u], subgroupBroadcast(k, 3u));
#ifdef SGW8
        s0 += dot(qv[c + 4u], subgroupBroadcast(k, 4u)) + dot(qv[c + 5u], subgroupBroadcast(k, 5u));
        s1 += dot(qv[c + 6u], subgroupBroadcast(k, 6u)) + dot(qv[c + 7u], subgroupBroadcast(k, 7u));
#endif
    }
    return s0 + s1;
}

// acc = acc * alpha + w * v for the value row at `b`.
fn add_value(b: u32, alpha: f32, w: f32) {
    for (var c = 0u; c < HPR; c += SGW) {
        let v = load_v(b, c);
        acc[c] = acc[c] * alpha + w * subgroupBroadcast(v, 0u);
        acc[c + 1u] = acc[c + 1u] * alpha + w * subgroupBroadcast(v, 1u);
        acc[c + 2u] = acc[c + 2u] * alpha + w * subgroupBroadcast(v, 2u);
        acc[c + 3u] = acc[c + 3u] * alpha + w * subgroupBroadcast(v, 3u);
#ifdef SGW8
        acc[c + 4u] = acc[c + 4u] * alpha + w * subgroupBroadcast(v, 4u);
        acc[c + 5u] = acc[c + 5u] * alpha + w * subgroupBroadcast(v, 5u);
        acc[c + 6u] = acc[c + 6u] * alpha + w * subgroupBroadcast(v, 6u);
        acc[c + 7u] = acc[c + 7u] * alpha + w * subgroupBroadcast(v, 7u);
#endif
    }
}
#else
// Without subgroups a batch's lanes each load the rows themselves, as decode's always do.
fn score(b: u32) -> f32 {
    return score_own(b);
}

fn add_value(b: u32, alpha: f32, w: f32) {
    add_value_own(b, alpha, w);
}
#endif

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
#ifdef SUBGROUPS
    @builtin(subgroup_invocation_id) sg_lane: u32,
#endif
) {
#ifdef SUBGROUPS
    lane = sg_lane;
#endif
    let h = wid.y;
    let t_raw = wid.x * WG + lid;
    // Tokens past the batch repeat the last one (never stored), so every lane runs the loop.
    let t = min(t_raw, step.n_tokens - 1u);
    let q_pairs = p.n_head * HP;
    let kv_pairs = p.n_head_kv * HP;
    let kvh = h / (p.n_head / p.n_head_kv);
    for (var i = 0u; i < HPR; i++) {
        qv[i] = select(vec2<f32>(0.0), q[t * q_pairs + h * HP + min(i, HP - 1u)] * p.scale, i < HP);
        acc[i] = vec2<f32>(0.0);
    }
    // The keys of the workgroup's last token bound the loop; each lane stops counting its own
    // at pos0 + t.
    let t_last = min(wid.x * WG + WG - 1u, step.n_tokens - 1u);
    let kv_end = step.pos0 + t_last + 1u;
    let mine = step.pos0 + t;
    var m = NEG;
    var l = 0.0;
    for (var j = 0u; j < kv_end; j++) {
        let b = j * kv_pairs + kvh * HP;
        let s = select(NEG, score(b), j <= mine);
        let m_new = max(m, s);
        let alpha = exp(m - m_new);
        let w = select(0.0, exp(s - m_new), j <= mine);
        l = l * alpha + w;
        m = m_new;
        add_value(b, alpha, w);
    }
    if (t_raw >= step.n_tokens) {
        return;
    }
    // Every row sees key 0, so l > 0.
    let o = t * q_pairs + h * HP;
    for (var i = 0u; i < HP; i++) {
        out[o + i] = acc[i] / l;
    }
}

// Decode (one token): one workgroup of DWG invocations per head, lane i walking keys i, i + DWG,
// ... with an online softmax of its own (every lane loads a different key, so its loads are all
// useful), then one barrier and a merge of the lanes' partial results through workgroup memory:
//   out = sum_i e^(m_i - M) o_i / sum_i e^(m_i - M) l_i.
// One barrier per head instead of several per 64-key block.
const DWG: u32 = 8u;
var<workgroup> dec_ml: array<vec2<f32>, DWG>;
var<workgroup> dec_o: array<vec2<f32>, DWG * HPR>;

@compute @workgroup_size(DWG)
fn decode(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let h = wid.x;
    let q_pairs = p.n_head * HP;
    let kv_pairs = p.n_head_kv * HP;
    let kvh = h / (p.n_head / p.n_head_kv);
    for (var i = 0u; i < HPR; i++) {
        qv[i] = select(vec2<f32>(0.0), q[h * HP + min(i, HP - 1u)] * p.scale, i < HP);
        acc[i] = vec2<f32>(0.0);
    }
    let kv_end = step.pos0 + 1u;
    var m = NEG;
    var l = 0.0;
    for (var j = lid; j < kv_end; j += DWG) {
        let b = j * kv_pairs + kvh * HP;
        let s = score_own(b);
        let m_new = max(m, s);
        let alpha = exp(m - m_new);
        let w = exp(s - m_new);
        l = l * alpha + w;
        m = m_new;
        add_value_own(b, alpha, w);
    }
    // A lane with no key (a context shorter than DWG) has m = NEG and l = 0: weight e^(NEG - M)
    // = 0 below.
    dec_ml[lid] = vec2<f32>(m, l);
    for (var k = 0u; k < HP; k++) {
        dec_o[lid * HPR + k] = acc[k];
    }
    workgroupBarrier();
    var mx = NEG;
    for (var i = 0u; i < DWG; i++) {
        mx = max(mx, dec_ml[i].x);
    }
    var lt = 0.0;
    for (var i = 0u; i < DWG; i++) {
        lt += exp(dec_ml[i].x - mx) * dec_ml[i].y;
    }
    for (var k = lid; k < HP; k += DWG) {
        var o = vec2<f32>(0.0);
        for (var i = 0u; i < DWG; i++) {
            o += exp(dec_ml[i].x - mx) * dec_o[i * HPR + k];
        }
        out[h * HP + k] = o / lt;
    }
}
