// The inner loop of the decode mat-vec's UNROLL variants (included by matvec.wgsl): one thread's
// sums over the units of its workgroup's ROWS rows, in vectors rather than arrays indexed in the
// loop (ROWS 4, or 8 with ROWS8; SWIGLU adds the up rows, NORM the sum of squares of x).
//
// It is the only code of the mat-vec that depends on the weight type. A mat-vec over two
// matrices of different types (V_TYPE: the fused q/k/v product of a file whose attn_v has more
// bits than attn_q and attn_k) gets a second copy of this file and of quant.wgsl appended by
// the host (`registry::wgsl`), preprocessed for the second type and with every name they
// declare suffixed `_v` (`walk_v` reading `w_v`), so both types share one dispatch.

#include "quant.wgsl"

// One row (byte offset `b`) dotted with a quarter of x: in integers where the type has such a
// product and INT_DOT asks for it (`dot_qi`), else in floats.
fn dot1_q(b: u32, u: u32, j: u32, q: XQuarter) -> f32 {
#if Q_IDOT
    return dot_qi(b, u, j, q.xq, q.dx, q.sx, q.sq);
#else
    return dot_q(b, u, j, p.n_in, q.a, q.b, q.sx);
#endif
}

// Four rows (byte offsets `b`) dotted with a quarter of x.
fn dot4_q(b: vec4<u32>, u: u32, j: u32, q: XQuarter) -> vec4<f32> {
    return vec4<f32>(dot1_q(b.x, u, j, q), dot1_q(b.y, u, j, q), dot1_q(b.z, u, j, q), dot1_q(b.w, u, j, q));
}

#ifdef UNROLL
// One thread's sums: rows r0 .. r0 + 3 (`a`), r0 + 4 .. r0 + 7 with ROWS8 (`ah`), their up rows
// with SWIGLU (`au`, `auh`), and the sum of squares of its elements of x (`ss`).
struct WalkSums {
    a: vec4<f32>,
    ah: vec4<f32>,
    au: vec4<f32>,
    auh: vec4<f32>,
    ss: f32,
}

// Thread `t`'s sums for rows r0.. of a matrix with `row_bytes` bytes per row. Rows past `last`
// repeat row `last` (their sums are discarded), so the loop needs no per-row branch.
fn walk(t: u32, r0: u32, last: u32, row_bytes: u32, units: u32, x_end: u32) -> WalkSums {
    let j = t & 3u;
    let e = q_elems(j);
    let rr = min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
    let b4 = rr * row_bytes;
    var a4 = vec4<f32>(0.0);
#ifdef ROWS8
    let rh = min(vec4<u32>(r0 + 4u) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
    let bh4 = rh * row_bytes;
    var ah4 = vec4<f32>(0.0);
#endif
#ifdef SWIGLU
    let bu4 = (rr + vec4<u32>(p.up_rows)) * row_bytes;
    var au4 = vec4<f32>(0.0);
#ifdef ROWS8
    let buh4 = (rh + vec4<u32>(p.up_rows)) * row_bytes;
    var auh4 = vec4<f32>(0.0);
#endif
#endif
    var ss4 = 0.0;
    var u = t >> 2u;
#ifdef PAIRS
    // Two units per step, u and u + WG / 4: the loads of both are issued before their products,
    // so each thread has twice the bytes in flight (the loop is latency-bound, not
    // bandwidth-bound). The loop below takes the one unit that may be left.
    for (; u + WG / 4u < units; u += WG / 2u) {
        let u2 = u + WG / 4u;
        let q = load_quarter(u, e, x_end);
        let q2 = load_quarter(u2, e, x_end);
        ss4 += q.ss + q2.ss;
        a4 += dot4_q(b4, u, j, q) + dot4_q(b4, u2, j, q2);
#ifdef ROWS8
        ah4 += dot4_q(bh4, u, j, q) + dot4_q(bh4, u2, j, q2);
#endif
#ifdef SWIGLU
        au4 += dot4_q(bu4, u, j, q) + dot4_q(bu4, u2, j, q2);
#ifdef ROWS8
        auh4 += dot4_q(buh4, u, j, q) + dot4_q(buh4, u2, j, q2);
#endif
#endif
    }
#endif
    for (; u < units; u += WG / 4u) {
        let q = load_quarter(u, e, x_end);
        ss4 += q.ss;
        a4 += dot4_q(b4, u, j, q);
#ifdef ROWS8
        ah4 += dot4_q(bh4, u, j, q);
#endif
#ifdef SWIGLU
        au4 += dot4_q(bu4, u, j, q);
#ifdef ROWS8
        auh4 += dot4_q(buh4, u, j, q);
#endif
#endif
    }
    var s: WalkSums;
    s.a = a4;
    s.ss = ss4;
#ifdef ROWS8
    s.ah = ah4;
#endif
#ifdef SWIGLU
    s.au = au4;
#ifdef ROWS8
    s.auh = auh4;
#endif
#endif
    return s;
}
#endif
