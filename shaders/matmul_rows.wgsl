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
// RB (rows per invocation) 2, 4 or 8 (RB2 set for all three, RB4 for 4 and 8, RB8 for 8): each
// invocation owns RB rows (row + k * WG of its workgroup's RB * WG) and loads each unit of X
// once for all of them, dividing X's loads per product by RB (they are the cost on both CPU
// drivers; 8 rows pay where the lanes cannot share X through subgroups).
//
// The host always sets MASKED_BYTES: Q4_0, Q5_0 and Q8_0 units are dequantized without shifts,
// the K-quants' values built in place in a word and converted the same way (quant.wgsl), which
// the CPU drivers run faster (SwiftShader 35-45%; Q4_K 15%, Q6_K 32%) for the same values.
//
// X8 (`MatMul::new_int8`, the load option `matmul_int_dot`): X comes quantized, as
// `quantize.wgsl` writes it (each token's 32-element unit as 32 signed bytes and one scale,
// llama.cpp's q8_1), and each unit of X is read as nine words instead of 32 floats. Every
// storage load with an offset computed at run time is a gather lane by lane on SwiftShader (a
// branch, a load and an insert per lane and component, even where the lanes' offsets are
// equal), so X's loads were 45% of its time there; a word of four bytes is one such load.
// The bytes are turned into floats once per unit and token for all the RB rows, so the
// products stay in floats and take any weight type.
//
// Defines: TYPE_<ggml type> (one), WG (invocations per workgroup), TB (tokens per invocation:
// 4, 8 or 16; TB8 is set for 8 and 16, TB16 for 16), RB, RB2, RB4, RB8, X4, X8, SUBGROUPS,
// SGW8, MASKED_BYTES (X8 excludes X4 and SUBGROUPS).

#ifndef WG
#define WG 16
#endif
#ifndef TB
#define TB 8
#endif
#ifndef RB
#define RB 1
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
    x8_tokens: u32,  // X8: records per unit of x8
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: MatMulParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;        // (n_rows, row_bytes) raw GGUF blocks
#ifdef X4
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;  // (n_tokens, x_stride) / 4
#else
#ifdef X8
@group(0) @binding(2) var<storage, read> x8: array<vec4<u32>>; // (units, x8_tokens, 3): quantize.wgsl's records
#else
@group(0) @binding(2) var<storage, read> x: array<f32>;        // (n_tokens, x_stride)
#endif
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // (n_tokens, y_stride)

#include "quant.wgsl"

// A unit of X: 32 elements as eight vec4.
alias XUnit = array<vec4<f32>, 8>;

#ifdef X8
// The unit of X in the record whose first vec4 is `r` (`rows_of` and `unit_at` below): its
// signed bytes placed where they lie in their words (`placed_signed_f`), scaled by the unit's
// scale times BYTE_SCALE in one multiply per four.
fn x_unit(r: u32) -> XUnit {
    let a = x8[r];
    let b = x8[r + 1u];
    let s = bitcast<f32>(x8[r + 2u].x) * BYTE_SCALE;
    return XUnit(placed_signed_f(a.x) * s, placed_signed_f(a.y) * s, placed_signed_f(a.z) * s, placed_signed_f(a.w) * s,
        placed_signed_f(b.x) * s, placed_signed_f(b.y) * s, placed_signed_f(b.z) * s, placed_signed_f(b.w) * s);
}

// The offset of unit `u` in `x_unit`'s argument (records are unit-major).
fn unit_at(u: u32) -> u32 {
    return u * p.x8_tokens * 3u;
}
#else
// The offset of unit `u` in `x_unit`'s argument: its first element.
fn unit_at(u: u32) -> u32 {
    return u * 32u;
}

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

// The unit of X from element `i` on.
fn x_unit(i: u32) -> XUnit {
#ifdef SGW8
    let v = x4(i + 4u * (lane & 7u));
    return XUnit(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
#else
    let v = x4(i + 4u * (lane & 3u));
    let v2 = x4(i + 16u + 4u * (lane & 3u));
    return XUnit(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        subgroupBroadcast(v2, 0u), subgroupBroadcast(v2, 1u), subgroupBroadcast(v2, 2u), subgroupBroadcast(v2, 3u));
#endif
}
#else
// The unit of X from element `i` on.
fn x_unit(i: u32) -> XUnit {
    return XUnit(x4(i), x4(i + 4u), x4(i + 8u), x4(i + 12u), x4(i + 16u), x4(i + 20u), x4(i + 24u), x4(i + 28u));
}
#endif
#endif

// A unit of weights dotted with a unit of X.
fn dot_unit(q: Unit, v: XUnit) -> f32 {
    let s0 = dot(vec4<f32>(q[0]), v[0]) + dot(vec4<f32>(q[1]), v[1]);
    let s1 = dot(vec4<f32>(q[2]), v[2]) + dot(vec4<f32>(q[3]), v[3]);
    let s2 = dot(vec4<f32>(q[4]), v[4]) + dot(vec4<f32>(q[5]), v[5]);
    let s3 = dot(vec4<f32>(q[6]), v[6]) + dot(vec4<f32>(q[7]), v[7]);
    return (s0 + s1) + (s2 + s3);
}

// An invocation's rows are row + k * WG of its workgroup's RB * WG, k < RB: `a` (k = 0), with
// RB2 `b` (1), with RB4 `c` (2) and `d` (3), with RB8 `e` .. `h` (4 .. 7). Their dequantized
// units for one step:
struct Units {
    a: Unit,
#ifdef RB2
    b: Unit,
#endif
#ifdef RB4
    c: Unit,
    d: Unit,
#endif
#ifdef RB8
    e: Unit,
    f: Unit,
    g: Unit,
    h: Unit,
#endif
}

// Their sums for four tokens.
struct Sums {
    a: vec4<f32>,
#ifdef RB2
    b: vec4<f32>,
#endif
#ifdef RB4
    c: vec4<f32>,
    d: vec4<f32>,
#endif
#ifdef RB8
    e: vec4<f32>,
    f: vec4<f32>,
    g: vec4<f32>,
    h: vec4<f32>,
#endif
}

fn zero_sums() -> Sums {
    let z = vec4<f32>(0.0);
#ifdef RB8
    return Sums(z, z, z, z, z, z, z, z);
#else
#ifdef RB4
    return Sums(z, z, z, z);
#else
#ifdef RB2
    return Sums(z, z);
#else
    return Sums(z);
#endif
#endif
#endif
}

// One row's unit against four tokens' units of X.
fn dot4_v(q: Unit, v0: XUnit, v1: XUnit, v2: XUnit, v3: XUnit) -> vec4<f32> {
    return vec4<f32>(dot_unit(q, v0), dot_unit(q, v1), dot_unit(q, v2), dot_unit(q, v3));
}

// The rows' units `q` against four tokens whose rows of X start at elements `o` (plus the
// unit's offset `e`): each unit of X is loaded once for all the rows.
fn dot4_x(q: Units, o: vec4<u32>, e: u32) -> Sums {
    let v0 = x_unit(o.x + e);
    let v1 = x_unit(o.y + e);
    let v2 = x_unit(o.z + e);
    let v3 = x_unit(o.w + e);
#ifdef RB8
    return Sums(dot4_v(q.a, v0, v1, v2, v3), dot4_v(q.b, v0, v1, v2, v3), dot4_v(q.c, v0, v1, v2, v3), dot4_v(q.d, v0, v1, v2, v3),
        dot4_v(q.e, v0, v1, v2, v3), dot4_v(q.f, v0, v1, v2, v3), dot4_v(q.g, v0, v1, v2, v3), dot4_v(q.h, v0, v1, v2, v3));
#else
#ifdef RB4
    return Sums(dot4_v(q.a, v0, v1, v2, v3), dot4_v(q.b, v0, v1, v2, v3), dot4_v(q.c, v0, v1, v2, v3), dot4_v(q.d, v0, v1, v2, v3));
#else
#ifdef RB2
    return Sums(dot4_v(q.a, v0, v1, v2, v3), dot4_v(q.b, v0, v1, v2, v3));
#else
    return Sums(dot4_v(q.a, v0, v1, v2, v3));
#endif
#endif
#endif
}

fn add(s: Sums, d: Sums) -> Sums {
#ifdef RB8
    return Sums(s.a + d.a, s.b + d.b, s.c + d.c, s.d + d.d, s.e + d.e, s.f + d.f, s.g + d.g, s.h + d.h);
#else
#ifdef RB4
    return Sums(s.a + d.a, s.b + d.b, s.c + d.c, s.d + d.d);
#else
#ifdef RB2
    return Sums(s.a + d.a, s.b + d.b);
#else
    return Sums(s.a + d.a);
#endif
#endif
#endif
}

// The units of rows whose first bytes are `b` at step `u`.
fn units_at(b: vec4<u32>, bh: vec4<u32>, u: u32) -> Units {
#ifdef RB8
    return Units(dequant_unit(b.x, u, p.n_in), dequant_unit(b.y, u, p.n_in), dequant_unit(b.z, u, p.n_in), dequant_unit(b.w, u, p.n_in),
        dequant_unit(bh.x, u, p.n_in), dequant_unit(bh.y, u, p.n_in), dequant_unit(bh.z, u, p.n_in), dequant_unit(bh.w, u, p.n_in));
#else
#ifdef RB4
    return Units(dequant_unit(b.x, u, p.n_in), dequant_unit(b.y, u, p.n_in), dequant_unit(b.z, u, p.n_in), dequant_unit(b.w, u, p.n_in));
#else
#ifdef RB2
    return Units(dequant_unit(b.x, u, p.n_in), dequant_unit(b.y, u, p.n_in));
#else
    return Units(dequant_unit(b.x, u, p.n_in));
#endif
#endif
#endif
}

// Offsets in X of tokens tok .. tok + 3 (elements; with X8 vec4 records in a unit); tokens
// past the batch repeat the last one (their sums are never stored).
fn rows_of(tok: u32) -> vec4<u32> {
    let tk = min(vec4<u32>(tok) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n_tokens - 1u));
#ifdef X8
    return tk * 3u;
#else
    return vec4<u32>(p.x_offset) + tk * p.x_stride;
#endif
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

// Stores the rows' sums `s` of tokens tok .. tok + 3 (each row only where it exists).
fn store_sums(tok: u32, row: u32, s: Sums) {
    store4(tok, row, s.a);
#ifdef RB2
    if (row + WG < p.n_rows) {
        store4(tok, row + WG, s.b);
    }
#endif
#ifdef RB4
    if (row + 2u * WG < p.n_rows) {
        store4(tok, row + 2u * WG, s.c);
    }
    if (row + 3u * WG < p.n_rows) {
        store4(tok, row + 3u * WG, s.d);
    }
#endif
#ifdef RB8
    if (row + 4u * WG < p.n_rows) {
        store4(tok, row + 4u * WG, s.e);
    }
    if (row + 5u * WG < p.n_rows) {
        store4(tok, row + 5u * WG, s.f);
    }
    if (row + 6u * WG < p.n_rows) {
        store4(tok, row + 6u * WG, s.g);
    }
    if (row + 7u * WG < p.n_rows) {
        store4(tok, row + 7u * WG, s.h);
    }
#endif
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
    // Rows row + k * WG of the workgroup's RB * WG; rows past the end repeat the last row
    // (never stored), so the loop has no branch.
    let row = wid.x * (RB * WG) + t;
    let rows = min(vec4<u32>(row) + vec4<u32>(0u, WG, 2u * WG, 3u * WG), vec4<u32>(p.n_rows - 1u));
    let bases = (vec4<u32>(p.w_row0) + rows) * p.row_bytes;
    let rows_h = min(vec4<u32>(row) + vec4<u32>(4u * WG, 5u * WG, 6u * WG, 7u * WG), vec4<u32>(p.n_rows - 1u));
    let bases_h = (vec4<u32>(p.w_row0) + rows_h) * p.row_bytes;
    let tok0 = wid.y * TB;
    let units = (p.n_in + 31u) / 32u;
    let o0 = rows_of(tok0);
    var a0 = zero_sums();
#ifdef TB8
    let o1 = rows_of(tok0 + 4u);
    var a1 = a0;
#endif
#ifdef TB16
    let o2 = rows_of(tok0 + 8u);
    let o3 = rows_of(tok0 + 12u);
    var a2 = a0;
    var a3 = a0;
#endif
    for (var u = 0u; u < units; u++) {
        let e = unit_at(u);
        let q = units_at(bases, bases_h, u);
        a0 = add(a0, dot4_x(q, o0, e));
#ifdef TB8
        a1 = add(a1, dot4_x(q, o1, e));
#endif
#ifdef TB16
        a2 = add(a2, dot4_x(q, o2, e));
        a3 = add(a3, dot4_x(q, o3, e));
#endif
    }
    if (row >= p.n_rows) {
        return;
    }
    store_sums(tok0, row, a0);
#ifdef TB8
    store_sums(tok0 + 4u, row, a1);
#endif
#ifdef TB16
    store_sums(tok0 + 8u, row, a2);
    store_sums(tok0 + 12u, row, a3);
#endif
}
