// Matrix-vector product for decode: y[y_offset + r] = dot(W[r, :], x[x_offset .. x_offset + n_in])
// (or += with ACCUMULATE, e.g. to add the residual in place) for the rows of one part of a
// QuantMatrix.
//
// Each workgroup owns ROWS consecutive rows. Its WG threads walk the row in 32-element units
// (thread t takes units t, t + WG, ...): each unit of x is loaded once and reused for all ROWS
// rows, each weight block is read once, dequantized in registers and dotted in f32. The per-
// thread sums are reduced with subgroupAdd plus a small workgroup array (SUBGROUPS), or with a
// workgroup-memory tree.
//
// SWIGLU fuses the feed-forward gate: the matrix holds the gate rows followed by the up rows
// (stacked at load time), and y[r] = silu(gate_r . x) * (up_r . x) with up_r = row r + up_rows.
// x is then loaded once for both matrices and the (n_ff)-wide gate and up vectors never touch
// memory.
//
// Defines: TYPE_<ggml type> (one), WG (power of two), ROWS, F16, SUBGROUPS, ACCUMULATE, SWIGLU.

#ifndef WG
#define WG 64
#endif
#ifndef ROWS
#define ROWS 4
#endif
// Sums per thread: one per row, or a gate and an up sum per row.
#ifdef SWIGLU
const NACC: u32 = 2u * ROWS;
#else
const NACC: u32 = ROWS;
#endif

struct MatVecParams {
    n_in: u32,       // row length in elements
    n_rows: u32,     // rows in this part (SWIGLU: output rows = gate rows)
    row_bytes: u32,  // bytes per row (whole blocks)
    x_offset: u32,   // first element of x
    y_offset: u32,   // element of y receiving row 0 of this part
    groups_x: u32,   // workgroups along x in the dispatch grid (rows may need a 2D grid)
    up_rows: u32,    // SWIGLU: index of the first up row (= n_ff); else 0
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: MatVecParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;        // (n_rows, row_bytes) raw GGUF blocks
@group(0) @binding(2) var<storage, read> x: array<f32>;        // (x_offset + n_in)
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // (y_offset + n_rows)

#include "quant.wgsl"

var<workgroup> partial: array<f32, NACC * WG>;

fn load_x4(i: u32, end: u32) -> vec4<f32> {
    let idx = vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u);
    let v = vec4<f32>(x[idx.x], x[idx.y], x[idx.z], x[idx.w]);
    return select(vec4<f32>(0.0), v, idx < vec4<u32>(end));
}

fn dot_unit(row: u32, u: u32, xv: ptr<function, array<vec4<f32>, 8>>) -> f32 {
    let wu = dequant_unit(row * p.row_bytes, u, p.n_in);
    var s = 0.0;
    for (var k = 0u; k < 8u; k++) {
        s += dot(vec4<f32>(wu[k]), (*xv)[k]);
    }
    return s;
}

// Writes output row `row` from its reduced sums: `g` (the row's dot product, or the gate's) and
// `v` (the up row's; unused without SWIGLU).
fn store_row(row: u32, g: f32, v: f32) {
    if (row >= p.n_rows) {
        return;
    }
#ifdef SWIGLU
    let s = g / (1.0 + exp(-g)) * v;
#else
    let s = g;
#endif
#ifdef ACCUMULATE
    y[p.y_offset + row] += s;
#else
    y[p.y_offset + row] = s;
#endif
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
#ifdef SUBGROUPS
    @builtin(subgroup_size) sg_size: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
#endif
) {
    let row0 = (wid.x + wid.y * p.groups_x) * ROWS;
    let units = (p.n_in + 31u) / 32u;
    let x_end = p.x_offset + p.n_in;
    // acc[r]: row r (or gate row r); acc[ROWS + r]: up row r. (A vec4 pair instead of this array
    // was not faster on an H100, unlike the accumulators in matmul.wgsl.)
    var acc: array<f32, NACC>;
    for (var u = t; u < units; u += WG) {
        var xv: array<vec4<f32>, 8>;
        for (var k = 0u; k < 8u; k++) {
            xv[k] = load_x4(p.x_offset + u * 32u + 4u * k, x_end);
        }
        for (var r = 0u; r < ROWS; r++) {
            let row = row0 + r;
            if (row < p.n_rows) {
                acc[r] += dot_unit(row, u, &xv);
#ifdef SWIGLU
                acc[ROWS + r] += dot_unit(row + p.up_rows, u, &xv);
#endif
            }
        }
    }

#ifdef SUBGROUPS
    // Subgroups are assumed to be laid out along local_invocation_index, as on every
    // implementation of 1D workgroups we know of.
    let sg_id = t / sg_size;
    let n_sg = (WG + sg_size - 1u) / sg_size;
    for (var r = 0u; r < NACC; r++) {
        let s = subgroupAdd(acc[r]);
        if (sg_lane == 0u) {
            partial[sg_id * NACC + r] = s;
        }
    }
    workgroupBarrier();
    if (t < ROWS) {
        var g = 0.0;
        var v = 0.0;
        for (var i = 0u; i < n_sg; i++) {
            g += partial[i * NACC + t];
#ifdef SWIGLU
            v += partial[i * NACC + ROWS + t];
#endif
        }
        store_row(row0 + t, g, v);
    }
#else
    for (var r = 0u; r < NACC; r++) {
        partial[r * WG + t] = acc[r];
    }
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (t < stride) {
            for (var r = 0u; r < NACC; r++) {
                partial[r * WG + t] += partial[r * WG + t + stride];
            }
        }
        workgroupBarrier();
    }
    if (t < ROWS) {
#ifdef SWIGLU
        store_row(row0 + t, partial[t * WG], partial[(ROWS + t) * WG]);
#else
        store_row(row0 + t, partial[t * WG], 0.0);
#endif
    }
#endif
}
