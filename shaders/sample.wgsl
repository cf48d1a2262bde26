// Token sampling on the GPU, so that a decoded token costs one 4-byte
// readback instead of a whole logits row. One workgroup per draw (the engine
// uses one draw; tests use thousands to check the distribution). Order:
//
//   1. repetition penalty, as transformers defines it: every distinct token
//      of the recent window gets logit < 0 ? logit * penalty : logit / penalty;
//   1b. step.suppress = 1 + id: that token gets NEG (min length: no EOS yet);
//   2. temperature <= 0: greedy argmax (ties go to the lowest id), done;
//   3. z = logit / temperature;
//   4. top-k (k > 0): keep z >= the k-th largest z (ties kept, as transformers
//      does), found exactly by a 4-pass radix select on order-preserving keys;
//   5. top-p (p < 1): of what is left, keep the smallest set of the most
//      likely tokens whose probability mass reaches p, found by bisection on
//      the key;
//   6. draw u from a PCG hash of (seed, rng step) and invert the CDF of the
//      kept tokens in id order.
//
// The sampled id goes to token_out[draw] (which the next step's embedding
// reads) and, for draw 0, into the recent-token ring at step.recent_head.
//
// Defines: WG (>= 256 not required; any power of two).

#include "step.wgsl"

struct SampleParams {
    n_vocab: u32,
    top_k: u32,        // 0 = off
    top_p: f32,        // >= 1 = off
    temperature: f32,  // <= 0 = greedy
    penalty: f32,      // 1 = off
    seed_lo: u32,
    seed_hi: u32,
    window: u32,       // capacity of the recent-token ring (0 = no ring)
}

@group(0) @binding(1) var<uniform> p: SampleParams;
@group(0) @binding(2) var<storage, read> logits: array<f32>;           // (n_vocab)
@group(0) @binding(3) var<storage, read_write> recent: array<u32>;     // (max(window, 1)) ring of recent token ids
@group(0) @binding(4) var<storage, read_write> work: array<f32>;       // (n_draws, n_vocab) penalized logits
@group(0) @binding(5) var<storage, read_write> prob: array<f32>;       // (n_draws, n_vocab) unnormalized kept probabilities
@group(0) @binding(6) var<storage, read_write> token_out: array<u32>;  // (n_draws)

const NEG: f32 = -3.0e38;

var<workgroup> redf: array<f32, WG>;
var<workgroup> redu: array<u32, WG>;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> bcast_f: f32;
var<workgroup> bcast_u: u32;
var<workgroup> bcast_u2: u32;

// Monotone map f32 -> u32: a < b  <=>  key(a) < key(b).
fn key_of(z: f32) -> u32 {
    let u = bitcast<u32>(z);
    if (u & 0x80000000u) != 0u {
        return ~u;
    }
    return u | 0x80000000u;
}

fn pcg(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

// Uniform in [0, 1) with 24 random bits.
fn rand01(draw: u32) -> f32 {
    let h = pcg(pcg(pcg(p.seed_lo) ^ p.seed_hi) ^ (step.rng_step + draw));
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

fn wg_sum(v: f32, lid: u32) -> f32 {
    redf[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            redf[lid] += redf[lid + s];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        bcast_f = redf[0];
    }
    return workgroupUniformLoad(&bcast_f);
}

fn wg_max(v: f32, lid: u32) -> f32 {
    redf[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if lid < s {
            redf[lid] = max(redf[lid], redf[lid + s]);
        }
        workgroupBarrier();
    }
    if lid == 0u {
        bcast_f = redf[0];
    }
    return workgroupUniformLoad(&bcast_f);
}

fn emit(draw: u32, token: u32) {
    token_out[draw] = token;
    if draw == 0u && p.window > 0u {
        recent[step.recent_head] = token;
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let draw = wid.x;
    let n = p.n_vocab;
    let wo = draw * n;

    // 1. repetition penalty over the distinct tokens of the window.
    for (var i = lid; i < n; i += WG) {
        work[wo + i] = logits[i];
    }
    storageBarrier();
    if p.penalty != 1.0 {
        for (var j = lid; j < step.n_recent; j += WG) {
            let tok = recent[j];
            var seen_before = false;
            for (var k = 0u; k < j; k++) {
                if recent[k] == tok {
                    seen_before = true;
                    break;
                }
            }
            if !seen_before && tok < n {
                let l = work[wo + tok];
                work[wo + tok] = select(l / p.penalty, l * p.penalty, l < 0.0);
            }
        }
        storageBarrier();
    }
    if step.suppress > 0u && step.suppress <= n {
        if lid == 0u {
            work[wo + step.suppress - 1u] = NEG;
        }
        storageBarrier();
    }

    // 2. greedy.
    if p.temperature <= 0.0 {
        var best = NEG;
        var best_i = 0xffffffffu;
        for (var i = lid; i < n; i += WG) {
            let v = work[wo + i];
            if v > best || best_i == 0xffffffffu {
                best = v;
                best_i = i;
            }
        }
        redf[lid] = best;
        redu[lid] = best_i;
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s >>= 1u) {
            if lid < s {
                let bv = redf[lid + s];
                let bi = redu[lid + s];
                let av = redf[lid];
                let ai = redu[lid];
                if bi != 0xffffffffu && (ai == 0xffffffffu || bv > av || (bv == av && bi < ai)) {
                    redf[lid] = bv;
                    redu[lid] = bi;
                }
            }
            workgroupBarrier();
        }
        if lid == 0u {
            emit(draw, select(redu[0], 0u, redu[0] == 0xffffffffu));
        }
        return;
    }

    // 3. temperature.
    let inv_t = 1.0 / p.temperature;
    var local_max = NEG;
    for (var i = lid; i < n; i += WG) {
        local_max = max(local_max, work[wo + i] * inv_t);
    }
    let z_max = wg_max(local_max, lid);

    // 4. top-k: radix select of the k-th largest key, 8 bits per pass.
    var tau = 0u;
    if p.top_k > 0u && p.top_k < n {
        var prefix = 0u;
        var remaining = p.top_k;
        for (var round = 0u; round < 4u; round++) {
            let shift = 24u - 8u * round;
            // Bits above the current digit that must equal the prefix found so far.
            let hi_mask = ~(0xffffffffu >> (32u - shift - 8u));
            for (var b = lid; b < 256u; b += WG) {
                atomicStore(&hist[b], 0u);
            }
            workgroupBarrier();
            for (var i = lid; i < n; i += WG) {
                let key = key_of(work[wo + i] * inv_t);
                if (key & hi_mask) == (prefix & hi_mask) {
                    atomicAdd(&hist[(key >> shift) & 255u], 1u);
                }
            }
            workgroupBarrier();
            if lid == 0u {
                var digit = 0u;
                var rem = remaining;
                for (var b = 255i; b >= 0i; b--) {
                    let c = atomicLoad(&hist[u32(b)]);
                    if c >= rem {
                        digit = u32(b);
                        break;
                    }
                    rem -= c;
                }
                bcast_u = prefix | (digit << shift);
                bcast_u2 = rem;
            }
            prefix = workgroupUniformLoad(&bcast_u);
            remaining = workgroupUniformLoad(&bcast_u2);
        }
        tau = prefix;
    }

    // Unnormalized probabilities of the top-k survivors.
    var local_sum = 0.0;
    for (var i = lid; i < n; i += WG) {
        let z = work[wo + i] * inv_t;
        var e = 0.0;
        if key_of(z) >= tau {
            e = exp(z - z_max);
        }
        prob[wo + i] = e;
        local_sum += e;
    }
    storageBarrier();
    let total = wg_sum(local_sum, lid);

    // 5. top-p: the largest key threshold whose kept mass still reaches p.
    if p.top_p < 1.0 {
        let goal = p.top_p * total;
        var lo = tau;
        var hi = key_of(z_max);
        while lo < hi {
            let mid = hi - (hi - lo) / 2u;
            var part = 0.0;
            for (var i = lid; i < n; i += WG) {
                if key_of(work[wo + i] * inv_t) >= mid {
                    part += prob[wo + i];
                }
            }
            let mass = wg_sum(part, lid);
            if mass >= goal {
                lo = mid;
            } else {
                hi = mid - 1u;
            }
        }
        tau = lo;
    }

    // 6. inverse CDF over contiguous id ranges, one range per invocation.
    let per = (n + WG - 1u) / WG;
    let i0 = min(lid * per, n);
    let i1 = min(i0 + per, n);
    var part = 0.0;
    for (var i = i0; i < i1; i++) {
        if key_of(work[wo + i] * inv_t) >= tau {
            part += prob[wo + i];
        }
    }
    redf[lid] = part;
    workgroupBarrier();
    if lid == 0u {
        var kept = 0.0;
        for (var t = 0u; t < WG; t++) {
            kept += redf[t];
        }
        let goal = rand01(draw) * kept;
        var acc = 0.0;
        var sel = 0u;
        var resid = 0.0;
        for (var t = 0u; t < WG; t++) {
            let c = redf[t];
            if c > 0.0 {
                // Fallback when rounding leaves goal >= kept: the last kept token.
                sel = t;
                resid = c;
                if acc + c > goal {
                    resid = goal - acc;
                    break;
                }
                acc += c;
            }
        }
        bcast_u = sel;
        bcast_f = resid;
    }
    let sel = workgroupUniformLoad(&bcast_u);
    let resid = workgroupUniformLoad(&bcast_f);
    if lid == sel {
        var c = 0.0;
        var chosen = 0xffffffffu;
        var last_kept = i0;
        for (var i = i0; i < i1; i++) {
            if key_of(work[wo + i] * inv_t) >= tau {
                let pi = prob[wo + i];
                if pi > 0.0 {
                    last_kept = i;
                    c += pi;
                    if c > resid {
                        chosen = i;
                        break;
                    }
                }
            }
        }
        emit(draw, select(chosen, last_kept, chosen == 0xffffffffu));
    }
}
