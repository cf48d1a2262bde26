// What a compute shader can read per second on this adapter: a streaming read of a whole buffer
// (or texture), each invocation folding what it reads with xor into one word of `o`. The
// weight kernels read every weight byte once per decoded token, so this is their ceiling on
// the adapter (`kernel_bench` with KB_OPS=reads; see BENCHMARKS.md).
//
// Invocation g of `p.stride` reads units g, g + stride, g + 2 * stride, ... below `p.units`
// (neighbouring invocations read neighbouring units, as a GPU coalesces them), or with CHUNKS
// the run of `p.per` units from g * per (each SIMD lane of a CPU adapter streams its own run,
// where interleaved units would have one lane loop stride apart through memory). A unit is 16
// bytes, read as
//   WORDS:  four u32 loads of a storage buffer (words 4k .. 4k + 3, as the weight kernels load);
//   VEC4:   one vec4<u32> load of a storage buffer;
//   TEXELS: one rgba32uint texel (`textureLoad`), texel k at (k % texels_per_row, k / texels_per_row).
//
// Defines: WORDS | VEC4 | TEXELS, CHUNKS, WG.

struct ReadParams {
    units: u32,           // 16-byte units to read
    stride: u32,          // invocations in the dispatch
    texels_per_row: u32,  // TEXELS: the texture's width
    per: u32,             // CHUNKS: units per invocation
}

@group(0) @binding(0) var<uniform> p: ReadParams;
@group(0) @binding(1) var<storage, read_write> o: array<u32>;  // one word per invocation
#ifdef WORDS
@group(0) @binding(2) var<storage, read> src: array<u32>;
#endif
#ifdef VEC4
@group(0) @binding(2) var<storage, read> src: array<vec4<u32>>;
#endif
#ifdef TEXELS
@group(0) @binding(2) var src: texture_2d<u32>;
#endif

fn fold(k: u32) -> u32 {
#ifdef WORDS
    let i = 4u * k;
    return src[i] ^ src[i + 1u] ^ src[i + 2u] ^ src[i + 3u];
#else
#ifdef VEC4
    let v = src[k];
#else
    let v = textureLoad(src, vec2<u32>(k % p.texels_per_row, k / p.texels_per_row), 0);
#endif
    return v.x ^ v.y ^ v.z ^ v.w;
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = gid.x;
    if g >= p.stride {
        return;
    }
    var a = 0u;
#ifdef CHUNKS
    let end = min(g * p.per + p.per, p.units);
    for (var k = g * p.per; k < end; k++) {
        a ^= fold(k);
    }
#else
    for (var k = g; k < p.units; k += p.stride) {
        a ^= fold(k);
    }
#endif
    o[g] = a;
}
