// X in signed 8-bit integers for the integer prefill mat-mul (`matmul.wgsl` with INT_DOT):
// one pass over a batch's input, read by every product of that input (q, k and v; gate and
// up), instead of each mat-mul workgroup quantizing its tokens again for every row tile.
//
// Each invocation quantizes one 32-element unit of one token with one scale, like llama.cpp's
// q8_1 blocks: integers round(127 x / max|x|), the scale max|x| / 127, the sum of the integers
// (Q4_0's and Q5_0's zero points come off against it) and the exact sum of the unit (Q4_K's
// minimum takes it). Elements past n_in count as 0.
//
// Output layout (`QuantizeX` in crates/kernels/src/quantize.rs): unit u of token t is record
// u * p.tokens + t of three vec4<u32>: the unit's 32 integers as eight words of four, in
// element order, then (scale, integer sum, exact sum, 0) as bits. A mat-mul tile's tokens of
// one unit are thus one contiguous run of records.
//
// Defines: INT_DOT (always: the `requires` directive of dot4I8Packed), WG.

#ifndef WG
#define WG 64
#endif

struct QuantizeParams {
    n_in: u32,      // elements per token
    n_tokens: u32,  // tokens to quantize
    x_offset: u32,  // first element of X
    x_stride: u32,  // elements between tokens of X
    tokens: u32,    // records per unit in the output (the token capacity)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: QuantizeParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;               // (n_tokens, x_stride)
@group(0) @binding(2) var<storage, read_write> x8: array<vec4<u32>>;  // (units, tokens, 3)

#include "int8.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tok = wid.y;
    let u = wid.x * WG + lid;
    if (tok >= p.n_tokens || u >= (p.n_in + 31u) / 32u) {
        return;
    }
    let e = u * 32u;
    let base = p.x_offset + tok * p.x_stride;
    var v: array<vec4<f32>, 8>;
    var m4 = vec4<f32>(0.0);
    var sf = 0.0;
    for (var g = 0u; g < 8u; g++) {
        let i = vec4<u32>(e + 4u * g) + vec4<u32>(0u, 1u, 2u, 3u);
        let live = i < vec4<u32>(p.n_in);
        let at = vec4<u32>(base) + min(i, vec4<u32>(p.n_in - 1u));
        let xv = vec4<f32>(x[at.x], x[at.y], x[at.z], x[at.w]);
        v[g] = select(vec4<f32>(0.0), xv, live);
        m4 = max(m4, abs(v[g]));
        sf += dot(v[g], vec4<f32>(1.0));
    }
    let sc = x8_scale(max(max(m4.x, m4.y), max(m4.z, m4.w)));
    var q: array<u32, 8>;
    var si = 0;
    for (var g = 0u; g < 8u; g++) {
        q[g] = pack4x8snorm(v[g] * sc.x);
        si += x8_sum(q[g]);
    }
    let r = (u * p.tokens + tok) * 3u;
    x8[r] = vec4<u32>(q[0], q[1], q[2], q[3]);
    x8[r + 1u] = vec4<u32>(q[4], q[5], q[6], q[7]);
    x8[r + 2u] = vec4<u32>(bitcast<u32>(sc.y), bitcast<u32>(si), bitcast<u32>(sf), 0u);
}
