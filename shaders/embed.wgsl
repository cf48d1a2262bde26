// Embedding lookup: Y[t, :] = dequantized row tokens[tok_offset + t] of a QuantMatrix
// (token_embd), for the rows held by one part. One thread per 32-element unit and token; a token
// whose row lives in another part is skipped here and written by that part's dispatch. Ids at or
// past the vocabulary size are written by no part (the engine validates ids it produces).
//
// Defines: TYPE_<ggml type> (one). Dequantization is always f32, so the result is exact.

struct EmbedParams {
    n_in: u32,        // row length (embedding width)
    n_rows: u32,      // rows in this part
    row_bytes: u32,   // bytes per row
    first_row: u32,   // vocabulary id of row 0 of this part
    n_tokens: u32,    // ids to look up
    tok_offset: u32,  // first id in `tokens`
    y_offset: u32,    // element of Y receiving (token 0, element 0)
    units: u32,       // ceil(n_in / 32)
}

@group(0) @binding(0) var<uniform> p: EmbedParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;        // (n_rows, row_bytes) raw GGUF blocks
@group(0) @binding(2) var<storage, read> tokens: array<u32>;   // (tok_offset + n_tokens)
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // (n_tokens, n_in)

#include "quant.wgsl"

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let u = gid.x;
    let t = gid.y;
    if (u >= p.units || t >= p.n_tokens) {
        return;
    }
    let id = tokens[p.tok_offset + t];
    if (id < p.first_row || id - p.first_row >= p.n_rows) {
        return;
    }
    let wu = dequant_unit((id - p.first_row) * p.row_bytes, u, p.n_in);
    let base = p.y_offset + t * p.n_in;
    for (var k = 0u; k < 8u; k++) {
        for (var i = 0u; i < 4u; i++) {
            let e = u * 32u + 4u * k + i;
            if (e < p.n_in) {
                y[base + e] = f32(wu[k][i]);
            }
        }
    }
}
