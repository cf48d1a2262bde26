// Matrix-matrix product for prefill on CPU adapters: Y[t, r] = dot(W[r, :], X[t, :]) (or +=
// when p.accumulate is set), the same product and bindings as matmul.wgsl laid out for a CPU.
//
// A CPU driver (lavapipe, SwiftShader) runs a workgroup's invocations as the lanes of SIMD
// registers, one group of lanes after another, and pays for every workgroup barrier by switching
// all of them. So here there is no workgroup memory and no barrier: each invocation owns one
// weight row (row wid.x * WG + t) and TB tokens (from wid.y * TB), and walks the row's
// 32-element units, dequantizing each unit once (`dequant_unit`, quant.wgsl) and multiplying it
// with the unit of every one of its TB tokens. The tokens are the same for every lane of a
// workgroup, so every lane needs the same X, which stays in the cache between rows; only the
// weight loads differ per lane. Lavapipe still issues a storage load lane by lane, one bounds
// check per word, whatever the address, so with SUBGROUPS (below) the lanes load a unit of X
// between them instead of each loading all of it. The dequantization is paid once per TB
// tokens instead of once per token as in the decode mat-vec.
//
// Arithmetic is f32 whatever the context's path (this file never defines F16: the CPU drivers
// have no faster f16).
//
// X4 (x_offset, x_stride and n_in multiples of 4) reads X as vec4: one 16-byte load for four
// elements. Rows of the 1-element types (F32, F16, BF16) may end inside a unit: dequant_unit
// gives zeros past n_in, and the X elements read there are finite values of the same buffer
// (the next token's, or a clamped index), so the products there are zero.
//
// Defines: TYPE_<ggml type> (one), WG (invocations: rows per workgroup), TB (tokens per
// invocation: 4, 8 or 16; TB8 is set for 8 and 16, TB16 for 16), X4, SUBGROUPS, SGW8.

#ifndef WG
#define WG 16
#endif
#ifndef TB
#define TB 8
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
    w_row0: u32,     // first row of the part's buffer this dispatch covers
    accumulate: u32, // 1: Y += the product (fuses a residual add), 0: Y = the product
    x8_tokens: u32,  // unused here (the integer product of matmul.wgsl)
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: MatMulParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;        // (n_rows, row_bytes) raw GGUF blocks
#ifdef X4
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;  // (n_tokens, x_stride) / 4
#else
@group(0) @binding(2) var<storage, read> x: array<f32>;        // (n_tokens, x_stride)
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // (n_tokens, y_stride)

#include "quant.wgsl"

// X[i .. i + 4] (i a multiple of 4 with X4).
fn x4(i: u32) -> vec4<f32> {
#ifdef X4
    return x[i >> 2u];
#else
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
#endif
}

#ifdef SUBGROUPS
// SUBGROUPS (subgroups of at least 4 lanes; SGW8: of at least 8): the lanes of a subgroup load a token's
// unit of X between them, SGW vec4s per load instruction instead of one (the CPU drivers issue
// a storage load lane by lane), and pass the pieces to each other (`subgroupBroadcast` of a
// constant lane: a register shuffle there). `lane` is the subgroup invocation id.
var<private> lane: u32;

fn dot_unit_x(q: Unit, i: u32) -> f32 {
#ifdef SGW8
    let v = x4(i + 4u * (lane & 7u));
    let s0 = dot(vec4<f32>(q[0]), subgroupBroadcast(v, 0u)) + dot(vec4<f32>(q[1]), subgroupBroadcast(v, 1u));
    let s1 = dot(vec4<f32>(q[2]), subgroupBroadcast(v, 2u)) + dot(vec4<f32>(q[3]), subgroupBroadcast(v, 3u));
    let s2 = dot(vec4<f32>(q[4]), subgroupBroadcast(v, 4u)) + dot(vec4<f32>(q[5]), subgroupBroadcast(v, 5u));
    let s3 = dot(vec4<f32>(q[6]), subgroupBroadcast(v, 6u)) + dot(vec4<f32>(q[7]), subgroupBroadcast(v, 7u));
#else
    let v = x4(i + 4u * (lane & 3u));
    let v2 = x4(i + 16u + 4u * (lane & 3u));
    let s0 = dot(vec4<f32>(q[0]), subgroupBroadcast(v, 0u)) + dot(vec4<f32>(q[1]), subgroupBroadcast(v, 1u));
    let s1 = dot(vec4<f32>(q[2]), subgroupBroadcast(v, 2u)) + dot(vec4<f32>(q[3]), subgroupBroadcast(v, 3u));
    let s2 = dot(vec4<f32>(q[4]), subgroupBroadcast(v2, 0u)) + dot(vec4<f32>(q[5]), subgroupBroadcast(v2, 1u));
    let s3 = dot(vec4<f32>(q[6]), subgroupBroadcast(v2, 2u)) + dot(vec4<f32>(q[7]), subgroupBroadcast(v2, 3u));
#endif
    return (s0 + s1) + (s2 + s3);
}
#else
// A unit of weights dotted with the unit of X from element `i` on.
fn dot_unit_x(q: Unit, i: u32) -> f32 {
    let s0 = dot(vec4<f32>(q[0]), x4(i)) + dot(vec4<f32>(q[1]), x4(i + 4u));
    let s1 = dot(vec4<f32>(q[2]), x4(i + 8u)) + dot(vec4<f32>(q[3]), x4(i + 12u));
    let s2 = dot(vec4<f32>(q[4]), x4(i + 16u)) + dot(vec4<f32>(q[5]), x4(i + 20u));
    let s3 = dot(vec4<f32>(q[6]), x4(i + 24u)) + dot(vec4<f32>(q[7]), x4(i + 28u));
    return (s0 + s1) + (s2 + s3);
}
#endif

// The unit against four tokens whose rows of X start at elements `o` (plus the unit's offset `e`).
fn dot4_x(q: Unit, o: vec4<u32>, e: u32) -> vec4<f32> {
    return vec4<f32>(dot_unit_x(q, o.x + e), dot_unit_x(q, o.y + e), dot_unit_x(q, o.z + e), dot_unit_x(q, o.w + e));
}

// Element offsets in X of tokens tok .. tok + 3; tokens past the batch repeat the last one
// (their sums are never stored).
fn rows_of(tok: u32) -> vec4<u32> {
    let tk = min(vec4<u32>(tok) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n_tokens - 1u));
    return vec4<u32>(p.x_offset) + tk * p.x_stride;
}

// Stores one row's sums `v` of tokens tok .. tok + 3.
fn store4(tok: u32, row: u32, v: vec4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        if (tok + j < p.n_tokens) {
            let at = p.y_offset + (tok + j) * p.y_stride + row;
            if (p.accumulate != 0u) {
                y[at] += v[j];
            } else {
                y[at] = v[j];
            }
        }
    }
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
#ifdef SUBGROUPS
    @builtin(subgroup_invocation_id) sg_lane: u32,
#endif
) {
#ifdef SUBGROUPS
    lane = sg_lane;
#endif
    let row = wid.x * WG + t;
    // Rows past the end repeat the last row (never stored), so the loop has no branch.
    let base = (p.w_row0 + min(row, p.n_rows - 1u)) * p.row_bytes;
    let tok0 = wid.y * TB;
    let units = (p.n_in + 31u) / 32u;
    let o0 = rows_of(tok0);
    var a0 = vec4<f32>(0.0);
#ifdef TB8
    let o1 = rows_of(tok0 + 4u);
    var a1 = vec4<f32>(0.0);
#endif
#ifdef TB16
    let o2 = rows_of(tok0 + 8u);
    let o3 = rows_of(tok0 + 12u);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
#endif
    for (var u = 0u; u < units; u++) {
        let q = dequant_unit(base, u, p.n_in);
        let e = u * 32u;
        a0 += dot4_x(q, o0, e);
#ifdef TB8
        a1 += dot4_x(q, o1, e);
#endif
#ifdef TB16
        a2 += dot4_x(q, o2, e);
        a3 += dot4_x(q, o3, e);
#endif
    }
    if (row >= p.n_rows) {
        return;
    }
    store4(tok0, row, a0);
#ifdef TB8
    store4(tok0 + 4u, row, a1);
#endif
#ifdef TB16
    store4(tok0 + 8u, row, a2);
    store4(tok0 + 12u, row, a3);
#endif
}
