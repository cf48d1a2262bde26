// Matrix-vector product for decode: y[y_offset + r] = dot(W[r, :], x[x_offset .. x_offset + n_in])
// (or += with ACCUMULATE, e.g. to add the residual in place) for the rows of one part of a
// QuantMatrix.
//
// Layout of the work. Each workgroup owns ROWS consecutive rows. Its WG threads walk the rows in
// 32-element units, four threads per unit: thread t takes quarter j = t % 4 of units t / 4,
// t / 4 + WG / 4, ... (`dequant_q` in quant.wgsl: 4 or 8 bytes of quants each). So the threads
// of a subgroup read consecutive words of consecutive blocks (eight blocks per 32 threads), every
// weight byte is read once, and each thread loads its 8 elements of x once per unit and reuses
// them for all ROWS rows (so x is read once per workgroup). Rows are dotted in f32 (`dot_q` in
// quant.wgsl: block scale and offset applied once per quarter-unit, not per element) and the
// per-thread sums reduced with subgroupAdd plus a small workgroup array (SUBGROUPS), or with a
// workgroup-memory tree, or (FLAT_REDUCE, for CPU adapters, where each barrier switches every
// SIMD group of the workgroup) through workgroup memory in one round: one barrier, then one
// thread per output row adds up every thread's sums.
//
// NORM fuses the RMSNorm in front of the product (llama.cpp `rms_norm` + `mul` + `mul_mat`):
// x is the raw residual stream and nw the norm weight, and the kernel computes
//     y[r] = dot(W[r, :], x * nw) / sqrt(mean(x^2) + eps)
// The threads of a workgroup between them load every element of x exactly once, so the sum of
// squares is accumulated on the way and reduced with the row sums: no extra pass, no extra
// dispatch, and the normalized vector never touches memory.
//
// SWIGLU fuses the feed-forward gate: the matrix holds the gate rows followed by the up rows
// (stacked at load time), and y[r] = silu(gate_r . x) * (up_r . x) with up_r = row r + up_rows.
//
// Y2 / Y3 split the rows over two or three outputs (a stacked q/k/v matrix writing q, k and v):
// rows below seg1 go to y, rows in [seg1, seg2) to y2, rows from seg2 on to y3; output k
// receives row r at element y<k>_offset + r (offsets may wrap below zero as u32, so that a part
// of a split matrix that starts inside a segment indexes it correctly).
//
// UNROLL (with ROWS 4, or 8 and ROWS8) keeps the rows' sums in vectors instead of arrays
// indexed in the loop. PAIRS (with UNROLL) walks two units per loop step.
//
// INT_DOT (with UNROLL) quantizes each thread's eight elements of x to 8-bit integers with a
// scale of their own as it loads them (after the norm) and dots them with the quants in packed
// integer dot products (`dot_qi` in quant.wgsl; Q4_0, Q5_0, Q8_0 and Q4_K, other types keep
// the float product). Like llama.cpp's quantized-activation dot products, not bit-exact.
//
// ROPE (decode's q/k/v, with Y2 and Y3, one token at position step.pos0) fuses llama.cpp's
// NORMAL-mode rotary embedding and the KV-cache store into the product, as `rope.wgsl` does it in
// a dispatch of its own: rows below seg1 are q (rotated, into y), rows in [seg1, seg2) are k
// (rotated, into the key cache y2 at row pos), rows from seg2 on are v (into the value cache y3
// at row pos). The pairs (x[2i], x[2i+1]) of a head rotate together, so each workgroup holds
// whole pairs (ROWS even, every part and segment starting at an even row and element) and the
// partner's value comes through workgroup memory. The caches hold f16 pairs with KV_F16.
//
// V_TYPE (with UNROLL and Y3; its value names a ggml type) reads the rows from seg2 on from a
// second matrix w_v of that type, so a q/k/v stack whose attn_v has more bits than attn_q and
// attn_k (llama.cpp's Q4_K_M and Q5_K_M files) is still one dispatch: each workgroup's rows lie
// in one of the two matrices (seg2 is a multiple of ROWS), and it walks that matrix with that
// type's loop (`walk` or `walk_v`, see matvec_walk.wgsl).
//
// X4 (x_offset and n_in multiples of 4: every quantized type's rows) reads x and the norm
// weight as vec4: one 16-byte load for four elements instead of four loads.
//
// BLOCKS (for CPU adapters) gives each thread whole units (t, t + WG, ...) instead of
// quarters, so Q4_0, Q5_0, Q8_0, Q4_K and Q6_K load each word of a unit once (`dot_b` in
// matvec_walk.wgsl); x is still loaded once per workgroup. Its rows are a loop over the `acc`
// array (`walk_blocks`), so ROWS may be 16 or 32 (more rows per load of x) and may exceed WG:
// each thread finishes rows t, t + WG, ... Replaces UNROLL's walk and PAIRS. The host sets
// MASKED_BYTES with it: quants are read without shifts (`dot_bytes`, quant.wgsl). UNIT_PAIRS
// (with BLOCKS) walks two units a step where they share words or alignment (Q4_K; Q4_0, Q5_0
// and Q8_0 rows of a 4-aligned length); Q6_K always walks four, which share their high bits.
//
// Defines: TYPE_<ggml type> (one), WG (power of two, at least 4), ROWS, F16, SUBGROUPS,
// ACCUMULATE, SWIGLU, NORM, Y2, Y3, UNROLL, ROWS8, PAIRS, INT_DOT, ROPE, KV_F16, V_TYPE, X4,
// FLAT_REDUCE, BLOCKS, MASKED_BYTES, UNIT_PAIRS.

#ifndef WG
#define WG 128
#endif
#ifndef ROWS
#define ROWS 4
#endif
// Sums per thread: one per row, or a gate and an up sum per row, plus the sum of squares of x.
#ifdef SWIGLU
const NACC: u32 = 2u * ROWS;
#else
const NACC: u32 = ROWS;
#endif
#ifdef NORM
const NRED: u32 = NACC + 1u;
#else
const NRED: u32 = NACC;
#endif

struct MatVecParams {
    n_in: u32,       // row length in elements
    n_rows: u32,     // rows in this part (SWIGLU: output rows = gate rows)
    row_bytes: u32,  // bytes per row (whole blocks)
    x_offset: u32,   // first element of x
    y_offset: u32,   // element of y receiving row 0 of this part
    groups_x: u32,   // workgroups along x in the dispatch grid (rows may need a 2D grid)
    up_rows: u32,    // SWIGLU: index of the first up row (= n_ff); else 0
    eps_bits: u32,   // NORM: rms_norm_eps as f32 bits
    seg1: u32,       // Y2: first row (of this part) written to y2; else n_rows
    seg2: u32,       // Y3: first row (of this part) written to y3; else n_rows
    y2_offset: u32,  // Y2: element of y2 receiving row 0 of this part (wrapping)
    y3_offset: u32,  // Y3: element of y3 receiving row 0 of this part (wrapping)
    head_dim: u32,   // ROPE: elements per head (even)
    rope_dim: u32,   // ROPE: rotated elements per head (even, <= head_dim)
    kv_pairs: u32,   // ROPE: element pairs per cache row (n_head_kv * head_dim / 2)
    row_bytes_v: u32, // V_TYPE: bytes per row of w_v (rows from seg2 on); else 0
}

#ifdef ROPE
#ifdef KV_F16
alias kv2 = vec2<f16>;
#else
alias kv2 = vec2<f32>;
#endif
#define STEP_BINDING 7
#include "step.wgsl"
@group(0) @binding(8) var<storage, read> cs: array<vec2<f32>>; // (n_ctx, rope_dim / 2): (cos, sin)
// The finished values of this workgroup's rows, for the rotation partners.
var<workgroup> fin: array<f32, ROWS>;
#endif

@group(0) @binding(0) var<uniform> p: MatVecParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;        // (n_rows, row_bytes) raw GGUF blocks
#ifdef X4
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;  // (x_offset + n_in) / 4
#else
@group(0) @binding(2) var<storage, read> x: array<f32>;        // (x_offset + n_in)
#endif
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // (y_offset + rows below seg1)
#ifdef V_TYPE
@group(0) @binding(9) var<storage, read> w_v: array<u32>;      // rows from seg2 on, second type
#endif
#ifdef NORM
#ifdef X4
@group(0) @binding(4) var<storage, read> nw: array<vec4<f32>>; // (n_in / 4) norm weight
#else
@group(0) @binding(4) var<storage, read> nw: array<f32>;       // (n_in) norm weight
#endif
#endif
#ifdef ROPE
@group(0) @binding(5) var<storage, read_write> y2: array<kv2>; // key cache (n_ctx, kv_pairs)
@group(0) @binding(6) var<storage, read_write> y3: array<kv2>; // value cache (n_ctx, kv_pairs)
#else
#ifdef Y2
@group(0) @binding(5) var<storage, read_write> y2: array<f32>; // rows [seg1, seg2)
#endif
#ifdef Y3
@group(0) @binding(6) var<storage, read_write> y3: array<f32>; // rows [seg2, n_rows)
#endif
#endif

#include "quant.wgsl"

// Reduction scratch: per subgroup (at least 4 lanes each) or per thread, NRED sums.
var<workgroup> partial: array<f32, NRED * WG>;

// x[i .. i + 4], zero past `end`. With X4 (x_offset and n_in multiples of 4, so i is one and
// the four lie all below `end` or all past it) one 16-byte load.
fn load_x4(i: u32, end: u32) -> vec4<f32> {
#ifdef X4
    return select(vec4<f32>(0.0), x[i >> 2u], i < end);
#else
    let idx = vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u);
    let v = vec4<f32>(x[idx.x], x[idx.y], x[idx.z], x[idx.w]);
    return select(vec4<f32>(0.0), v, idx < vec4<u32>(end));
#endif
}

#ifdef NORM
fn load_nw4(i: u32) -> vec4<f32> {
#ifdef X4
    return select(vec4<f32>(0.0), nw[i >> 2u], i < p.n_in);
#else
    let idx = vec4<u32>(i) + vec4<u32>(0u, 1u, 2u, 3u);
    let v = vec4<f32>(nw[idx.x], nw[idx.y], nw[idx.z], nw[idx.w]);
    return select(vec4<f32>(0.0), v, idx < vec4<u32>(p.n_in));
#endif
}
#endif

// One thread's quarter of unit u of x: elements e.x.. and e.y.. (four each), times the norm
// weight with NORM; `ss` is their sum of squares before the weight, `sx` the sum of all eight
// after it (shared by every row: `dot_q` folds the block offsets out).
// With INT_DOT also the eight as signed 8-bit integers, `xq` (a's four, b's four) times `dx`:
// round(127 * x / max|x|), so dx = max|x| / 127 and the rounding error is at most dx / 2; `sq`
// is the sum of the eight integers.
struct XQuarter {
    a: vec4<f32>,
    b: vec4<f32>,
    ss: f32,
    sx: f32,
#ifdef INT_DOT
    xq: vec2<u32>,
    dx: f32,
    sq: i32,
#endif
}

fn load_quarter(u: u32, e: vec2<u32>, x_end: u32) -> XQuarter {
    let xi = p.x_offset + u * 32u;
    var q: XQuarter;
    q.a = load_x4(xi + e.x, x_end);
    q.b = load_x4(xi + e.y, x_end);
    q.ss = 0.0;
#ifdef NORM
    q.ss = dot(q.a, q.a) + dot(q.b, q.b);
    q.a *= load_nw4(u * 32u + e.x);
    q.b *= load_nw4(u * 32u + e.y);
#endif
    q.sx = dot(q.a + q.b, vec4<f32>(1.0));
#ifdef INT_DOT
    let m4 = max(abs(q.a), abs(q.b));
    let sc = x8_scale(max(max(m4.x, m4.y), max(m4.z, m4.w)));
    q.xq = vec2<u32>(pack4x8snorm(q.a * sc.x), pack4x8snorm(q.b * sc.x));
    q.dx = sc.y;
    q.sq = x8_sum(q.xq.x) + x8_sum(q.xq.y);
#endif
    return q;
}

#include "matvec_walk.wgsl"

fn put(at: u32, s: f32) {
#ifdef ACCUMULATE
    y[at] += s;
#else
    y[at] = s;
#endif
}

// The value of an output row from its reduced sums: `g` (the row's dot product, or the gate's),
// `v` (the up row's; unused without SWIGLU) and `ss` (sum of squares of x; NORM only).
fn finish(g_in: f32, v_in: f32, ss: f32) -> f32 {
    var g = g_in;
    var v = v_in;
#ifdef NORM
    let scale = 1.0 / sqrt(ss / f32(p.n_in) + bitcast<f32>(p.eps_bits));
    g *= scale;
    v *= scale;
#endif
#ifdef SWIGLU
    return g / (1.0 + exp(-g)) * v;
#else
    return g;
#endif
}

// Output row t's value from the first n records of NRED sums in `partial` (one per subgroup,
// or per thread with FLAT_REDUCE).
fn finish_records(t: u32, n: u32) -> f32 {
    var g = 0.0;
    var v = 0.0;
    var ss = 0.0;
    for (var i = 0u; i < n; i++) {
        g += partial[i * NRED + t];
#ifdef SWIGLU
        v += partial[i * NRED + ROWS + t];
#endif
#ifdef NORM
        ss += partial[i * NRED + NACC];
#endif
    }
    return finish(g, v, ss);
}

// Output row r's value once the workgroup's sums are reduced: from the `n` records in
// `partial` with subgroups or FLAT_REDUCE, else from the tree's totals (`n` unused).
fn reduced(r: u32, n: u32) -> f32 {
#ifdef SUBGROUPS
    return finish_records(r, n);
#else
#ifdef FLAT_REDUCE
    return finish_records(r, n);
#else
    var v = 0.0;
    var ss = 0.0;
#ifdef SWIGLU
    v = partial[(ROWS + r) * WG];
#endif
#ifdef NORM
    ss = partial[NACC * WG];
#endif
    return finish(partial[r * WG], v, ss);
#endif
#endif
}

#ifdef ROPE
// Row `row` with value `s`; `o` is the value of its pair partner (row ^ 1).
fn store_rope(row: u32, s: f32, o: f32) {
    if (row >= p.n_rows) {
        return;
    }
    let odd = (row & 1u) == 1u;
    let pr = select(vec2<f32>(s, o), vec2<f32>(o, s), odd);
    let pos = step.pos0;
    if (row >= p.seg2) {
        if (!odd) {
            y3[pos * p.kv_pairs + (p.y3_offset + row) / 2u] = kv2(pr);
        }
        return;
    }
    let is_k = row >= p.seg1;
    let e = select(p.y_offset, p.y2_offset, is_k) + row;
    let d = e % p.head_dim;
    var r = pr;
    if (d < p.rope_dim) {
        let c = cs[pos * (p.rope_dim / 2u) + d / 2u];
        r = vec2<f32>(pr.x * c.x - pr.y * c.y, pr.x * c.y + pr.y * c.x);
    }
    if (is_k) {
        if (!odd) {
            y2[pos * p.kv_pairs + e / 2u] = kv2(r);
        }
        return;
    }
    y[e] = select(r.x, r.y, odd);
}
#else
// Writes output row `row` (value `s`) to its output.
fn store_row(row: u32, s: f32) {
    if (row >= p.n_rows) {
        return;
    }
#ifdef Y3
    if (row >= p.seg2) {
#ifdef ACCUMULATE
        y3[p.y3_offset + row] += s;
#else
        y3[p.y3_offset + row] = s;
#endif
        return;
    }
#endif
#ifdef Y2
    if (row >= p.seg1) {
#ifdef ACCUMULATE
        y2[p.y2_offset + row] += s;
#else
        y2[p.y2_offset + row] = s;
#endif
        return;
    }
#endif
    put(p.y_offset + row, s);
}
#endif

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
    // Byte offset of each row this workgroup reads. Rows past the end repeat the last row (their
    // sums are discarded), so the loop below needs no per-row branch.
#ifndef UNROLL
#ifndef BLOCKS
    let j = t & 3u;
    let e = q_elems(j);
    var base: array<u32, NACC>;
    for (var r = 0u; r < ROWS; r++) {
        let row = min(row0 + r, p.n_rows - 1u);
        base[r] = row * p.row_bytes;
#ifdef SWIGLU
        base[ROWS + r] = (row + p.up_rows) * p.row_bytes;
#endif
    }
#endif
#endif
    // acc[r]: row r (or gate row r); acc[ROWS + r]: up row r; acc[NACC]: sum of squares of x.
    var acc: array<f32, NRED>;
#ifdef BLOCKS
#ifdef V_TYPE
    // Rows from seg2 on (the v rows, which start a workgroup) are the second matrix, w_v.
    if (row0 >= p.seg2) {
        walk_blocks_v(t, row0 - p.seg2, p.n_rows - 1u - p.seg2, p.row_bytes_v, units, x_end, &acc);
    } else {
        walk_blocks(t, row0, p.seg2 - 1u, p.row_bytes, units, x_end, &acc);
    }
#else
    walk_blocks(t, row0, p.n_rows - 1u, p.row_bytes, units, x_end, &acc);
#endif
#else
#ifdef UNROLL
    // ROWS == 4, or 8 with ROWS8 (chosen on the host): the rows' offsets and sums live in
    // vectors and are written out one by one, so no array is indexed inside the loop.
#ifdef V_TYPE
    // Rows from seg2 on (the v rows, which start a workgroup) are the second matrix, w_v.
    var s: WalkSums;
    if (row0 >= p.seg2) {
        let sv = walk_v(t, row0 - p.seg2, p.n_rows - 1u - p.seg2, p.row_bytes_v, units, x_end);
        s = WalkSums(sv.a, sv.ah, sv.au, sv.auh, sv.ss);
    } else {
        s = walk(t, row0, p.seg2 - 1u, p.row_bytes, units, x_end);
    }
#else
    let s = walk(t, row0, p.n_rows - 1u, p.row_bytes, units, x_end);
#endif
    acc[0] = s.a.x;
    acc[1] = s.a.y;
    acc[2] = s.a.z;
    acc[3] = s.a.w;
#ifdef ROWS8
    acc[4] = s.ah.x;
    acc[5] = s.ah.y;
    acc[6] = s.ah.z;
    acc[7] = s.ah.w;
#endif
#ifdef SWIGLU
    acc[ROWS] = s.au.x;
    acc[ROWS + 1u] = s.au.y;
    acc[ROWS + 2u] = s.au.z;
    acc[ROWS + 3u] = s.au.w;
#ifdef ROWS8
    acc[ROWS + 4u] = s.auh.x;
    acc[ROWS + 5u] = s.auh.y;
    acc[ROWS + 6u] = s.auh.z;
    acc[ROWS + 7u] = s.auh.w;
#endif
#endif
#ifdef NORM
    acc[NACC] = s.ss;
#endif
#else
    for (var u = t >> 2u; u < units; u += WG / 4u) {
        let q = load_quarter(u, e, x_end);
#ifdef NORM
        acc[NACC] += q.ss;
#endif
        for (var r = 0u; r < NACC; r++) {
            acc[r] += dot_q(base[r], u, j, p.n_in, q.a, q.b, q.sx);
        }
    }
#endif
#endif

#ifdef SUBGROUPS
    // Subgroups are assumed to be laid out along local_invocation_index, as on every
    // implementation of 1D workgroups we know of.
    let sg_id = t / sg_size;
    let n_records = (WG + sg_size - 1u) / sg_size;
    for (var r = 0u; r < NRED; r++) {
        let s = subgroupAdd(acc[r]);
        if (sg_lane == 0u) {
            partial[sg_id * NRED + r] = s;
        }
    }
    workgroupBarrier();
#else
#ifdef FLAT_REDUCE
    // Every thread's sums are a record of their own: one barrier, then one thread per row.
    let n_records = u32(WG);
    for (var r = 0u; r < NRED; r++) {
        partial[t * NRED + r] = acc[r];
    }
    workgroupBarrier();
#else
    let n_records = 1u;
    for (var r = 0u; r < NRED; r++) {
        partial[r * WG + t] = acc[r];
    }
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (t < stride) {
            for (var r = 0u; r < NRED; r++) {
                partial[r * WG + t] += partial[r * WG + t + stride];
            }
        }
        workgroupBarrier();
    }
#endif
#endif
    // Each output row is finished by one thread: rows t, t + WG, ... (ROWS may exceed WG).
#ifdef ROPE
    for (var r = t; r < ROWS; r += WG) {
        fin[r] = reduced(r, n_records);
    }
    workgroupBarrier();
    for (var r = t; r < ROWS; r += WG) {
        store_rope(row0 + r, fin[r], fin[r ^ 1u]);
    }
#else
    for (var r = t; r < ROWS; r += WG) {
        store_row(row0 + r, reduced(r, n_records));
    }
#endif
}
