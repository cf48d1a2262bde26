// Loaders and dequantizers for raw GGUF weight blocks, one type per variant.
//
// The op that includes this file declares the weights as
//     var<storage, read> w: array<u32>; // raw GGUF blocks, row-major, rows of `row_bytes`
// and defines exactly one TYPE_<name> flag (TYPE_Q4_0, TYPE_Q4_K, TYPE_IQ4_NL, ...). Blocks are
// 18, 22, 34, 110, 210 ... bytes long, so they are not 4-byte aligned: every read goes through
// byte-offset loaders on the u32 array. The bytes are never repacked, so what is on the GPU is
// exactly what is in the file.
//
// Every type exposes one function:
//     fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> array<vec4<wt>, 8>
// returning elements [32u, 32u + 32) of the row whose first byte is `row_base`. A "unit" of 32
// elements is a whole block for the 32-element types and one sub-block of the 256-element types;
// for F32/F16/BF16 elements at or past `n_in` come back as 0, so rows of any length work.
//
// `wt` is the arithmetic type of dequantization: f16 in F16 variants (half the ALU work where
// the GPU has double-rate f16; scales are f16 in the file anyway), else f32. Callers accumulate in
// f32.

#include "common.wgsl"

#ifdef F16
alias wt = f16;
#else
alias wt = f32;
#endif

alias Unit = array<vec4<wt>, 8>;

// u32 at a 4-aligned byte offset. Q2_K (84), Q4_K (144), Q5_K (176) and IQ4_XS (136) blocks are
// whole words long, so with 4-aligned rows (the part buffers start at row 0) their fields are too.
fn w_u32_al(b: u32) -> u32 {
    return w[b >> 2u];
}

fn w_u8(b: u32) -> u32 {
    return (w[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

// u16 at an even byte offset.
fn w_u16(b: u32) -> u32 {
    return (w[b >> 2u] >> ((b & 2u) * 8u)) & 0xffffu;
}

// IEEE half at an even byte offset, as f32.
fn w_f16(b: u32) -> f32 {
    return unpack2x16float(w_u16(b)).x;
}

// The four bytes of a word, lowest first.
fn bytes4(x: u32) -> vec4<u32> {
    return (vec4<u32>(x) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
}

// Powers of two that scale byte k of a word, masked where it lies, back to the byte.
const BYTE_SCALE = vec4<f32>(1.0, 0.00390625, 1.52587890625e-05, 5.9604644775390625e-08);

// The four bytes of a word as signed int8, lowest first.
fn sbytes4(x: u32) -> vec4<i32> {
    return bitcast<vec4<i32>>(vec4<u32>(x) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
}

#ifdef MASKED_BYTES
// The four bytes of a word (each below 128) masked where they lie and converted as i32s: byte k
// times 256^k. Scaled back by BYTE_SCALE, or dotted with x pre-scaled by it (`dot_placed`).
fn placed_f(x: u32) -> vec4<f32> {
    let m = vec4<u32>(x) & vec4<u32>(0xffu, 0xff00u, 0xff0000u, 0xff000000u);
    return vec4<f32>(bitcast<vec4<i32>>(m));
}

// The same for signed bytes: each sign-extended where it lies (xor and subtract its top bit).
fn placed_signed_f(x: u32) -> vec4<f32> {
    let c = vec4<u32>(0x80u, 0x8000u, 0x800000u, 0x80000000u);
    let m = (vec4<u32>(x) & vec4<u32>(0xffu, 0xff00u, 0xff0000u, 0xff000000u)) ^ c;
    return vec4<f32>(bitcast<vec4<i32>>(m - c));
}
#endif

// The four signed bytes of a word as f32, lowest first. MASKED_BYTES (see `dot_bytes`): each
// byte is masked where it lies and sign-extended there before the conversion, then scaled back.
fn sbytes4f(x: u32) -> vec4<f32> {
#ifdef MASKED_BYTES
    return placed_signed_f(x) * BYTE_SCALE;
#else
    return vec4<f32>(sbytes4(x));
#endif
}

// The four bytes of a word, each below 128, as f32 (as `bytes4` gives them). MASKED_BYTES: each
// masked where it lies, converted as an i32 (none has its top bit set) and scaled back (exact:
// a 7-bit value times a power of two). The K-quants build their unit's values in place in a
// word (low bits, then the high bits or'ed in above them) and convert the word with this.
fn ubytes_f(x: u32) -> vec4<f32> {
#ifdef MASKED_BYTES
    return placed_f(x) * BYTE_SCALE;
#else
    return vec4<f32>(bytes4(x));
#endif
}

// The low nibbles of a word's four bytes as f32 (as `nib_lo` gives them). MASKED_BYTES (see
// `dot_bytes`): each masked where it lies, converted as an i32 and scaled back (exact).
fn nib_lo_f(x: u32) -> vec4<f32> {
#ifdef MASKED_BYTES
    return ubytes_f(x & 0x0f0f0f0fu);
#else
    return vec4<f32>(nib_lo(x));
#endif
}

// The high nibbles likewise (as `nib_hi` gives them).
fn nib_hi_f(x: u32) -> vec4<f32> {
#ifdef MASKED_BYTES
    return nib_lo_f(x >> 4u);
#else
    return vec4<f32>(nib_hi(x));
#endif
}

fn nib_lo(x: u32) -> vec4<u32> {
    return bytes4(x) & vec4<u32>(15u);
}

fn nib_hi(x: u32) -> vec4<u32> {
    return bytes4(x) >> vec4<u32>(4u);
}

// Bits `first`, first+1, first+2, first+3 of `x`, each as 0 or 1.
fn bits4(x: u32, first: u32) -> vec4<u32> {
    return (vec4<u32>(x) >> (vec4<u32>(0u, 1u, 2u, 3u) + vec4<u32>(first))) & vec4<u32>(1u);
}

// Bits first .. first + 3 of `x` as 16 or 0 each (Q5_0's fifth bits as f32). MASKED_BYTES:
// picked by a compare instead of per-component shifts.
fn fifth_f(x: u32, first: u32) -> vec4<f32> {
#ifdef MASKED_BYTES
    let on = (vec4<u32>(x >> first) & vec4<u32>(1u, 2u, 4u, 8u)) != vec4<u32>(0u);
    return select(vec4<f32>(0.0), vec4<f32>(16.0), on);
#else
    return vec4<f32>(bits4(x, first) << vec4<u32>(4u));
#endif
}

// Reads the n consecutive u32 values starting at an even byte offset `b` with n + 1 word loads:
// blocks of 18, 22, 34, 110, 210 bytes and f16 rows are 2-byte aligned, so each value is either a
// whole word or the high half of one word joined to the low half of the next. `stream_begin`
// returns the state; each `stream_next` yields one value. The one-word look-ahead may read a
// word past the end of the buffer at its last block; WebGPU clamps such reads and the value is
// discarded.
struct Stream {
    i: u32,     // index of the next word to load
    cur: u32,   // the last word loaded
    odd: bool,  // b % 4 == 2: values straddle two words
}

fn stream_begin(b: u32) -> Stream {
    let i = b >> 2u;
    return Stream(i + 1u, w[i], (b & 2u) != 0u);
}

fn stream_next(st: ptr<function, Stream>) -> u32 {
    let nxt = w[(*st).i];
    let v = select((*st).cur, ((*st).cur >> 16u) | (nxt << 16u), (*st).odd);
    (*st).cur = nxt;
    (*st).i += 1u;
    return v;
}

#ifdef TYPE_F32
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    var o: Unit;
    let i0 = (row_base >> 2u) + u * 32u;
    for (var k = 0u; k < 8u; k++) {
        let e = u * 32u + 4u * k;
        let i = i0 + 4u * k;
        let v = bitcast<vec4<f32>>(vec4<u32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]));
        o[k] = select(vec4<wt>(0.0), vec4<wt>(v), (vec4<u32>(e) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(n_in));
    }
    return o;
}
#endif

#ifdef TYPE_F16
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    var o: Unit;
    var st = stream_begin(row_base + 64u * u);
    for (var k = 0u; k < 8u; k++) {
        let e = u * 32u + 4u * k;
        let v = vec4<f32>(unpack2x16float(stream_next(&st)), unpack2x16float(stream_next(&st)));
        o[k] = select(vec4<wt>(0.0), vec4<wt>(v), (vec4<u32>(e) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(n_in));
    }
    return o;
}
#endif

#ifdef TYPE_BF16
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    var o: Unit;
    var st = stream_begin(row_base + 64u * u);
    for (var k = 0u; k < 8u; k++) {
        let e = u * 32u + 4u * k;
        let a = stream_next(&st);
        let c = stream_next(&st);
        let v = bitcast<vec4<f32>>(vec4<u32>(a << 16u, a & 0xffff0000u, c << 16u, c & 0xffff0000u));
        o[k] = select(vec4<wt>(0.0), vec4<wt>(v), (vec4<u32>(e) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(n_in));
    }
    return o;
}
#endif

#ifdef TYPE_Q4_0
// 18 bytes: d f16 @0, qs[16] @2; y[j] = d*((qs[j]&15)-8), y[j+16] = d*((qs[j]>>4)-8).
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + u * 18u;
    let d = wt(w_f16(b));
    var st = stream_begin(b + 2u);
    var o: Unit;
    for (var k = 0u; k < 4u; k++) {
        let q = stream_next(&st);
        o[k] = d * (vec4<wt>(nib_lo_f(q)) - vec4<wt>(8.0));
        o[k + 4u] = d * (vec4<wt>(nib_hi_f(q)) - vec4<wt>(8.0));
    }
    return o;
}
#endif

#ifdef TYPE_Q4_1
// 20 bytes: d @0, m @2, qs[16] @4; y = d*q + m.
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + u * 20u;
    let d = wt(w_f16(b));
    let m = wt(w_f16(b + 2u));
    var st = stream_begin(b + 4u);
    var o: Unit;
    for (var k = 0u; k < 4u; k++) {
        let q = stream_next(&st);
        o[k] = d * vec4<wt>(nib_lo_f(q)) + m;
        o[k + 4u] = d * vec4<wt>(nib_hi_f(q)) + m;
    }
    return o;
}
#endif

#ifdef TYPE_Q5_0
// 22 bytes: d @0, qh u32 @2, qs[16] @6; the fifth bit of y[j] is bit j of qh, minus 16.
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + u * 22u;
    let d = wt(w_f16(b));
    var st = stream_begin(b + 2u);
    let qh = stream_next(&st);
    var o: Unit;
    for (var k = 0u; k < 4u; k++) {
        let q = stream_next(&st);
        let lo = nib_lo_f(q) + fifth_f(qh, 4u * k);
        let hi = nib_hi_f(q) + fifth_f(qh, 16u + 4u * k);
        o[k] = d * (vec4<wt>(lo) - vec4<wt>(16.0));
        o[k + 4u] = d * (vec4<wt>(hi) - vec4<wt>(16.0));
    }
    return o;
}
#endif

#ifdef TYPE_Q5_1
// 24 bytes: d @0, m @2, qh @4, qs[16] @8; y = d*q + m with 5-bit q.
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + u * 24u;
    let d = wt(w_f16(b));
    let m = wt(w_f16(b + 2u));
    var st = stream_begin(b + 4u);
    let qh = stream_next(&st);
    var o: Unit;
    for (var k = 0u; k < 4u; k++) {
        let q = stream_next(&st);
        let lo = nib_lo_f(q) + fifth_f(qh, 4u * k);
        let hi = nib_hi_f(q) + fifth_f(qh, 16u + 4u * k);
        o[k] = d * vec4<wt>(lo) + m;
        o[k + 4u] = d * vec4<wt>(hi) + m;
    }
    return o;
}
#endif

#ifdef TYPE_Q8_0
// 34 bytes: d @0, int8 qs[32] @2; y = d*q.
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + u * 34u;
    let d = wt(w_f16(b));
    var st = stream_begin(b + 2u);
    var o: Unit;
    for (var k = 0u; k < 8u; k++) {
        o[k] = d * vec4<wt>(sbytes4f(stream_next(&st)));
    }
    return o;
}
#endif

#ifdef TYPE_IQ4_NL
#define IQ4_TABLE 1
#endif
#ifdef TYPE_IQ4_XS
#define IQ4_TABLE 1
#endif

#if IQ4_TABLE
// The non-linear 4-bit codebook shared by IQ4_NL and IQ4_XS (ggml `kvalues_iq4nl`). (Packing it
// into four words and extracting bytes with shifts measured slower on an H100 than this array.)
var<private> IQ4_VALUES: array<f32, 16> = array<f32, 16>(
    -127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0,
    1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0);

fn iq4_lookup(q: vec4<u32>) -> vec4<wt> {
    return vec4<wt>(vec4<f32>(IQ4_VALUES[q.x], IQ4_VALUES[q.y], IQ4_VALUES[q.z], IQ4_VALUES[q.w]));
}
#endif

#ifdef TYPE_IQ4_NL
// 18 bytes: d @0, qs[16] @2; y[j] = d*K[qs[j]&15], y[j+16] = d*K[qs[j]>>4].
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + u * 18u;
    let d = wt(w_f16(b));
    var st = stream_begin(b + 2u);
    var o: Unit;
    for (var k = 0u; k < 4u; k++) {
        let q = stream_next(&st);
        o[k] = d * iq4_lookup(nib_lo(q));
        o[k + 4u] = d * iq4_lookup(nib_hi(q));
    }
    return o;
}
#endif

#ifdef TYPE_IQ4_XS
// 136 bytes per 256: d @0, scales_h u16 @2, scales_l[4] @4, qs[128] @8. Sub-block s has the
// 6-bit scale (nibble s of scales_l) | (bits 2s..2s+1 of scales_h) << 4, minus 32.
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + (u >> 3u) * 136u;
    let s = u & 7u;
    let d = w_f16(b);
    let ls = ((w_u8(b + 4u + (s >> 1u)) >> (4u * (s & 1u))) & 15u) | (((w_u16(b + 2u) >> (2u * s)) & 3u) << 4u);
    let dl = wt(d * f32(i32(ls) - 32));
    var o: Unit;
    for (var k = 0u; k < 4u; k++) {
        let q = w_u32_al(b + 8u + 16u * s + 4u * k);
        o[k] = dl * iq4_lookup(nib_lo(q));
        o[k + 4u] = dl * iq4_lookup(nib_hi(q));
    }
    return o;
}
#endif

#ifdef TYPE_Q2_K
// 84 bytes per 256: scales[16] @0 (low nibble scale, high nibble min), qs[64] @16, d @80,
// dmin @82. Sub-block s = 4h + j takes 2-bit values (qs[32h + l] >> 2j) & 3, l < 32, with scale
// byte 8h + 2j for l < 16 and 8h + 2j + 1 for l >= 16.
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + (u >> 3u) * 84u;
    let s = u & 7u;
    let h = s >> 2u;
    let shift = 2u * (s & 3u);
    let d = wt(w_f16(b + 80u));
    let dmin = wt(w_f16(b + 82u));
    let sc0 = w_u8(b + 2u * s);
    let sc1 = w_u8(b + 2u * s + 1u);
    var o: Unit;
    for (var k = 0u; k < 8u; k++) {
        let sc = select(sc1, sc0, k < 4u);
        let q = ubytes_f((w_u32_al(b + 16u + 32u * h + 4u * k) >> shift) & 0x03030303u);
        o[k] = d * wt(sc & 15u) * vec4<wt>(q) - vec4<wt>(dmin * wt(sc >> 4u));
    }
    return o;
}
#endif

#ifdef TYPE_Q3_K
// 110 bytes per 256: hmask[32] @0, qs[64] @32, scales[12] @96 (16 packed 6-bit scales), d @108.
fn q3k_scale(b: u32, i: u32) -> i32 {
    let lo = (w_u8(b + 96u + (i & 7u)) >> (4u * (i >> 3u))) & 15u;
    let hi = (w_u8(b + 104u + (i & 3u)) >> (2u * (i >> 2u))) & 3u;
    return i32(lo | (hi << 4u)) - 32;
}

// Sub-block s = 4h + j: 2-bit values (qs[32h + l] >> 2j) & 3, minus 4 unless bit s of hmask[l]
// is set; scale 8h + 2j (+1 for l >= 16).
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + (u >> 3u) * 110u;
    let s = u & 7u;
    let h = s >> 2u;
    let shift = 2u * (s & 3u);
    let d = w_f16(b + 108u);
    let dl0 = wt(d * f32(q3k_scale(b, 2u * s)));
    let dl1 = wt(d * f32(q3k_scale(b, 2u * s + 1u)));
    var qs = stream_begin(b + 32u + 32u * h);
    var hms = stream_begin(b);
    var o: Unit;
    for (var k = 0u; k < 8u; k++) {
        // q + 4 * hm - 4, the sum built in place as q | hm << 2.
        let q = ((stream_next(&qs) >> shift) & 0x03030303u) | (((stream_next(&hms) >> s) & 0x01010101u) << 2u);
        o[k] = select(dl1, dl0, k < 4u) * (vec4<wt>(ubytes_f(q)) - vec4<wt>(4.0));
    }
    return o;
}
#endif

#ifdef TYPE_Q4_K
#define K4_SCALES 1
#endif
#ifdef TYPE_Q5_K
#define K4_SCALES 1
#endif

#if K4_SCALES
// `get_scale_min_k4`: 6-bit scale and min j (0..8) from the 12 packed bytes at `sb`.
fn k4_scale_min(sb: u32, j: u32) -> vec2<u32> {
    if (j < 4u) {
        return vec2<u32>(w_u8(sb + j) & 63u, w_u8(sb + j + 4u) & 63u);
    }
    let a = w_u8(sb + j + 4u);
    return vec2<u32>((a & 15u) | ((w_u8(sb + j - 4u) >> 6u) << 4u), (a >> 4u) | ((w_u8(sb + j) >> 6u) << 4u));
}
#endif

#ifdef TYPE_Q4_K
// 144 bytes per 256: d @0, dmin @2, scales[12] @4, qs[128] @16. Sub-block s uses the low
// (s even) or high (s odd) nibbles of qs[32(s/2) + l]: y = d*sc(s)*q - dmin*mn(s).
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + (u >> 3u) * 144u;
    let s = u & 7u;
    let sm = k4_scale_min(b + 4u, s);
    let ds = wt(w_f16(b) * f32(sm.x));
    let dm = wt(w_f16(b + 2u) * f32(sm.y));
    let shift = 4u * (s & 1u);
    var o: Unit;
    for (var k = 0u; k < 8u; k++) {
        let q = nib_lo_f(w_u32_al(b + 16u + 32u * (s >> 1u) + 4u * k) >> shift);
        o[k] = ds * vec4<wt>(q) - vec4<wt>(dm);
    }
    return o;
}
#endif

#ifdef TYPE_Q5_K
// 176 bytes per 256: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48. As Q4_K with a
// fifth bit: bit s of qh[l].
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + (u >> 3u) * 176u;
    let s = u & 7u;
    let sm = k4_scale_min(b + 4u, s);
    let ds = wt(w_f16(b) * f32(sm.x));
    let dm = wt(w_f16(b + 2u) * f32(sm.y));
    let shift = 4u * (s & 1u);
    var o: Unit;
    for (var k = 0u; k < 8u; k++) {
        let q = ((w_u32_al(b + 48u + 32u * (s >> 1u) + 4u * k) >> shift) & 0x0f0f0f0fu)
            | (((w_u32_al(b + 16u + 4u * k) >> s) & 0x01010101u) << 4u);
        o[k] = ds * vec4<wt>(ubytes_f(q)) - vec4<wt>(dm);
    }
    return o;
}
#endif

#ifdef TYPE_Q6_K
// 210 bytes per 256: ql[128] @0, qh[64] @128, int8 scales[16] @192, d @208. Sub-block s = 4n + c:
// low 4 bits from ql[64n + 32(c&1) + l] (high nibble when c >= 2), 2 high bits
// (qh[32n + l] >> 2c) & 3, minus 32; scale 8n + 2c (+1 for l >= 16).
fn dequant_unit(row_base: u32, u: u32, n_in: u32) -> Unit {
    let b = row_base + (u >> 3u) * 210u;
    let s = u & 7u;
    let n = s >> 2u;
    let c = s & 3u;
    let d = w_f16(b + 208u);
    // Scales 8n + 2c and 8n + 2c + 1: one u16 at an even offset.
    let sw = w_u16(b + 192u + 8u * n + 2u * c);
    let dl0 = wt(d * f32(bitcast<i32>(sw << 24u) >> 24u));
    let dl1 = wt(d * f32(bitcast<i32>(sw << 16u) >> 24u));
    let lshift = 4u * (c >> 1u);
    var qls = stream_begin(b + 64u * n + 32u * (c & 1u));
    var qhs = stream_begin(b + 128u + 32u * n);
    var o: Unit;
    for (var k = 0u; k < 8u; k++) {
        let q = ((stream_next(&qls) >> lshift) & 0x0f0f0f0fu) | (((stream_next(&qhs) >> (2u * c)) & 0x03030303u) << 4u);
        o[k] = select(dl1, dl0, k < 4u) * (vec4<wt>(ubytes_f(q)) - vec4<wt>(32.0));
    }
    return o;
}
#endif

// ---------------------------------------------------------------------------------------------
// Quarter units for the mat-vec kernel. Four neighbouring threads share one 32-element unit:
// thread j (0..3) of the unit reads its own 4 or 8 bytes of quants (the block header is read by
// all four; it is one cache line and the loads are broadcast), so a subgroup reads consecutive
// words of consecutive blocks. `dequant_q(row_base, u, j, n_in)` returns 8 elements of unit `u`:
// vector 0 holds elements q_elems(j).x .. +4 of the unit, vector 1 elements q_elems(j).y .. +4.
// Types whose quants pack element l and l + 16 in one byte ("nibble" layouts) give elements
// 4j.. and 16 + 4j..; every other type gives the 8 consecutive elements 8j.. .

alias Q8 = array<vec4<wt>, 2>;

// u32 at an even byte offset: one load when 4-aligned, else the halves of two words.
fn w_u32_2(b: u32) -> u32 {
    let i = b >> 2u;
    let lo = w[i];
    let hi = w[i + 1u];
    return select(lo, (lo >> 16u) | (hi << 16u), (b & 2u) != 0u);
}

// Two consecutive u32 at an even byte offset (three loads, no branch: neighbouring blocks of
// 34 or 210 bytes alternate between the two alignments, so a branch would diverge).
fn w_u32x2_2(b: u32) -> vec2<u32> {
    let i = b >> 2u;
    let a = w[i];
    let c = w[i + 1u];
    let e = w[i + 2u];
    let odd = vec2<bool>((b & 2u) != 0u);
    return select(vec2<u32>(a, c), vec2<u32>((a >> 16u) | (c << 16u), (c >> 16u) | (e << 16u)), odd);
}

// Two consecutive u32 at a 4-aligned byte offset.
fn w_u32x2_al(b: u32) -> vec2<u32> {
    let i = b >> 2u;
    return vec2<u32>(w[i], w[i + 1u]);
}

#ifdef TYPE_Q4_0
#define Q_NIBBLES 1
#endif
#ifdef TYPE_Q4_1
#define Q_NIBBLES 1
#endif
#ifdef TYPE_Q5_0
#define Q_NIBBLES 1
#endif
#ifdef TYPE_Q5_1
#define Q_NIBBLES 1
#endif
#ifdef TYPE_IQ4_NL
#define Q_NIBBLES 1
#endif
#ifdef TYPE_IQ4_XS
#define Q_NIBBLES 1
#endif

#if Q_NIBBLES
fn q_elems(j: u32) -> vec2<u32> {
    return vec2<u32>(4u * j, 16u + 4u * j);
}
#else
fn q_elems(j: u32) -> vec2<u32> {
    return vec2<u32>(8u * j, 8u * j + 4u);
}
#endif

// Elements e .. e + 3 that lie below n_in (for the plain float types, whose rows may end inside
// a unit).
fn q_mask(e: u32, n_in: u32) -> vec4<bool> {
    return (vec4<u32>(e) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(n_in);
}

#ifdef TYPE_F32
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let e = u * 32u + 8u * j;
    let i = (row_base >> 2u) + e;
    let a = bitcast<vec4<f32>>(vec4<u32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]));
    let c = bitcast<vec4<f32>>(vec4<u32>(w[i + 4u], w[i + 5u], w[i + 6u], w[i + 7u]));
    return Q8(select(vec4<wt>(0.0), vec4<wt>(a), q_mask(e, n_in)),
              select(vec4<wt>(0.0), vec4<wt>(c), q_mask(e + 4u, n_in)));
}
#endif

#ifdef TYPE_F16
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let e = u * 32u + 8u * j;
    let b = row_base + 2u * e;
    let lo = w_u32x2_2(b);
    let hi = w_u32x2_2(b + 8u);
    let a = vec4<f32>(unpack2x16float(lo.x), unpack2x16float(lo.y));
    let c = vec4<f32>(unpack2x16float(hi.x), unpack2x16float(hi.y));
    return Q8(select(vec4<wt>(0.0), vec4<wt>(a), q_mask(e, n_in)),
              select(vec4<wt>(0.0), vec4<wt>(c), q_mask(e + 4u, n_in)));
}
#endif

#ifdef TYPE_BF16
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let e = u * 32u + 8u * j;
    let b = row_base + 2u * e;
    let lo = w_u32x2_2(b);
    let hi = w_u32x2_2(b + 8u);
    let a = bitcast<vec4<f32>>(vec4<u32>(lo.x << 16u, lo.x & 0xffff0000u, lo.y << 16u, lo.y & 0xffff0000u));
    let c = bitcast<vec4<f32>>(vec4<u32>(hi.x << 16u, hi.x & 0xffff0000u, hi.y << 16u, hi.y & 0xffff0000u));
    return Q8(select(vec4<wt>(0.0), vec4<wt>(a), q_mask(e, n_in)),
              select(vec4<wt>(0.0), vec4<wt>(c), q_mask(e + 4u, n_in)));
}
#endif

#ifdef TYPE_Q4_0
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + u * 18u;
    let d = wt(w_f16(b));
    let q = w_u32_2(b + 2u + 4u * j);
    return Q8(d * (vec4<wt>(nib_lo(q)) - vec4<wt>(8.0)), d * (vec4<wt>(nib_hi(q)) - vec4<wt>(8.0)));
}
#endif

#ifdef TYPE_Q4_1
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + u * 20u;
    let dm = unpack2x16float(w_u32_2(b));
    let d = wt(dm.x);
    let m = wt(dm.y);
    let q = w_u32_2(b + 4u + 4u * j);
    return Q8(d * vec4<wt>(nib_lo(q)) + m, d * vec4<wt>(nib_hi(q)) + m);
}
#endif

#ifdef TYPE_Q5_0
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + u * 22u;
    let d = wt(w_f16(b));
    let qh = w_u32_2(b + 2u);
    let q = w_u32_2(b + 6u + 4u * j);
    let lo = nib_lo(q) | (bits4(qh, 4u * j) << vec4<u32>(4u));
    let hi = nib_hi(q) | (bits4(qh, 16u + 4u * j) << vec4<u32>(4u));
    return Q8(d * (vec4<wt>(lo) - vec4<wt>(16.0)), d * (vec4<wt>(hi) - vec4<wt>(16.0)));
}
#endif

#ifdef TYPE_Q5_1
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + u * 24u;
    let dm = unpack2x16float(w_u32_2(b));
    let d = wt(dm.x);
    let m = wt(dm.y);
    let qh = w_u32_2(b + 4u);
    let q = w_u32_2(b + 8u + 4u * j);
    let lo = nib_lo(q) | (bits4(qh, 4u * j) << vec4<u32>(4u));
    let hi = nib_hi(q) | (bits4(qh, 16u + 4u * j) << vec4<u32>(4u));
    return Q8(d * vec4<wt>(lo) + m, d * vec4<wt>(hi) + m);
}
#endif

#ifdef TYPE_Q8_0
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + u * 34u;
    let d = wt(w_f16(b));
    let q = w_u32x2_2(b + 2u + 8u * j);
    return Q8(d * vec4<wt>(sbytes4(q.x)), d * vec4<wt>(sbytes4(q.y)));
}
#endif

#ifdef TYPE_IQ4_NL
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + u * 18u;
    let d = wt(w_f16(b));
    let q = w_u32_2(b + 2u + 4u * j);
    return Q8(d * iq4_lookup(nib_lo(q)), d * iq4_lookup(nib_hi(q)));
}
#endif

#ifdef TYPE_IQ4_XS
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + (u >> 3u) * 136u;
    let s = u & 7u;
    let d = w_f16(b);
    let ls = ((w_u8(b + 4u + (s >> 1u)) >> (4u * (s & 1u))) & 15u) | (((w_u16(b + 2u) >> (2u * s)) & 3u) << 4u);
    let dl = wt(d * f32(i32(ls) - 32));
    let q = w_u32_al(b + 8u + 16u * s + 4u * j);
    return Q8(dl * iq4_lookup(nib_lo(q)), dl * iq4_lookup(nib_hi(q)));
}
#endif

#ifdef TYPE_Q2_K
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + (u >> 3u) * 84u;
    let s = u & 7u;
    let shift = 2u * (s & 3u);
    let dd = unpack2x16float(w_u32_al(b + 80u));
    let sc = w_u8(b + 2u * s + (j >> 1u));
    let dl = wt(dd.x * f32(sc & 15u));
    let ml = wt(dd.y * f32(sc >> 4u));
    let q = w_u32x2_al(b + 16u + 32u * (s >> 2u) + 8u * j);
    let q0 = (bytes4(q.x) >> vec4<u32>(shift)) & vec4<u32>(3u);
    let q1 = (bytes4(q.y) >> vec4<u32>(shift)) & vec4<u32>(3u);
    return Q8(dl * vec4<wt>(q0) - vec4<wt>(ml), dl * vec4<wt>(q1) - vec4<wt>(ml));
}
#endif

#ifdef TYPE_Q3_K
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + (u >> 3u) * 110u;
    let s = u & 7u;
    let shift = 2u * (s & 3u);
    let dl = wt(w_f16(b + 108u) * f32(q3k_scale(b, 2u * s + (j >> 1u))));
    let q = w_u32x2_2(b + 32u + 32u * (s >> 2u) + 8u * j);
    let hm = w_u32x2_2(b + 8u * j);
    let q0 = vec4<wt>((bytes4(q.x) >> vec4<u32>(shift)) & vec4<u32>(3u));
    let q1 = vec4<wt>((bytes4(q.y) >> vec4<u32>(shift)) & vec4<u32>(3u));
    let h0 = vec4<wt>((bytes4(hm.x) >> vec4<u32>(s)) & vec4<u32>(1u));
    let h1 = vec4<wt>((bytes4(hm.y) >> vec4<u32>(s)) & vec4<u32>(1u));
    return Q8(dl * (q0 - vec4<wt>(4.0) + vec4<wt>(4.0) * h0), dl * (q1 - vec4<wt>(4.0) + vec4<wt>(4.0) * h1));
}
#endif

#ifdef TYPE_Q4_K
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + (u >> 3u) * 144u;
    let s = u & 7u;
    let sm = k4_scale_min(b + 4u, s);
    let dd = unpack2x16float(w_u32_al(b));
    let ds = wt(dd.x * f32(sm.x));
    let dm = wt(dd.y * f32(sm.y));
    let shift = 4u * (s & 1u);
    let q = w_u32x2_al(b + 16u + 32u * (s >> 1u) + 8u * j);
    let q0 = (bytes4(q.x) >> vec4<u32>(shift)) & vec4<u32>(15u);
    let q1 = (bytes4(q.y) >> vec4<u32>(shift)) & vec4<u32>(15u);
    return Q8(ds * vec4<wt>(q0) - vec4<wt>(dm), ds * vec4<wt>(q1) - vec4<wt>(dm));
}
#endif

#ifdef TYPE_Q5_K
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + (u >> 3u) * 176u;
    let s = u & 7u;
    let sm = k4_scale_min(b + 4u, s);
    let dd = unpack2x16float(w_u32_al(b));
    let ds = wt(dd.x * f32(sm.x));
    let dm = wt(dd.y * f32(sm.y));
    let shift = 4u * (s & 1u);
    let q = w_u32x2_al(b + 48u + 32u * (s >> 1u) + 8u * j);
    let h = w_u32x2_al(b + 16u + 8u * j);
    let q0 = ((bytes4(q.x) >> vec4<u32>(shift)) & vec4<u32>(15u)) | (((bytes4(h.x) >> vec4<u32>(s)) & vec4<u32>(1u)) << vec4<u32>(4u));
    let q1 = ((bytes4(q.y) >> vec4<u32>(shift)) & vec4<u32>(15u)) | (((bytes4(h.y) >> vec4<u32>(s)) & vec4<u32>(1u)) << vec4<u32>(4u));
    return Q8(ds * vec4<wt>(q0) - vec4<wt>(dm), ds * vec4<wt>(q1) - vec4<wt>(dm));
}
#endif

#ifdef TYPE_Q6_K
fn dequant_q(row_base: u32, u: u32, j: u32, n_in: u32) -> Q8 {
    let b = row_base + (u >> 3u) * 210u;
    let s = u & 7u;
    let n = s >> 2u;
    let c = s & 3u;
    let sc = bitcast<i32>(w_u8(b + 192u + 8u * n + 2u * c + (j >> 1u)) << 24u) >> 24u;
    let dl = wt(w_f16(b + 208u) * f32(sc));
    let lshift = 4u * (c >> 1u);
    let ql = w_u32x2_2(b + 64u * n + 32u * (c & 1u) + 8u * j);
    let qh = w_u32x2_2(b + 128u + 32u * n + 8u * j);
    let q0 = ((bytes4(ql.x) >> vec4<u32>(lshift)) & vec4<u32>(15u)) | (((bytes4(qh.x) >> vec4<u32>(2u * c)) & vec4<u32>(3u)) << vec4<u32>(4u));
    let q1 = ((bytes4(ql.y) >> vec4<u32>(lshift)) & vec4<u32>(15u)) | (((bytes4(qh.y) >> vec4<u32>(2u * c)) & vec4<u32>(3u)) << vec4<u32>(4u));
    return Q8(dl * (vec4<wt>(q0) - vec4<wt>(32.0)), dl * (vec4<wt>(q1) - vec4<wt>(32.0)));
}
#endif

// ---------------------------------------------------------------------------------------------
// Dot product of one quarter-unit of a row with x, for the decode mat-vec:
//     fn dot_q(row_base, u, j, n_in, xa, xb, sx) -> f32
// = dot(dequant_q(row_base, u, j, n_in), (xa, xb)), where xa and xb hold x at the elements
// q_elems(j) names and sx = sum(xa) + sum(xb). The types of the Ahma files (Q4_0, Q5_0, Q8_0,
// Q4_K) fold the block scale and offset out of the per-element work: d * dot(q, x) - m * sx
// instead of dot(d * q - m, x), with the quants unpacked word-wise (nibbles by mask, Q5_0's fifth
// bits spread into bytes by one multiply), and the products in f32. The other types use the
// dequantizer.
//
// Those four types unpack their quants and scales through two functions, which the products
// with x quantized (INT_DOT, below) share:
//     fn qi_quants(row_base, u, j) -> vec2<u32>  // quarter j of unit u as 8-bit integers: the
//                                                // elements q_elems(j) names, four per word
//     fn qi_scale(row_base, u) -> vec2<f32>      // (d, m): the unit's value is
//                                                // d * (q - QI_OFFSET) - m
// with QI_OFFSET the quants' zero point (Q4_0 8, Q5_0 16, else 0).

// Bits 0..3 of `x` moved to bit 0 of bytes 0..3 (bit k times 2^(7k) lands on bit 8k; the other
// products land on bits that the mask clears and never carry).
fn spread4(x: u32) -> u32 {
    return ((x & 15u) * 0x00204081u) & 0x01010101u;
}

// The four bytes of a word (each below 128: quants of at most 7 bits) dotted with `xv`.
// MASKED_BYTES reads them without shifts: each byte masked where it lies, converted as an i32
// and scaled back by a power of two (exact, so the products are the same). The host sets it
// for CPU adapters only: with the mat-vec's BLOCKS walk, and in the rows mat-mul, whose
// `dequant_unit`s read the same way through `ubytes_f`, `nib_lo_f`, `fifth_f` and `sbytes4f`. SwiftShader's Subzero back end (the browser's software adapter) spends far more
// on the shifts and on unsigned conversions than on masks, signed conversions and products:
// 18-28% of its mat-vec time, 35-45% of its rows mat-mul's. GPUs extract a byte and convert it
// in one instruction, so they keep the shifts.
fn dot_bytes(q: u32, xv: vec4<f32>) -> f32 {
    return dot(ubytes_f(q), xv);
}

#ifdef TYPE_Q4_0
#define Q_DOT 1
const QI_OFFSET: i32 = 8;
fn qi_quants(row_base: u32, u: u32, j: u32) -> vec2<u32> {
    let q = w_u32_2(row_base + u * 18u + 2u + 4u * j);
    return vec2<u32>(q & 0x0f0f0f0fu, (q >> 4u) & 0x0f0f0f0fu);
}
fn qi_scale(row_base: u32, u: u32) -> vec2<f32> {
    return vec2<f32>(w_f16(row_base + u * 18u), 0.0);
}
fn dot_q(row_base: u32, u: u32, j: u32, n_in: u32, xa: vec4<f32>, xb: vec4<f32>, sx: f32) -> f32 {
    let q = qi_quants(row_base, u, j);
    return qi_scale(row_base, u).x * (dot_bytes(q.x, xa) + dot_bytes(q.y, xb) - f32(QI_OFFSET) * sx);
}
#endif

#ifdef TYPE_Q5_0
#define Q_DOT 1
const QI_OFFSET: i32 = 16;
// Quarter j of unit u as `qi_quants` gives it (x, y) and the block's scale as f16 bits (z), in
// four loads: a 22-byte block starts 4-aligned or 2 bytes past, and either way its scale, its
// fifth bits and quarter j's nibbles lie in words i, i + 1, i + 1 + j and i + 2 + j.
fn q5_0_quarter(row_base: u32, u: u32, j: u32) -> vec3<u32> {
    let b = row_base + u * 22u;
    let i = b >> 2u;
    let a = w[i];
    let c = w[i + 1u];
    let e = w[i + 1u + j];
    let g = w[i + 2u + j];
    let odd = (b & 2u) != 0u;
    let d = select(a & 0xffffu, a >> 16u, odd);
    let qh = select((a >> 16u) | (c << 16u), c, odd);
    let q = select((e >> 16u) | (g << 16u), g, odd);
    let lo = (q & 0x0f0f0f0fu) | (spread4(qh >> (4u * j)) << 4u);
    let hi = ((q >> 4u) & 0x0f0f0f0fu) | (spread4(qh >> (16u + 4u * j)) << 4u);
    return vec3<u32>(lo, hi, d);
}
fn qi_quants(row_base: u32, u: u32, j: u32) -> vec2<u32> {
    return q5_0_quarter(row_base, u, j).xy;
}
fn qi_scale(row_base: u32, u: u32) -> vec2<f32> {
    return vec2<f32>(w_f16(row_base + u * 22u), 0.0);
}
fn dot_q(row_base: u32, u: u32, j: u32, n_in: u32, xa: vec4<f32>, xb: vec4<f32>, sx: f32) -> f32 {
    let q = q5_0_quarter(row_base, u, j);
    let d = unpack2x16float(q.z).x;
    return d * (dot_bytes(q.x, xa) + dot_bytes(q.y, xb) - f32(QI_OFFSET) * sx);
}
#endif

#ifdef TYPE_Q8_0
#define Q_DOT 1
const QI_OFFSET: i32 = 0;
fn qi_quants(row_base: u32, u: u32, j: u32) -> vec2<u32> {
    return w_u32x2_2(row_base + u * 34u + 2u + 8u * j);
}
fn qi_scale(row_base: u32, u: u32) -> vec2<f32> {
    return vec2<f32>(w_f16(row_base + u * 34u), 0.0);
}
fn dot_q(row_base: u32, u: u32, j: u32, n_in: u32, xa: vec4<f32>, xb: vec4<f32>, sx: f32) -> f32 {
    let q = qi_quants(row_base, u, j);
    return qi_scale(row_base, u).x * (dot(sbytes4f(q.x), xa) + dot(sbytes4f(q.y), xb));
}
#endif

#ifdef TYPE_Q4_K
#define Q_DOT 1
const QI_OFFSET: i32 = 0;
fn qi_quants(row_base: u32, u: u32, j: u32) -> vec2<u32> {
    let b = row_base + (u >> 3u) * 144u;
    let s = u & 7u;
    let q = w_u32x2_al(b + 16u + 32u * (s >> 1u) + 8u * j) >> vec2<u32>(4u * (s & 1u));
    return q & vec2<u32>(0x0f0f0f0fu);
}
fn qi_scale(row_base: u32, u: u32) -> vec2<f32> {
    let b = row_base + (u >> 3u) * 144u;
    let sm = k4_scale_min(b + 4u, u & 7u);
    let dd = unpack2x16float(w_u32_al(b));
    return vec2<f32>(dd.x * f32(sm.x), dd.y * f32(sm.y));
}
fn dot_q(row_base: u32, u: u32, j: u32, n_in: u32, xa: vec4<f32>, xb: vec4<f32>, sx: f32) -> f32 {
    let q = qi_quants(row_base, u, j);
    let s = qi_scale(row_base, u);
    return s.x * (dot_bytes(q.x, xa) + dot_bytes(q.y, xb)) - s.y * sx;
}
#endif

// The same products with x quantized (INT_DOT; the decode mat-vec and the prefill mat-mul):
// x becomes signed 8-bit integers, `xq` (words of four) times a scale `dx`, and the quants meet
// them in 4-way integer dot products (`dot4I8Packed`: one instruction on GPUs with packed
// integer dot products, where the float path spends a conversion and a multiply-add per
// element). Every type with `qi_quants` has one (Q_IDOT). Q4_0's and Q5_0's zero points come
// off in integers against the sum of the quantized x, so the rounding of x meets the centred
// quants; a minimum (Q4_K) takes the exact sum of x. Other types use the float path.
#ifdef INT_DOT
#include "int8.wgsl"

#if Q_DOT
#define Q_IDOT 1
// The decode mat-vec's product of quarter j of unit u with a thread's eight elements of x:
// `xq` their integers, `dx` their scale, `sx` their exact sum, `sq` the sum of the integers.
fn dot_qi(row_base: u32, u: u32, j: u32, xq: vec2<u32>, dx: f32, sx: f32, sq: i32) -> f32 {
    let q = qi_quants(row_base, u, j);
    let s = qi_scale(row_base, u);
    let i = dot4I8Packed(q.x, xq.x) + dot4I8Packed(q.y, xq.y);
    return s.x * dx * f32(i - QI_OFFSET * sq) - s.y * sx;
}
#endif
#endif

#if Q_DOT
#else
fn dot_q(row_base: u32, u: u32, j: u32, n_in: u32, xa: vec4<f32>, xb: vec4<f32>, sx: f32) -> f32 {
    let q = dequant_q(row_base, u, j, n_in);
    return dot(vec4<f32>(q[0]), xa) + dot(vec4<f32>(q[1]), xb);
}
#endif
