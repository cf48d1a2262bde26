// The inner loop of the decode mat-vec's UNROLL and BLOCKS variants (included by matvec.wgsl):
// one thread's sums over the units of its workgroup's ROWS rows (SWIGLU adds the up rows, NORM
// the sum of squares of x). UNROLL keeps them in vectors rather than arrays indexed in the loop
// (ROWS 4, or 8 with ROWS8, `walk`); BLOCKS walks whole units and its rows in a loop
// (`walk_blocks`, any ROWS).
//
// It is the only code of the mat-vec that depends on the weight type. A mat-vec over two
// matrices of different types (V_TYPE: the fused q/k/v product of a file whose attn_v has more
// bits than attn_q and attn_k) gets a second copy of this file and of quant.wgsl appended by
// the host (`registry::wgsl`), preprocessed for the second type and with every name they
// declare suffixed `_v` (`walk_v` reading `w_v`), so both types share one dispatch.

#include "quant.wgsl"

// One row (byte offset `b`) dotted with a quarter of x: in integers where the type has such a
// product and INT_DOT asks for it (`dot_qi`), else in floats.
fn dot1_q(b: u32, u: u32, j: u32, q: XQuarter) -> f32 {
#if Q_IDOT
    return dot_qi(b, u, j, q.xq, q.dx, q.sx, q.sq);
#else
    return dot_q(b, u, j, p.n_in, q.a, q.b, q.sx);
#endif
}

// Four rows (byte offsets `b`) dotted with a quarter of x.
fn dot4_q(b: vec4<u32>, u: u32, j: u32, q: XQuarter) -> vec4<f32> {
    return vec4<f32>(dot1_q(b.x, u, j, q), dot1_q(b.y, u, j, q), dot1_q(b.z, u, j, q), dot1_q(b.w, u, j, q));
}

#ifdef BLOCKS
// BLOCKS (for CPU adapters): each thread walks whole 32-element units instead of a quarter of
// one, so a unit's words are loaded once instead of once per quarter (the CPU drivers turn every
// load with a per-lane offset into a gather: lavapipe's mat-vecs run 1.2-2x faster this way).
// `q0` .. `q3` are the unit's quarters of x as `load_quarter` gives
// them, `sx` the sum of all 32 and, for Q8_0, `s3` that of every fourth (x[4i + 3]).
struct XUnit {
    q0: XQuarter,
    q1: XQuarter,
    q2: XQuarter,
    q3: XQuarter,
    sx: f32,
#ifdef TYPE_Q8_0
    s3: f32,
#endif
}

fn load_unit(u: u32, x_end: u32) -> XUnit {
    var xs: XUnit;
    xs.q0 = load_quarter(u, q_elems(0u), x_end);
    xs.q1 = load_quarter(u, q_elems(1u), x_end);
    xs.q2 = load_quarter(u, q_elems(2u), x_end);
    xs.q3 = load_quarter(u, q_elems(3u), x_end);
    xs.sx = xs.q0.sx + xs.q1.sx + xs.q2.sx + xs.q3.sx;
#ifdef TYPE_Q8_0
    // The sum of x[4i + 3] (for Q8_0's offset bytes, `q8_0_unit`).
    xs.s3 = xs.q0.a.w + xs.q0.b.w + xs.q1.a.w + xs.q1.b.w + xs.q2.a.w + xs.q2.b.w + xs.q3.a.w + xs.q3.b.w;
#endif
#ifdef MASKED_BYTES
    // Pre-scaled for `dot_placed`: x[4i + k] times BYTE_SCALE[k] (a power of two, exact), once
    // per unit for all the rows; `sx` and `ss` stay those of x.
    xs.q0.a *= BYTE_SCALE;
    xs.q0.b *= BYTE_SCALE;
    xs.q1.a *= BYTE_SCALE;
    xs.q1.b *= BYTE_SCALE;
    xs.q2.a *= BYTE_SCALE;
    xs.q2.b *= BYTE_SCALE;
    xs.q3.a *= BYTE_SCALE;
    xs.q3.b *= BYTE_SCALE;
#endif
    return xs;
}

// The sum of squares of a unit's elements of x (NORM).
fn unit_ss(xs: XUnit) -> f32 {
    return xs.q0.ss + xs.q1.ss + xs.q2.ss + xs.q3.ss;
}

// Four bytes of a word dotted with four elements of x as `load_unit` gives them. MASKED_BYTES:
// the bytes stay where they lie (masked, converted as i32), against x pre-scaled by
// BYTE_SCALE, so the scaling is paid once per unit instead of once per row (the bytes of
// `dot_bytes`: each below 128).
fn dot_placed(q: u32, xv: vec4<f32>) -> f32 {
#ifdef MASKED_BYTES
    return dot(placed_f(q), xv);
#else
    return dot_bytes(q, xv);
#endif
}

// Words made of the high half of each of `lo` and the low half of the word after it, `hi`: the
// words at 2 bytes past each of `lo`.
fn halves(lo: vec4<u32>, hi: vec4<u32>) -> vec4<u32> {
    return (lo >> vec4<u32>(16u)) | (hi << vec4<u32>(16u));
}

// Quarters p and q of x dotted with their quants as bytes (the elements `q_elems` names: `a`
// the first four of each quarter, `b` the second four).
fn dot_pair(a: vec2<u32>, b: vec2<u32>, p: XQuarter, q: XQuarter) -> f32 {
    return dot_placed(a.x, p.a) + dot_placed(b.x, p.b) + dot_placed(a.y, q.a) + dot_placed(b.y, q.b);
}

// The whole unit of x dotted with its quants as bytes: quarter j's in a[j] and b[j].
fn dot_unit(a: vec4<u32>, b: vec4<u32>, xs: XUnit) -> f32 {
    return dot_pair(a.xy, b.xy, xs.q0, xs.q1) + dot_pair(a.zw, b.zw, xs.q2, xs.q3);
}

// The unit products of Q4_0, Q5_0, Q8_0 (the Ahma-3B files' types), Q4_K and Q6_K (the 7B's), each
// word of a block read once: the host sets BLOCKS only for these types and without INT_DOT (for
// the other types a unit is four quarter products with their loads, which the quarter walk
// spreads better).
#ifdef TYPE_Q4_0
// A unit from its scale word (d in the low half) and its 16 quant bytes in four words.
fn q4_0_unit(d: f32, q: vec4<u32>, xs: XUnit) -> f32 {
    let lo = q & vec4<u32>(0x0f0f0f0fu);
    let hi = (q >> vec4<u32>(4u)) & vec4<u32>(0x0f0f0f0fu);
    return d * (dot_unit(lo, hi, xs) - 8.0 * xs.sx);
}

// The 18-byte block at an even byte offset: five words hold it whichever way it is aligned.
fn dot_b(b: u32, u: u32, xs: XUnit) -> f32 {
    let o = b + u * 18u;
    let i = o >> 2u;
    let w0 = w[i];
    let w1 = w[i + 1u];
    let w2 = w[i + 2u];
    let w3 = w[i + 3u];
    let w4 = w[i + 4u];
    let odd = (o & 2u) != 0u;
    let d = unpack2x16float(select(w0 & 0xffffu, w0 >> 16u, odd)).x;
    let q = select(halves(vec4<u32>(w0, w1, w2, w3), vec4<u32>(w1, w2, w3, w4)), vec4<u32>(w1, w2, w3, w4), vec4<bool>(odd));
    return q4_0_unit(d, q, xs);
}

// Units u (even) and u + 1 of a row at a 4-byte-aligned offset: 36 bytes in nine words, the
// first block 4-aligned and the second 2 bytes into word 4, so no select picks the halves.
fn dot_b2(b: u32, u: u32, xs: XUnit, xt: XUnit) -> f32 {
    let i = (b + u * 18u) >> 2u;
    let a = vec4<u32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
    let w4 = w[i + 4u];
    let d0 = unpack2x16float(a.x).x;
    let d1 = unpack2x16float(w4 >> 16u).x;
    let q1 = vec4<u32>(w[i + 5u], w[i + 6u], w[i + 7u], w[i + 8u]);
    return q4_0_unit(d0, halves(a, vec4<u32>(a.yzw, w4)), xs) + q4_0_unit(d1, q1, xt);
}
#endif
#ifdef TYPE_Q5_0
// Bits 4i .. 4i + 3 of `qh` moved to bit 4 of bytes 0..3 of word i (as `spread4` then a shift
// by 4, in one multiply: bit k times 2^(7k + 4) lands on bit 8k + 4, the other products on
// bits the mask clears, never carrying).
fn fifths(qh: u32) -> vec4<u32> {
    let nib = (vec4<u32>(qh) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u);
    return (nib * vec4<u32>(0x02040810u)) & vec4<u32>(0x10101010u);
}

// A unit from its scale, its 32 fifth bits `qh` and its 16 quant bytes in four words.
fn q5_0_unit(d: f32, qh: u32, q: vec4<u32>, xs: XUnit) -> f32 {
    let lo = (q & vec4<u32>(0x0f0f0f0fu)) | fifths(qh);
    let hi = ((q >> vec4<u32>(4u)) & vec4<u32>(0x0f0f0f0fu)) | fifths(qh >> 16u);
    return d * (dot_unit(lo, hi, xs) - 16.0 * xs.sx);
}

// The 22-byte block at an even byte offset: six words hold it whichever way it is aligned (as
// `q5_0_quarter` reads a quarter of it).
fn dot_b(b: u32, u: u32, xs: XUnit) -> f32 {
    let o = b + u * 22u;
    let i = o >> 2u;
    let w0 = w[i];
    let w1 = w[i + 1u];
    let w2 = w[i + 2u];
    let w3 = w[i + 3u];
    let w4 = w[i + 4u];
    let w5 = w[i + 5u];
    let odd = (o & 2u) != 0u;
    let d = unpack2x16float(select(w0 & 0xffffu, w0 >> 16u, odd)).x;
    let qh = select((w0 >> 16u) | (w1 << 16u), w1, odd);
    let q = select(halves(vec4<u32>(w1, w2, w3, w4), vec4<u32>(w2, w3, w4, w5)), vec4<u32>(w2, w3, w4, w5), vec4<bool>(odd));
    return q5_0_unit(d, qh, q, xs);
}

// Units u (even) and u + 1 of a row at a 4-byte-aligned offset: 44 bytes in eleven words, the
// second block 2 bytes into word 5 (see the Q4_0 `dot_b2`).
fn dot_b2(b: u32, u: u32, xs: XUnit, xt: XUnit) -> f32 {
    let i = (b + u * 22u) >> 2u;
    let w0 = w[i];
    let a = vec4<u32>(w[i + 1u], w[i + 2u], w[i + 3u], w[i + 4u]);
    let w5 = w[i + 5u];
    let d0 = unpack2x16float(w0).x;
    let d1 = unpack2x16float(w5 >> 16u).x;
    let q1 = vec4<u32>(w[i + 7u], w[i + 8u], w[i + 9u], w[i + 10u]);
    return q5_0_unit(d0, (w0 >> 16u) | (a.x << 16u), halves(a, vec4<u32>(a.yzw, w5)), xs)
        + q5_0_unit(d1, w[i + 6u], q1, xt);
}
#endif
#ifdef TYPE_Q8_0
// A unit from its scale and its quant words: 2j in ev[j], 2j + 1 in od[j] (quarter j). The
// signed bytes are read as placed (MASKED_BYTES, which BLOCKS brings) without a sign extension
// per byte: one xor per word offsets bytes 0..2 by 128 (the top byte is signed as placed),
// and 128 times the sum of their elements of x is taken off once (SwiftShader: 9% faster).
fn q8_0_unit(d: f32, ev: vec4<u32>, od: vec4<u32>, xs: XUnit) -> f32 {
    let f = vec4<u32>(0x00808080u);
    let e2 = ev ^ f;
    let o2 = od ^ f;
    let s = dot(placed_f(e2.x), xs.q0.a) + dot(placed_f(o2.x), xs.q0.b)
        + dot(placed_f(e2.y), xs.q1.a) + dot(placed_f(o2.y), xs.q1.b)
        + dot(placed_f(e2.z), xs.q2.a) + dot(placed_f(o2.z), xs.q2.b)
        + dot(placed_f(e2.w), xs.q3.a) + dot(placed_f(o2.w), xs.q3.b);
    return d * (s - 128.0 * (xs.sx - xs.s3));
}

// The 34-byte block at an even byte offset: nine words hold it whichever way it is aligned.
fn dot_b(b: u32, u: u32, xs: XUnit) -> f32 {
    let o = b + u * 34u;
    let i = o >> 2u;
    let odd = (o & 2u) != 0u;
    let w0 = w[i];
    let d = unpack2x16float(select(w0 & 0xffffu, w0 >> 16u, odd)).x;
    let lo = vec4<u32>(w0, w[i + 2u], w[i + 4u], w[i + 6u]);
    let mid = vec4<u32>(w[i + 1u], w[i + 3u], w[i + 5u], w[i + 7u]);
    let hi = vec4<u32>(lo.yzw, w[i + 8u]);
    // Quant words 2j and 2j + 1 (quarter j): words 2j + 1 and 2j + 2 of the block when it
    // starts 2 bytes into a word, else the halves straddling words 2j, 2j + 1 and 2j + 2.
    let ev = select(halves(lo, mid), mid, vec4<bool>(odd));
    let od = select(halves(mid, hi), hi, vec4<bool>(odd));
    return q8_0_unit(d, ev, od, xs);
}

// Units u (even) and u + 1 of a row at a 4-byte-aligned offset: 68 bytes in seventeen words,
// the second block 2 bytes into word 8 (see the Q4_0 `dot_b2`).
fn dot_b2(b: u32, u: u32, xs: XUnit, xt: XUnit) -> f32 {
    let i = (b + u * 34u) >> 2u;
    let lo = vec4<u32>(w[i], w[i + 2u], w[i + 4u], w[i + 6u]);
    let mid = vec4<u32>(w[i + 1u], w[i + 3u], w[i + 5u], w[i + 7u]);
    let w8 = w[i + 8u];
    let d0 = unpack2x16float(lo.x).x;
    let d1 = unpack2x16float(w8 >> 16u).x;
    let ev1 = vec4<u32>(w[i + 9u], w[i + 11u], w[i + 13u], w[i + 15u]);
    let od1 = vec4<u32>(w[i + 10u], w[i + 12u], w[i + 14u], w[i + 16u]);
    return q8_0_unit(d0, halves(lo, mid), halves(mid, vec4<u32>(lo.yzw, w8)), xs)
        + q8_0_unit(d1, ev1, od1, xt);
}
#endif
#ifdef TYPE_Q4_K
// Unit s's 6-bit scale and min (`get_scale_min_k4`: bytes s % 4, s % 4 + 4 and s % 4 + 8 of the
// three scale words `sw`).
fn q4_k_scale_min(s: u32, sw: vec3<u32>) -> vec2<f32> {
    let v = (sw >> vec3<u32>(8u * (s & 3u))) & vec3<u32>(0xffu);
    let low = s < 4u;
    let sc = select((v.z & 15u) | ((v.x >> 6u) << 4u), v.x & 63u, low);
    let mn = select((v.z >> 4u) | ((v.y >> 6u) << 4u), v.y & 63u, low);
    return vec2<f32>(f32(sc), f32(mn));
}

// Unit s = u % 8 of a 144-byte super-block (4-aligned: d and dmin, 12 bytes of 6-bit scales
// and mins, 128 bytes of nibbles): one word for d and dmin, the three scale words, and the
// unit's eight words of nibbles (low nibbles for even s, high for odd).
fn dot_b(b: u32, u: u32, xs: XUnit) -> f32 {
    let i = (b + (u >> 3u) * 144u) >> 2u;
    let s = u & 7u;
    let dd = unpack2x16float(w[i]);
    let sm = q4_k_scale_min(s, vec3<u32>(w[i + 1u], w[i + 2u], w[i + 3u]));
    let q0 = i + 4u + 8u * (s >> 1u);
    let nib = vec4<u32>(4u * (s & 1u));
    let m = vec4<u32>(0x0f0f0f0fu);
    let qa = (vec4<u32>(w[q0], w[q0 + 2u], w[q0 + 4u], w[q0 + 6u]) >> nib) & m;
    let qb = (vec4<u32>(w[q0 + 1u], w[q0 + 3u], w[q0 + 5u], w[q0 + 7u]) >> nib) & m;
    return dd.x * sm.x * dot_unit(qa, qb, xs) - dd.y * sm.y * xs.sx;
}

// Units u (even) and u + 1, whose nibbles are the low and high halves of the same eight words
// and whose scales come from the same three: 12 loads for the two instead of 12 each.
fn dot_b2(b: u32, u: u32, xs: XUnit, xt: XUnit) -> f32 {
    let i = (b + (u >> 3u) * 144u) >> 2u;
    let s = u & 7u;
    let dd = unpack2x16float(w[i]);
    let sw = vec3<u32>(w[i + 1u], w[i + 2u], w[i + 3u]);
    let sm0 = q4_k_scale_min(s, sw);
    let sm1 = q4_k_scale_min(s + 1u, sw);
    let q0 = i + 4u + 4u * s;
    let ev = vec4<u32>(w[q0], w[q0 + 2u], w[q0 + 4u], w[q0 + 6u]);
    let od = vec4<u32>(w[q0 + 1u], w[q0 + 3u], w[q0 + 5u], w[q0 + 7u]);
    let m = vec4<u32>(0x0f0f0f0fu);
    let f = vec4<u32>(4u);
    let p0 = dot_unit(ev & m, od & m, xs);
    let p1 = dot_unit((ev >> f) & m, (od >> f) & m, xt);
    return dd.x * (sm0.x * p0 + sm1.x * p1) - dd.y * (sm0.y * xs.sx + sm1.y * xt.sx);
}
#endif
#ifdef TYPE_Q6_K
// The eight words of the 32 bytes at an even byte offset `o` (nine loads): words 0, 2, 4, 6
// (`ev`) and 1, 3, 5, 7 (`od`).
struct Words8 {
    ev: vec4<u32>,
    od: vec4<u32>,
}

fn words8(o: u32) -> Words8 {
    let i = o >> 2u;
    let lo = vec4<u32>(w[i], w[i + 2u], w[i + 4u], w[i + 6u]);
    let mid = vec4<u32>(w[i + 1u], w[i + 3u], w[i + 5u], w[i + 7u]);
    let hi = vec4<u32>(lo.yzw, w[i + 8u]);
    let odd = vec4<bool>((o & 2u) != 0u);
    return Words8(select(lo, halves(lo, mid), odd), select(mid, halves(mid, hi), odd));
}

// Unit 4n + c of a 210-byte super-block (at an even offset; ql[128] @0, qh[64] @128, int8
// scales[16] @192, d @208) from d, its two scales `sw` (8n + 2c and the next: elements 0..15
// and 16..31), its 32 bytes of low bits `ql` (ql[64n + 32(c & 1)..], high nibbles when c >= 2)
// and of high bits `qh` (qh[32n..], bits 2c and 2c + 1).
fn q6_k_unit(d: f32, sw: u32, ql: Words8, qh: Words8, c: u32, xs: XUnit) -> f32 {
    let sc0 = f32(bitcast<i32>(sw << 24u) >> 24u);
    let sc1 = f32(bitcast<i32>(sw << 16u) >> 24u);
    let m4 = vec4<u32>(0x0f0f0f0fu);
    let m2 = vec4<u32>(0x03030303u);
    let ls = vec4<u32>(4u * (c >> 1u));
    let hs = vec4<u32>(2u * c);
    let qa = ((ql.ev >> ls) & m4) | (((qh.ev >> hs) & m2) << vec4<u32>(4u));
    let qb = ((ql.od >> ls) & m4) | (((qh.od >> hs) & m2) << vec4<u32>(4u));
    let t0 = dot_pair(qa.xy, qb.xy, xs.q0, xs.q1) - 32.0 * (xs.q0.sx + xs.q1.sx);
    let t1 = dot_pair(qa.zw, qb.zw, xs.q2, xs.q3) - 32.0 * (xs.q2.sx + xs.q3.sx);
    return d * (sc0 * t0 + sc1 * t1);
}

// Units 4g .. 4g + 3 (half n = g % 2 of super-block g / 2), which share their qh bytes and in
// pairs their ql bytes: 27 + 4 + 1 loads for the four instead of 20 each (SwiftShader and
// lavapipe: 4096 x 11008 in 40-50% less time than unit by unit).
fn dot_b4(b: u32, g: u32, x0: XUnit, x1: XUnit, x2: XUnit, x3: XUnit) -> f32 {
    let o = b + (g >> 1u) * 210u;
    let n = g & 1u;
    let d = w_f16(o + 208u);
    let sb = o + 192u + 8u * n;
    let ql0 = words8(o + 64u * n);
    let ql1 = words8(o + 64u * n + 32u);
    let qh = words8(o + 128u + 32u * n);
    return q6_k_unit(d, w_u16(sb), ql0, qh, 0u, x0) + q6_k_unit(d, w_u16(sb + 2u), ql1, qh, 1u, x1)
        + q6_k_unit(d, w_u16(sb + 4u), ql0, qh, 2u, x2) + q6_k_unit(d, w_u16(sb + 6u), ql1, qh, 3u, x3);
}
#endif

// Thread `t`'s sums for rows r0 .. r0 + ROWS - 1 of a matrix with `row_bytes` bytes per row,
// added into `acc` as the mat-vec's main lays them out: acc[r] row r (the gate row with
// SWIGLU), acc[ROWS + r] up row r, acc[NACC] the sum of squares of its elements of x (NORM).
// Rows past `last` repeat row `last` (their sums are discarded). The rows are a loop, not
// unrolled: SwiftShader ran eight (or sixteen) inlined unit products 20-35% slower than the
// loop (its registers spill), lavapipe runs both alike; and any row count works.
fn walk_blocks(t: u32, r0: u32, last: u32, row_bytes: u32, units: u32, x_end: u32, acc: ptr<function, array<f32, NRED>>) {
    var rb: array<u32, NACC>;
    for (var r = 0u; r < ROWS; r++) {
        let row = min(r0 + r, last);
        rb[r] = row * row_bytes;
#ifdef SWIGLU
        rb[ROWS + r] = (row + p.up_rows) * row_bytes;
#endif
    }
#ifdef TYPE_Q6_K
    // Q6_K (256-element super-blocks, so whole groups of four units): four units a step, which
    // share most of their words (`dot_b4`).
    for (var g = t; g < units / 4u; g += WG) {
        let x0 = load_unit(4u * g, x_end);
        let x1 = load_unit(4u * g + 1u, x_end);
        let x2 = load_unit(4u * g + 2u, x_end);
        let x3 = load_unit(4u * g + 3u, x_end);
#ifdef NORM
        (*acc)[NACC] += unit_ss(x0) + unit_ss(x1) + unit_ss(x2) + unit_ss(x3);
#endif
        for (var k = 0u; k < NACC; k++) {
            (*acc)[k] += dot_b4(rb[k], g, x0, x1, x2, x3);
        }
    }
#else
#ifdef UNIT_PAIRS
    // Two units a step (`dot_b2`). Q4_0, Q5_0 and Q8_0 with rows of 4-byte-aligned length
    // (their blocks are 2 bytes past a multiple of 4, so an even number of units): a pair of
    // units from an even one is 4-aligned and laid out alike in every row, so `dot_b2` reads
    // it without picking halves by the alignment (SwiftShader: 15-20% faster). Q4_K: a pair
    // shares its words of nibbles (low and high halves) and its scale words.
    for (var u = 2u * t; u < units; u += 2u * WG) {
        let xs = load_unit(u, x_end);
        let xt = load_unit(u + 1u, x_end);
#ifdef NORM
        (*acc)[NACC] += unit_ss(xs) + unit_ss(xt);
#endif
        for (var k = 0u; k < NACC; k++) {
            (*acc)[k] += dot_b2(rb[k], u, xs, xt);
        }
    }
#else
    for (var u = t; u < units; u += WG) {
        let xs = load_unit(u, x_end);
#ifdef NORM
        (*acc)[NACC] += unit_ss(xs);
#endif
        for (var k = 0u; k < NACC; k++) {
            (*acc)[k] += dot_b(rb[k], u, xs);
        }
    }
#endif
#endif
}
#endif

#ifdef UNROLL
#ifndef BLOCKS
// One thread's sums: rows r0 .. r0 + 3 (`a`), r0 + 4 .. r0 + 7 with ROWS8 (`ah`), their up rows
// with SWIGLU (`au`, `auh`), and the sum of squares of its elements of x (`ss`).
struct WalkSums {
    a: vec4<f32>,
    ah: vec4<f32>,
    au: vec4<f32>,
    auh: vec4<f32>,
    ss: f32,
}

// Thread `t`'s sums for rows r0.. of a matrix with `row_bytes` bytes per row. Rows past `last`
// repeat row `last` (their sums are discarded), so the loop needs no per-row branch.
fn walk(t: u32, r0: u32, last: u32, row_bytes: u32, units: u32, x_end: u32) -> WalkSums {
    let j = t & 3u;
    let e = q_elems(j);
    let rr = min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
    let b4 = rr * row_bytes;
    var a4 = vec4<f32>(0.0);
#ifdef ROWS8
    let rh = min(vec4<u32>(r0 + 4u) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(last));
    let bh4 = rh * row_bytes;
    var ah4 = vec4<f32>(0.0);
#endif
#ifdef SWIGLU
    let bu4 = (rr + vec4<u32>(p.up_rows)) * row_bytes;
    var au4 = vec4<f32>(0.0);
#ifdef ROWS8
    let buh4 = (rh + vec4<u32>(p.up_rows)) * row_bytes;
    var auh4 = vec4<f32>(0.0);
#endif
#endif
    var ss4 = 0.0;
    var u = t >> 2u;
#ifdef PAIRS
    // Two units per step, u and u + WG / 4: the loads of both are issued before their products,
    // so each thread has twice the bytes in flight (the loop is latency-bound, not
    // bandwidth-bound). The loop below takes the one unit that may be left.
    for (; u + WG / 4u < units; u += WG / 2u) {
        let u2 = u + WG / 4u;
        let q = load_quarter(u, e, x_end);
        let q2 = load_quarter(u2, e, x_end);
        ss4 += q.ss + q2.ss;
        a4 += dot4_q(b4, u, j, q) + dot4_q(b4, u2, j, q2);
#ifdef ROWS8
        ah4 += dot4_q(bh4, u, j, q) + dot4_q(bh4, u2, j, q2);
#endif
#ifdef SWIGLU
        au4 += dot4_q(bu4, u, j, q) + dot4_q(bu4, u2, j, q2);
#ifdef ROWS8
        auh4 += dot4_q(buh4, u, j, q) + dot4_q(buh4, u2, j, q2);
#endif
#endif
    }
#endif
    for (; u < units; u += WG / 4u) {
        let q = load_quarter(u, e, x_end);
        ss4 += q.ss;
        a4 += dot4_q(b4, u, j, q);
#ifdef ROWS8
        ah4 += dot4_q(bh4, u, j, q);
#endif
#ifdef SWIGLU
        au4 += dot4_q(bu4, u, j, q);
#ifdef ROWS8
        auh4 += dot4_q(buh4, u, j, q);
#endif
#endif
    }
    var s: WalkSums;
    s.a = a4;
    s.ss = ss4;
#ifdef ROWS8
    s.ah = ah4;
#endif
#ifdef SWIGLU
    s.au = au4;
#ifdef ROWS8
    s.auh = auh4;
#endif
#endif
    return s;
}
#endif
#endif
