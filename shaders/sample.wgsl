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
//      does), found exactly: for k <= KMAX every invocation keeps its own k
//      largest (with their ids) while the maximum is found, and k rounds of a
//      workgroup argmax pop the largest heads; a (k+1)-th round tells whether
//      any other z equals the k-th (a tie). Without one, the k popped tokens
//      are the whole kept set and steps 5 and 6 run on them alone in one
//      invocation, without another pass over the vocabulary. For larger k (or
//      a tie) a 4-pass radix select on order-preserving keys, and steps 5 and
//      6 over the vocabulary;
//   5. top-p (p < 1): of what is left, keep the smallest set of the most
//      likely tokens whose probability mass reaches p, found by bisection on
//      the key;
//   6. draw u from a PCG hash of (seed, rng step) and invert the CDF of the
//      kept tokens in id order.
//
// The sampled id goes to token_out[draw] (which the next step's embedding
// reads) and, for draw 0, into the recent-token ring at step.recent_head.
//
// Scans over the vocabulary load four elements (i, i + WG, i + 2 WG, i + 3 WG)
// per iteration, so four loads are in flight per invocation.
//
// Defines: WG (any power of two; the engine uses 1024 where the device allows).

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
// Largest k handled by per-invocation lists (the chat default is 4).
const KMAX: u32 = 8u;
// Marks "no index yet" in argmax reductions.
const NONE: u32 = 0xffffffffu;

var<workgroup> redf: array<f32, WG>;
var<workgroup> redu: array<u32, WG>;
var<workgroup> redu2: array<u32, WG>;
var<workgroup> hist: array<atomic<u32>, 256>;
// Kept probability mass of GS consecutive invocations' id ranges (NG groups).
const GS: u32 = 32u;
const NG: u32 = WG / GS;
var<workgroup> group_mass: array<f32, NG>;
var<workgroup> bcast_f: f32;
var<workgroup> bcast_u: u32;
var<workgroup> bcast_u2: u32;
// The tokens the small-k rounds popped, largest z first.
var<workgroup> kept_z: array<f32, KMAX>;
var<workgroup> kept_id: array<u32, KMAX>;

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

// work[wo + i + q * WG] for q = 0..3 (all in bounds: the caller checks i + 3 WG < n).
fn work4(wo: u32, i: u32) -> vec4<f32> {
    return vec4<f32>(work[wo + i], work[wo + i + WG], work[wo + i + 2u * WG], work[wo + i + 3u * WG]);
}

fn emit(draw: u32, token: u32) {
    token_out[draw] = token;
    if draw == 0u && p.window > 0u {
        recent[step.recent_head] = token;
    }
}

// Steps 5 and 6 for the k tokens the small-k rounds popped (no other z ties the k-th): top-p on
// the list (largest first), then the draw over the survivors in id order. One invocation.
fn draw_small(draw: u32, k: u32, z_max: f32) -> u32 {
    var e: array<f32, KMAX>;
    var total = 0.0;
    for (var r = 0u; r < k; r++) {
        e[r] = exp(kept_z[r] - z_max);
        total += e[r];
    }
    // Top-p: the smallest prefix of equal-key groups whose mass reaches p of the total.
    var n_keep = k;
    if p.top_p < 1.0 {
        let goal = p.top_p * total;
        var mass = 0.0;
        for (var r = 0u; r < k; r++) {
            mass += e[r];
            let group_ends = r + 1u == k || key_of(kept_z[r + 1u]) != key_of(kept_z[r]);
            if group_ends && mass >= goal {
                n_keep = r + 1u;
                break;
            }
        }
    }
    // Survivors in id order.
    var ids: array<u32, KMAX>;
    var ps: array<f32, KMAX>;
    for (var r = 0u; r < n_keep; r++) {
        var at = r;
        while at > 0u && ids[at - 1u] > kept_id[r] {
            ids[at] = ids[at - 1u];
            ps[at] = ps[at - 1u];
            at--;
        }
        ids[at] = kept_id[r];
        ps[at] = e[r];
    }
    var kept = 0.0;
    for (var r = 0u; r < n_keep; r++) {
        kept += ps[r];
    }
    let goal = rand01(draw) * kept;
    var acc = 0.0;
    for (var r = 0u; r < n_keep; r++) {
        acc += ps[r];
        if acc > goal {
            return ids[r];
        }
    }
    return ids[n_keep - 1u];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let draw = wid.x;
    let n = p.n_vocab;
    let wo = draw * n;

    // 1. repetition penalty over the distinct tokens of the window.
    var i = lid;
    for (; i + 3u * WG < n; i += 4u * WG) {
        let v = vec4<f32>(logits[i], logits[i + WG], logits[i + 2u * WG], logits[i + 3u * WG]);
        work[wo + i] = v.x;
        work[wo + i + WG] = v.y;
        work[wo + i + 2u * WG] = v.z;
        work[wo + i + 3u * WG] = v.w;
    }
    for (; i < n; i += WG) {
        work[wo + i] = logits[i];
    }
    storageBarrier();
    if p.penalty != 1.0 {
        // Computed from the unpenalized logit, so a token that occurs several times in the
        // window gets the same value from every invocation that sees it: penalized once.
        for (var j = lid; j < step.n_recent; j += WG) {
            let tok = recent[j];
            if tok < n {
                let l = logits[tok];
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
        var best_i = NONE;
        var i = lid;
        for (; i + 3u * WG < n; i += 4u * WG) {
            let v = work4(wo, i);
            // In id order, so the first of equal values wins.
            for (var q = 0u; q < 4u; q++) {
                if v[q] > best || best_i == NONE {
                    best = v[q];
                    best_i = i + q * WG;
                }
            }
        }
        for (; i < n; i += WG) {
            let v = work[wo + i];
            if v > best || best_i == NONE {
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
    // With a small k, each invocation also keeps its k largest z (sorted, largest first).
    let small_k = p.top_k > 0u && p.top_k < n && p.top_k <= KMAX;
    let k = select(0u, p.top_k, small_k);
    var top: array<f32, KMAX>;
    var top_id: array<u32, KMAX>;
    var n_top = 0u;
    // Largest key this invocation saw but does not hold in its list (rejected or pushed out).
    var dropped = 0u;
    var local_max = NEG;
    i = lid;
    loop {
        var v: vec4<f32>;
        var m = 4u;
        if i + 3u * WG < n {
            v = work4(wo, i) * inv_t;
        } else if i < n {
            // The tail: one element per iteration.
            v = vec4<f32>(work[wo + i] * inv_t, NEG, NEG, NEG);
            m = 1u;
        } else {
            break;
        }
        local_max = max(local_max, max(max(v.x, v.y), max(v.z, v.w)));
        for (var q = 0u; q < m; q++) {
            let z = v[q];
            if k > 0u && (n_top < k || z > top[k - 1u]) {
                // Insert z, shifting the smaller entries down (the k-th falls off).
                if n_top == k {
                    dropped = max(dropped, key_of(top[k - 1u]));
                }
                var at = min(n_top, k - 1u);
                while at > 0u && top[at - 1u] < z {
                    top[at] = top[at - 1u];
                    top_id[at] = top_id[at - 1u];
                    at--;
                }
                top[at] = z;
                top_id[at] = i + q * WG;
                n_top = min(n_top + 1u, k);
            } else if k > 0u {
                dropped = max(dropped, key_of(z));
            }
        }
        i += m * WG;
    }
    let z_max = wg_max(local_max, lid);

    // 4. top-k.
    var tau = 0u;
    var tie = false;
    if small_k {
        // k rounds: the largest head among all invocations' lists is popped (ties: lowest
        // invocation); the k-th popped is the k-th largest z, counted with multiplicity.
        // Round k offers what is left (list heads and dropped keys): a key >= tau there is
        // another z equal to the k-th largest.
        var head = 0u;
        for (var r = 0u; r <= k; r++) {
            // Keys are > 0 for every z (key_of(-inf) = 0x007fffff), so 0 means "empty".
            var offer = select(0u, key_of(top[min(head, KMAX - 1u)]), head < n_top);
            if r == k {
                offer = max(offer, dropped);
            }
            redu[lid] = offer;
            redu2[lid] = lid;
            workgroupBarrier();
            for (var s = WG / 2u; s > 0u; s >>= 1u) {
                if lid < s {
                    let bk = redu[lid + s];
                    if bk > redu[lid] {
                        redu[lid] = bk;
                        redu2[lid] = redu2[lid + s];
                    }
                }
                workgroupBarrier();
            }
            if lid == 0u {
                bcast_u = redu[0];
                bcast_u2 = redu2[0];
            }
            let won = workgroupUniformLoad(&bcast_u2);
            let best = workgroupUniformLoad(&bcast_u);
            if r == k {
                tie = best >= tau;
            } else {
                tau = best;
                if lid == won {
                    kept_z[r] = top[min(head, KMAX - 1u)];
                    kept_id[r] = top_id[min(head, KMAX - 1u)];
                    head++;
                }
            }
        }
        if !tie {
            if lid == 0u {
                emit(draw, draw_small(draw, k, z_max));
            }
            return;
        }
    } else if p.top_k > 0u && p.top_k < n {
        // Radix select of the k-th largest key, 8 bits per pass.
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
    i = lid;
    for (; i + 3u * WG < n; i += 4u * WG) {
        let z = work4(wo, i) * inv_t;
        var e = vec4<f32>(0.0);
        for (var q = 0u; q < 4u; q++) {
            if key_of(z[q]) >= tau {
                e[q] = exp(z[q] - z_max);
            }
        }
        prob[wo + i] = e.x;
        prob[wo + i + WG] = e.y;
        prob[wo + i + 2u * WG] = e.z;
        prob[wo + i + 3u * WG] = e.w;
        local_sum += (e.x + e.y) + (e.z + e.w);
    }
    for (; i < n; i += WG) {
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
    // Sums of GS consecutive invocations, so that one invocation finds the range holding
    // the draw in NG + GS steps instead of WG.
    if lid < NG {
        var sg = 0.0;
        for (var t = lid * GS; t < lid * GS + GS; t++) {
            sg += redf[t];
        }
        group_mass[lid] = sg;
    }
    workgroupBarrier();
    if lid == 0u {
        var kept = 0.0;
        for (var g = 0u; g < NG; g++) {
            kept += group_mass[g];
        }
        let goal = rand01(draw) * kept;
        var acc = 0.0;
        var sel = NONE;
        var resid = 0.0;
        for (var g = 0u; g < NG && sel == NONE; g++) {
            let cg = group_mass[g];
            if cg <= 0.0 {
                continue;
            }
            if acc + cg <= goal {
                acc += cg;
                continue;
            }
            for (var t = g * GS; t < g * GS + GS; t++) {
                let c = redf[t];
                if c > 0.0 {
                    if acc + c > goal {
                        sel = t;
                        resid = goal - acc;
                        break;
                    }
                    acc += c;
                }
            }
        }
        if sel == NONE {
            // Rounding left goal >= kept: the last kept token (its whole range's mass, so the
            // range's walk below falls through to its last kept token).
            for (var t: u32 = WG; t > 0u; t--) {
                if redf[t - 1u] > 0.0 {
                    sel = t - 1u;
                    resid = redf[t - 1u];
                    break;
                }
            }
            sel = select(sel, 0u, sel == NONE);
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
