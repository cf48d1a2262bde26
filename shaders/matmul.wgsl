// Matrix-matrix product for prefill: Y[t, r] = dot(W[r, :], X[t, :]) (or += with ACCUMULATE)
// for n_tokens rows of X and the rows of one part of a QuantMatrix.
//
// A workgroup of 64 threads computes a 32-token x 32-row tile of Y, each thread a 4 x 4 block
// (tokens ty + 8i, rows tx + 8j, strided so neighbouring threads read neighbouring words of the
// tiles). The K dimension is walked in 32-element units: per unit, threads 0..31 each dequantize
// one weight row's unit into workgroup memory (f16 in F16 variants, halving its size) while
// threads 32..63 stage the 32 x 32 slice of X; every dequantized weight is then reused for 32
// tokens. The accumulators are four vec4 variables, not an indexed array: with an array the
// NVIDIA Vulkan compiler kept them in local memory and the kernel ran 7x slower on an H100.
//
// Defines: TYPE_<ggml type> (one), F16, ACCUMULATE.

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
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: MatMulParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;        // (n_rows, row_bytes) raw GGUF blocks
@group(0) @binding(2) var<storage, read> x: array<f32>;        // (n_tokens, x_stride)
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // (n_tokens, y_stride)

#include "quant.wgsl"

// Row pitch 33 keeps the column reads of the compute loop off a single bank.
const PITCH: u32 = 33u;
var<workgroup> xs: array<f32, 1056>;  // (32 tokens, PITCH)
var<workgroup> ws: array<wt, 1056>;   // (32 rows, PITCH)

// Writes rows row, row + 8, row + 16, row + 24 of one token.
fn store_tile(tok: u32, row: u32, v: vec4<f32>) {
    if (tok >= p.n_tokens) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let r = row + 8u * j;
        if (r < p.n_rows) {
            let at = p.y_offset + tok * p.y_stride + r;
#ifdef ACCUMULATE
            y[at] += v[j];
#else
            y[at] = v[j];
#endif
        }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let row0 = wid.x * 32u;
    let tok0 = wid.y * 32u;
    let tx = t % 8u;
    let ty = t / 8u;
    let units = (p.n_in + 31u) / 32u;
    // acc_i.j: token ty + 8i, row tx + 8j. Plain vec4 variables rather than an indexed array,
    // so the accumulators stay in registers.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var u = 0u; u < units; u++) {
        if (t < 32u) {
            let row = row0 + t;
            var wu: Unit;
            if (row < p.n_rows) {
                wu = dequant_unit((p.w_row0 + row) * p.row_bytes, u, p.n_in);
            }
            for (var k = 0u; k < 8u; k++) {
                let v = wu[k];
                let at = t * PITCH + 4u * k;
                ws[at] = v.x;
                ws[at + 1u] = v.y;
                ws[at + 2u] = v.z;
                ws[at + 3u] = v.w;
            }
        } else {
            let kk = t - 32u;
            let e = u * 32u + kk;
            for (var i = 0u; i < 32u; i++) {
                let tok = tok0 + i;
                let v = x[p.x_offset + tok * p.x_stride + e];
                xs[i * PITCH + kk] = select(0.0, v, tok < p.n_tokens && e < p.n_in);
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 32u; kk++) {
            let b = vec4<f32>(
                f32(ws[tx * PITCH + kk]),
                f32(ws[(tx + 8u) * PITCH + kk]),
                f32(ws[(tx + 16u) * PITCH + kk]),
                f32(ws[(tx + 24u) * PITCH + kk]));
            acc0 += xs[ty * PITCH + kk] * b;
            acc1 += xs[(ty + 8u) * PITCH + kk] * b;
            acc2 += xs[(ty + 16u) * PITCH + kk] * b;
            acc3 += xs[(ty + 24u) * PITCH + kk] * b;
        }
        workgroupBarrier();
    }
    store_tile(tok0 + ty, row0 + tx, acc0);
    store_tile(tok0 + ty + 8u, row0 + tx, acc1);
    store_tile(tok0 + ty + 16u, row0 + tx, acc2);
    store_tile(tok0 + ty + 24u, row0 + tx, acc3);
}
