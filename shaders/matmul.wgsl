// Matrix-matrix product for prefill: Y[t, r] = dot(W[r, :], X[t, :]) (or += when p.accumulate is
// set: a uniform, not a variant, so one pipeline serves both modes)
// for n_tokens rows of X and the rows of one part of a QuantMatrix.
//
// A workgroup computes a BM-token x BN-row tile of Y with (BM / 4) * (BN / 4) threads, each a
// 4-token x 4-row block held in four vec4 registers (see TM8 and RN8 for bigger blocks). The K dimension is walked in 32-element
// units. Per unit, every thread helps stage both operands in workgroup memory:
//   - weights: 4 * BN quarter-units, four threads per row unit (`dequant_q`, the decode mat-vec's
//     loader, 8 elements each), so the threads of a subgroup read consecutive words of
//     consecutive blocks; stored dequantized as ws[k][row] (vec4 of 4 rows, f32);
//   - X: BM tokens x 32 elements, eight threads per token reading its 32 consecutive floats;
//     stored as xs[k][token] (vec4 of 4 tokens).
// The inner loop then reads one vec4 of tokens and one vec4 of rows per k and does 16 FMAs: four
// times fewer workgroup-memory reads per FMA than a scalar 4 x 4 tile, and BM * BN * 32 FMAs per
// pair of barriers. Every dequantized weight is reused for BM tokens. (The first kernel used
// 32 x 32 tiles of 64 threads, half of them idle while the other half staged X, and scalar
// reads: 8 workgroup loads per 16 FMAs.)
//
// The accumulators are four vec4 variables, not an indexed array: with an array the NVIDIA Vulkan
// compiler kept them in local memory and a kernel ran 7x slower on an H100.
//
// TM8: each thread holds 8 tokens instead of 4 (eight vec4 registers per 4 rows); RN8: 8 rows
// instead of 4. 8 x 8 per thread: per k, four workgroup loads for 64 FMAs instead of two for 16,
// and a quarter of the threads to stage the same tile. The 128-wide tiles need them (at most 256
// threads).
//
// Workgroup memory: 32 * (BM + BN) * 4 bytes, 16 KiB for the 64 x 64 tile (WebGPU's guaranteed
// limit is 16 KiB), 24 KiB for 128 x 64, 32 KiB for 128 x 128 (the host checks the device's
// limit first).
//
// INT_DOT (Q4_0, Q5_0, Q8_0 and Q4_K; every tile) stages both operands as 8-bit integers
// instead: each weight quarter-unit as two words of four quants (`qi_quants` in quant.wgsl) with
// the unit's scale (and minimum) per row, and X from `x8`, the batch's input quantized once by
// `quantize.wgsl` (each token's 32 elements of a unit as integers with one scale, their integer
// sum and their exact sum: three vec4 loads per token and unit, consecutive for a tile's
// tokens). The inner loop then takes four elements per `dot4I8Packed`, 16 per vec4 pair of
// loads (64 per four loads with 8 x 8 per thread), into integer sums that are scaled once per
// unit: a quarter of the float path's multiply-adds and no conversions. Like llama.cpp's
// quantized-activation products (q8_1), not bit-exact. Its workgroup memory is 44 bytes per
// token and 40 per row of the tile (10.5 KiB for 128 x 128), so every tile fits WebGPU's
// 16 KiB.
//
// Defines: TYPE_<ggml type> (one), F16, BM (32, 64 or 128) and BN (32, 64 or 128),
// TM8, RN8, INT_DOT, WG = BM * BN / (TM * RN).

#ifndef BM
#define BM 64
#endif
#ifndef BN
#define BN 64
#endif
#ifndef WG
#define WG 256
#endif

struct MatMulParams {
    n_in: u32,       // row length of W and X in elements
    n_rows: u32,     // rows of W this dispatch covers
    row_bytes: u32,  // bytes per row of W
    n_tokens: u32,   // rows of X and Y
    x_offset: u32,   // first element of X
    x_stride: u32,   // elements between rows of X
    y_offset: u32,   // element of Y receiving (token 0, row 0 of this part)
    y_stride: u32,   // elements between rows of Y
    w_row0: u32,     // first row of the part's buffer this dispatch covers (a row range of a
                     // stacked matrix)
    accumulate: u32, // 1: Y += the product (fuses a residual add), 0: Y = the product
    x8_tokens: u32,  // INT_DOT: records per unit in `x8` (QuantizeX's token capacity)
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: MatMulParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;        // (n_rows, row_bytes) raw GGUF blocks
#ifdef INT_DOT
@group(0) @binding(2) var<storage, read> x8: array<vec4<u32>>; // (units, x8_tokens, 3)
#else
@group(0) @binding(2) var<storage, read> x: array<f32>;        // (n_tokens, x_stride)
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // (n_tokens, y_stride)

#include "quant.wgsl"

#ifdef TM8
const TM: u32 = 8u;  // tokens per thread
#else
const TM: u32 = 4u;
#endif
#ifdef RN8
const RN: u32 = 8u;  // rows per thread
#else
const RN: u32 = 4u;
#endif
const TX: u32 = BN / RN;  // threads along the rows of the tile
const TY: u32 = BM / TM;  // threads along the tokens
const XV: u32 = BM / 4u;  // vec4s of tokens per k
const WV: u32 = BN / 4u;  // vec4s of rows per k
const TV: u32 = TM / 4u;  // vec4s of tokens per thread
const RV: u32 = RN / 4u;  // vec4s of rows per thread
#ifdef INT_DOT
// [g][token / 4] and [g][row / 4]: elements 4g .. 4g + 3 of the unit as four int8 in a word.
var<workgroup> xq: array<vec4<u32>, 8u * XV>;
var<workgroup> wq: array<vec4<u32>, 8u * WV>;
var<workgroup> xd: array<vec4<f32>, XV>;  // X's scale per token
var<workgroup> xi: array<vec4<i32>, XV>;  // sum of X's integers per token
var<workgroup> xf: array<vec4<f32>, XV>;  // exact sum of X per token
var<workgroup> wd: array<vec4<f32>, WV>;  // the unit's scale per row
var<workgroup> wm: array<vec4<f32>, WV>;  // the unit's minimum per row (Q4_K), else 0

// Word groups (4 elements each) of quarter j's two words: q_elems(j) / 4.
fn quarter_groups(j: u32) -> vec2<u32> {
    return q_elems(j) >> vec2<u32>(2u);
}

// One token's word of four integers against the same word of four rows.
fn dot_rows(a: u32, b: vec4<u32>) -> vec4<i32> {
    return vec4<i32>(dot4I8Packed(a, b.x), dot4I8Packed(a, b.y), dot4I8Packed(a, b.z), dot4I8Packed(a, b.w));
}

// A unit's integer sums `i` of one token with four rows as floats: the rows' scales `d` and
// minimums `mn`, the token's scale `dx`, zero-point correction `si` and exact sum `sf`.
fn scaled(i: vec4<i32>, d: vec4<f32>, mn: vec4<f32>, dx: f32, si: i32, sf: f32) -> vec4<f32> {
    return d * dx * vec4<f32>(i - vec4<i32>(si)) - mn * sf;
}
#else
var<workgroup> xs: array<vec4<f32>, 32u * XV>;  // [k][token / 4]
var<workgroup> ws: array<vec4<f32>, 32u * WV>;  // [k][row / 4]
#endif

// Writes rows row .. row + 3 of one token.
fn store4(tok: u32, row: u32, v: vec4<f32>) {
    if (tok >= p.n_tokens) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let r = row + j;
        if (r < p.n_rows) {
            let at = p.y_offset + tok * p.y_stride + r;
            if (p.accumulate != 0u) {
                y[at] += v[j];
            } else {
                y[at] = v[j];
            }
        }
    }
}

// Writes rows row .. row + 3 of tokens tok .. tok + 3.
fn store16(tok: u32, row: u32, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>) {
    store4(tok, row, a0);
    store4(tok + 1u, row, a1);
    store4(tok + 2u, row, a2);
    store4(tok + 3u, row, a3);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let row0 = wid.x * BN;
    let tok0 = wid.y * BM;
    let tx = t % TX;
    let ty = t / TX;
    let units = (p.n_in + 31u) / 32u;
    // acc_i: token tok0 + TM ty + i, rows row0 + RN tx .. + 3; with RN8, racc_i: the next 4 rows.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
#ifdef TM8
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
#endif
#ifdef RN8
    var racc0 = vec4<f32>(0.0);
    var racc1 = vec4<f32>(0.0);
    var racc2 = vec4<f32>(0.0);
    var racc3 = vec4<f32>(0.0);
#ifdef TM8
    var racc4 = vec4<f32>(0.0);
    var racc5 = vec4<f32>(0.0);
    var racc6 = vec4<f32>(0.0);
    var racc7 = vec4<f32>(0.0);
#endif
#endif
    for (var u = 0u; u < units; u++) {
#ifdef INT_DOT
        // Weights: quarter-unit job q = row * 4 + j, two words of int8 quants; j = 0 also
        // stores the row's scale and minimum.
        for (var q = t; q < 4u * BN; q += WG) {
            let r = q >> 2u;
            let j = q & 3u;
            let row_base = (p.w_row0 + min(row0 + r, p.n_rows - 1u)) * p.row_bytes;
            let g = quarter_groups(j);
            let col = r >> 2u;
            let c = r & 3u;
            let qw = qi_quants(row_base, u, j);
            wq[g.x * WV + col][c] = qw.x;
            wq[g.y * WV + col][c] = qw.y;
            if (j == 0u) {
                let sc = qi_scale(row_base, u);
                wd[col][c] = sc.x;
                wm[col][c] = sc.y;
            }
        }
        // X: record part k of token tl (words 4k .. 4k + 3 of its integers, or for k = 2 its
        // scale and sums). Tokens past the batch repeat the last one (never stored).
        for (var s = t; s < 3u * BM; s += WG) {
            let tl = s / 3u;
            let k = s - 3u * tl;
            let tok = min(tok0 + tl, p.n_tokens - 1u);
            let r = x8[(u * p.x8_tokens + tok) * 3u + k];
            let col = tl >> 2u;
            let c = tl & 3u;
            if (k == 2u) {
                xd[col][c] = bitcast<f32>(r.x);
                xi[col][c] = bitcast<i32>(r.y);
                xf[col][c] = bitcast<f32>(r.z);
            } else {
                let g = 4u * k;
                xq[g * XV + col][c] = r.x;
                xq[(g + 1u) * XV + col][c] = r.y;
                xq[(g + 2u) * XV + col][c] = r.z;
                xq[(g + 3u) * XV + col][c] = r.w;
            }
        }
        workgroupBarrier();
        if (tok0 + TM * ty < p.n_tokens) {
            // i_k: token k of the thread's first four, its first four rows, in integers; i4..i7
            // the next four tokens (TM8); j_k the next four rows (RN8).
            var i0 = vec4<i32>(0);
            var i1 = vec4<i32>(0);
            var i2 = vec4<i32>(0);
            var i3 = vec4<i32>(0);
#ifdef TM8
            var i4 = vec4<i32>(0);
            var i5 = vec4<i32>(0);
            var i6 = vec4<i32>(0);
            var i7 = vec4<i32>(0);
#endif
#ifdef RN8
            var j0 = vec4<i32>(0);
            var j1 = vec4<i32>(0);
            var j2 = vec4<i32>(0);
            var j3 = vec4<i32>(0);
#ifdef TM8
            var j4 = vec4<i32>(0);
            var j5 = vec4<i32>(0);
            var j6 = vec4<i32>(0);
            var j7 = vec4<i32>(0);
#endif
#endif
            for (var g = 0u; g < 8u; g++) {
                let b = wq[g * WV + RV * tx];
                let a = xq[g * XV + TV * ty];
                i0 += dot_rows(a.x, b);
                i1 += dot_rows(a.y, b);
                i2 += dot_rows(a.z, b);
                i3 += dot_rows(a.w, b);
#ifdef TM8
                let a2 = xq[g * XV + TV * ty + 1u];
                i4 += dot_rows(a2.x, b);
                i5 += dot_rows(a2.y, b);
                i6 += dot_rows(a2.z, b);
                i7 += dot_rows(a2.w, b);
#endif
#ifdef RN8
                let b2 = wq[g * WV + RV * tx + 1u];
                j0 += dot_rows(a.x, b2);
                j1 += dot_rows(a.y, b2);
                j2 += dot_rows(a.z, b2);
                j3 += dot_rows(a.w, b2);
#ifdef TM8
                j4 += dot_rows(a2.x, b2);
                j5 += dot_rows(a2.y, b2);
                j6 += dot_rows(a2.z, b2);
                j7 += dot_rows(a2.w, b2);
#endif
#endif
            }
            let d = wd[RV * tx];
            let mn = wm[RV * tx];
            let dx = xd[TV * ty];
            let si = xi[TV * ty] * QI_OFFSET;
            let sf = xf[TV * ty];
            acc0 += scaled(i0, d, mn, dx.x, si.x, sf.x);
            acc1 += scaled(i1, d, mn, dx.y, si.y, sf.y);
            acc2 += scaled(i2, d, mn, dx.z, si.z, sf.z);
            acc3 += scaled(i3, d, mn, dx.w, si.w, sf.w);
#ifdef TM8
            let dx2 = xd[TV * ty + 1u];
            let si2 = xi[TV * ty + 1u] * QI_OFFSET;
            let sf2 = xf[TV * ty + 1u];
            acc4 += scaled(i4, d, mn, dx2.x, si2.x, sf2.x);
            acc5 += scaled(i5, d, mn, dx2.y, si2.y, sf2.y);
            acc6 += scaled(i6, d, mn, dx2.z, si2.z, sf2.z);
            acc7 += scaled(i7, d, mn, dx2.w, si2.w, sf2.w);
#endif
#ifdef RN8
            let d2 = wd[RV * tx + 1u];
            let mn2 = wm[RV * tx + 1u];
            racc0 += scaled(j0, d2, mn2, dx.x, si.x, sf.x);
            racc1 += scaled(j1, d2, mn2, dx.y, si.y, sf.y);
            racc2 += scaled(j2, d2, mn2, dx.z, si.z, sf.z);
            racc3 += scaled(j3, d2, mn2, dx.w, si.w, sf.w);
#ifdef TM8
            racc4 += scaled(j4, d2, mn2, dx2.x, si2.x, sf2.x);
            racc5 += scaled(j5, d2, mn2, dx2.y, si2.y, sf2.y);
            racc6 += scaled(j6, d2, mn2, dx2.z, si2.z, sf2.z);
            racc7 += scaled(j7, d2, mn2, dx2.w, si2.w, sf2.w);
#endif
#endif
        }
        workgroupBarrier();
#else
        // Weights: quarter-unit job q = row * 4 + j. Rows past the end repeat the last row
        // (their products are never stored).
        for (var q = t; q < 4u * BN; q += WG) {
            let r = q >> 2u;
            let j = q & 3u;
            let row = min(row0 + r, p.n_rows - 1u);
            let d = dequant_q((p.w_row0 + row) * p.row_bytes, u, j, p.n_in);
            let e = q_elems(j);
            let col = r >> 2u;
            let c = r & 3u;
            for (var i = 0u; i < 4u; i++) {
                ws[(e.x + i) * WV + col][c] = f32(d[0][i]);
                ws[(e.y + i) * WV + col][c] = f32(d[1][i]);
            }
        }
        // X: job s = token * 8 + k4, four consecutive elements each.
        for (var s = t; s < 8u * BM; s += WG) {
            let tl = s >> 3u;
            let k4 = (s & 7u) * 4u;
            let tok = tok0 + tl;
            let e = u * 32u + k4;
            let base = p.x_offset + min(tok, p.n_tokens - 1u) * p.x_stride + e;
            let col = tl >> 2u;
            let c = tl & 3u;
            for (var i = 0u; i < 4u; i++) {
                let v = x[base + i];
                xs[(k4 + i) * XV + col][c] = select(0.0, v, tok < p.n_tokens && e + i < p.n_in);
            }
        }
        workgroupBarrier();
        // Threads whose four tokens are all past the batch skip the products: a short prompt in
        // a 64-token tile costs the staging, not 64 tokens of arithmetic.
        if (tok0 + TM * ty < p.n_tokens) {
            for (var k = 0u; k < 32u; k++) {
#ifdef RN8
                let b = ws[k * WV + 2u * tx];
                let b2 = ws[k * WV + 2u * tx + 1u];
#else
                let b = ws[k * WV + tx];
#endif
#ifdef TM8
                let a = xs[k * XV + 2u * ty];
                let a2 = xs[k * XV + 2u * ty + 1u];
                acc4 += a2.x * b;
                acc5 += a2.y * b;
                acc6 += a2.z * b;
                acc7 += a2.w * b;
#ifdef RN8
                racc4 += a2.x * b2;
                racc5 += a2.y * b2;
                racc6 += a2.z * b2;
                racc7 += a2.w * b2;
#endif
#else
                let a = xs[k * XV + ty];
#endif
                acc0 += a.x * b;
                acc1 += a.y * b;
                acc2 += a.z * b;
                acc3 += a.w * b;
#ifdef RN8
                racc0 += a.x * b2;
                racc1 += a.y * b2;
                racc2 += a.z * b2;
                racc3 += a.w * b2;
#endif
            }
        }
        workgroupBarrier();
#endif
    }
    let tok = tok0 + TM * ty;
    let row = row0 + RN * tx;
    store16(tok, row, acc0, acc1, acc2, acc3);
#ifdef TM8
    store16(tok + 4u, row, acc4, acc5, acc6, acc7);
#endif
#ifdef RN8
    store16(tok, row + 4u, racc0, racc1, racc2, racc3);
#ifdef TM8
    store16(tok + 4u, row + 4u, racc4, racc5, racc6, racc7);
#endif
#endif
}
