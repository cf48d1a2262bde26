// Activations in signed 8-bit integers for the packed integer dot products (`INT_DOT`
// variants: the decode mat-vec quantizes its x as it loads it, `quantize.wgsl` quantizes a
// prefill batch's X once for every mat-mul that reads it). Included with `#include "int8.wgsl"`.

// The largest magnitude `m` of the values to quantize as (1 / m, or 0 for all zeros; m / 127):
// x's integers are round(127 x / m) (`pack4x8snorm(x * inv)`), its scale dx = m / 127.
fn x8_scale(m: f32) -> vec2<f32> {
    return vec2<f32>(select(0.0, 1.0 / m, m > 0.0), m * (1.0 / 127.0));
}

// The sum of the four signed 8-bit integers of a word.
fn x8_sum(w: u32) -> i32 {
    return dot4I8Packed(w, 0x01010101u);
}
