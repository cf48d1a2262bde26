//! matvec against the CPU oracle (ahma_gguf::dequantize + f64 dot) for every GGML type, on every
//! variant path the device has (f16 / f32 arithmetic, subgroup / workgroup-memory reduction).
//!
//! Tolerances (NMSE = sum of squared errors / sum of squared reference values):
//! - f32 path: 1e-7, the ggml `test-backend-ops` bound for f32; f32 accumulation over a few
//!   thousand terms gives about 1e-13 in practice.
//! - f16 path: 1e-5; dequantized weights are rounded to f16 (relative 2^-11), which alone gives
//!   about 1e-7, and K-quant `d*sc*q - dmin*m` can cancel.
//! - x in 8-bit integers (`MatVecOptions::int_dot`, for the types that have an integer product):
//!   5e-4, the bound ggml's `test-backend-ops` sets for llama.cpp's quantized-activation
//!   products. Rounding each element of x to 1/254 of its group's largest magnitude gives about
//!   1e-5 on random vectors.

mod common;

use ahma_gguf::GgmlType;
use ahma_kernels::matmul::has_int_dot;
use ahma_kernels::matvec::{
    MatVec, MatVecNorm, MatVecOptions, MatVecOutput, MatVecRope, MatVecShape,
};
use ahma_kernels::rope;
use ahma_kernels::step::StepParams;
use ahma_kernels::{GpuContext, QuantMatrix};
use common::{nmse, random_tensor, read_cache, reference_matmul, shapes, Rng};

fn tolerance(ctx: &GpuContext, ty: GgmlType) -> f64 {
    if ctx.use_f16() && ty != GgmlType::F32 {
        1e-5
    } else {
        1e-7
    }
}

const INT_DOT_NMSE: f64 = 5e-4;

/// The tolerance of a product of type `ty` made with or without `int_dot`.
fn tolerance_for(ctx: &GpuContext, ty: GgmlType, int_dot: bool) -> f64 {
    if int_dot && has_int_dot(ty) {
        INT_DOT_NMSE
    } else {
        tolerance(ctx, ty)
    }
}

/// Runs one random case: `(n_in, n_out)`, a seed, accumulate or not, and an optional part size
/// limit for the matrix.
fn run_case(
    ctx: &GpuContext,
    path: &str,
    ty: GgmlType,
    (n_in, n_out): (usize, usize),
    seed: u64,
    accumulate: bool,
    part_limit: Option<u64>,
) -> f64 {
    let mut rng = Rng::new(seed);
    let bytes = random_tensor(ty, n_in, n_out, &mut rng);
    let x: Vec<f32> = (0..n_in).map(|_| rng.signed()).collect();
    let mut want = reference_matmul(ty, &bytes, n_in, n_out, &x);
    let m = match part_limit {
        Some(limit) => {
            let mut m =
                QuantMatrix::with_part_limit(ctx, "w", ty, n_in as u64, n_out as u64, limit)
                    .unwrap();
            m.write(ctx, 0, &bytes).unwrap();
            m.finish(ctx).unwrap();
            m
        }
        None => QuantMatrix::from_bytes(ctx, "w", ty, n_in as u64, n_out as u64, &bytes).unwrap(),
    };
    let init: Vec<f32> = (0..n_out).map(|_| rng.signed()).collect();
    let got = if accumulate {
        for (w, i) in want.iter_mut().zip(&init) {
            *w += *i as f64;
        }
        pollster::block_on(ahma_kernels::matvec::matvec_once(ctx, &m, &x, Some(&init))).unwrap()
    } else {
        pollster::block_on(ahma_kernels::matvec::matvec_once(ctx, &m, &x, None)).unwrap()
    };
    let (e, max) = nmse(&got, &want);
    eprintln!(
        "{ty} {path} {n_in}x{n_out} acc={accumulate} parts={}: nmse {e:.2e} max abs {max:.2e}",
        m.parts().len()
    );
    assert!(
        e <= tolerance(ctx, ty),
        "{ty} {path} {n_in}x{n_out}: nmse {e:e} above {:e}",
        tolerance(ctx, ty)
    );
    e
}

fn check_type(ty: GgmlType) {
    for (path, ctx) in common::variant_contexts() {
        for (i, &(n_in, n_out)) in shapes(ty).iter().enumerate() {
            run_case(
                &ctx,
                &path,
                ty,
                (n_in, n_out),
                1000 + i as u64,
                i == 1,
                None,
            );
            cpu_case(&ctx, &path, ty, (n_in, n_out), 1100 + i as u64);
        }
        // An even number of 32-element units: Q4_0, Q5_0 and Q8_0 rows of a 4-aligned length,
        // walked in aligned pairs of units (`UNIT_PAIRS`); the shapes above have odd counts.
        if ty.block_elems() == 32 {
            cpu_case(&ctx, &path, ty, (640, 13), 1150);
        }
    }
}

/// One random case with the CPU adapters' mat-vec: 16 threads x 8 rows walking whole units
/// (`blocks`: the unit products of Q4_0, Q5_0, Q8_0, Q4_K and Q6_K, reading each word once), with
/// the one-round reduction where there are no subgroups, accumulating into y.
fn cpu_case(ctx: &GpuContext, path: &str, ty: GgmlType, (n_in, n_out): (usize, usize), seed: u64) {
    let mut rng = Rng::new(seed);
    let bytes = random_tensor(ty, n_in, n_out, &mut rng);
    let x: Vec<f32> = (0..n_in).map(|_| rng.signed()).collect();
    let init: Vec<f32> = (0..n_out).map(|_| rng.signed()).collect();
    let mut want = reference_matmul(ty, &bytes, n_in, n_out, &x);
    for (w, i) in want.iter_mut().zip(&init) {
        *w += *i as f64;
    }
    let m = QuantMatrix::from_bytes(ctx, "w", ty, n_in as u64, n_out as u64, &bytes).unwrap();
    let xb = ctx.storage_buffer_init("x", &x).unwrap();
    let opts = MatVecOptions {
        blocks: true,
        flat_reduce: true,
        ..Default::default()
    }
    .with_shape(MatVecShape::CPU);
    let yb = ctx.storage_buffer_init("y", &init).unwrap();
    let op = pollster::block_on(MatVec::new(
        ctx,
        &m,
        &xb,
        &yb,
        MatVecOptions {
            accumulate: true,
            ..opts
        },
    ))
    .unwrap();
    // Only the types with a unit product walk units; the others keep the quarter walk.
    let units = matches!(
        ty,
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4K | GgmlType::Q6K
    );
    assert_eq!(op.label().contains("blocks"), units, "{}", op.label());
    ctx.run_pass("t", |p| op.encode(p)).unwrap();
    let got = pollster::block_on(ctx.read_f32(&yb, 0, init.len())).unwrap();
    let (e, max) = nmse(&got, &want);
    eprintln!("{ty} {path} {n_in}x{n_out} cpu walk: nmse {e:.2e} max abs {max:.2e}");
    assert!(
        e <= tolerance(ctx, ty),
        "{ty} {path} {n_in}x{n_out} cpu walk: nmse {e:e} above {:e}",
        tolerance(ctx, ty)
    );
}

macro_rules! type_tests {
    ($($name:ident => $ty:expr),* $(,)?) => {
        $(#[test] fn $name() { let _gpu = common::serial(); check_type($ty); })*
    };
}

type_tests! {
    matvec_f32 => GgmlType::F32,
    matvec_f16 => GgmlType::F16,
    matvec_bf16 => GgmlType::Bf16,
    matvec_q8_0 => GgmlType::Q8_0,
    matvec_q4_0 => GgmlType::Q4_0,
    matvec_q4_1 => GgmlType::Q4_1,
    matvec_q5_0 => GgmlType::Q5_0,
    matvec_q5_1 => GgmlType::Q5_1,
    matvec_iq4_nl => GgmlType::Iq4Nl,
    matvec_q2_k => GgmlType::Q2K,
    matvec_q3_k => GgmlType::Q3K,
    matvec_q4_k => GgmlType::Q4K,
    matvec_q5_k => GgmlType::Q5K,
    matvec_q6_k => GgmlType::Q6K,
    matvec_iq4_xs => GgmlType::Iq4Xs,
}

/// Ahma-3B row lengths for the types its files use (attention/FFN 3200, FFN down 8640), with
/// the default context's path.
#[test]
fn matvec_ahma_row_lengths() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    for (i, ty) in [
        GgmlType::Q8_0,
        GgmlType::Q5_0,
        GgmlType::Q4_0,
        GgmlType::Iq4Nl,
        GgmlType::Q5_1,
    ]
    .into_iter()
    .enumerate()
    {
        run_case(&ctx, "default", ty, (3200, 24), 50 + i as u64, false, None);
    }
    run_case(&ctx, "default", GgmlType::Q5_0, (8640, 11), 60, true, None);
}

/// A matrix split across several buffers gives the same result (3 rows per part here).
#[test]
fn matvec_split_matrix() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    for (i, ty) in [GgmlType::Q4_0, GgmlType::Q6K, GgmlType::F16]
        .into_iter()
        .enumerate()
    {
        let (n_in, n_out) = if ty.block_elems() == 256 {
            (512, 11)
        } else {
            (96, 11)
        };
        let row = (n_in / ty.block_elems() * ty.block_bytes()) as u64;
        run_case(
            &ctx,
            "default",
            ty,
            (n_in, n_out),
            70 + i as u64,
            i == 0,
            Some(3 * row + 2),
        );
    }
}

/// The 256-thread variant and offsets into x and y.
#[test]
fn matvec_wg256_and_offsets() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    let ty = GgmlType::Q4K;
    let (n_in, n_out) = (1024, 7);
    let mut rng = Rng::new(5);
    let bytes = random_tensor(ty, n_in, n_out, &mut rng);
    let x: Vec<f32> = (0..n_in + 3).map(|_| rng.signed()).collect();
    let want = reference_matmul(ty, &bytes, n_in, n_out, &x[3..]);
    let m = QuantMatrix::from_bytes(&ctx, "w", ty, n_in as u64, n_out as u64, &bytes).unwrap();
    let xb = ctx.storage_buffer_init("x", &x).unwrap();
    let yb = ctx.storage_buffer("y", (n_out as u64 + 5) * 4).unwrap();
    let opts = MatVecOptions {
        workgroup_size: 256,
        x_offset: 3,
        y_offset: 5,
        ..Default::default()
    };
    let op = pollster::block_on(MatVec::new(&ctx, &m, &xb, &yb, opts)).unwrap();
    assert!(op.label().contains("wg256"), "{}", op.label());
    // x from an offset inside a group of four: read element by element
    assert!(!op.label().contains("_x4"), "{}", op.label());
    ctx.run_pass("t", |p| op.encode(p)).unwrap();
    let y = pollster::block_on(ctx.read_f32(&yb, 0, n_out + 5)).unwrap();
    assert_eq!(&y[..5], &[0.0; 5]);
    let (e, _) = nmse(&y[5..], &want);
    assert!(e <= tolerance(&ctx, ty), "nmse {e}");
    // Too-small buffers are rejected before anything reaches the GPU.
    let small = ctx.storage_buffer("small", 8).unwrap();
    assert!(
        pollster::block_on(MatVec::new(&ctx, &m, &small, &yb, MatVecOptions::default())).is_err()
    );
}

/// y = init + W·x with `opts` (accumulate set here), read back.
fn accumulate_matvec(
    ctx: &GpuContext,
    m: &QuantMatrix,
    xb: &wgpu::Buffer,
    init: &[f32],
    opts: MatVecOptions,
) -> Vec<f32> {
    let yb = ctx.storage_buffer_init("y", init).unwrap();
    let opts = MatVecOptions {
        accumulate: true,
        ..opts
    };
    let op = pollster::block_on(MatVec::new(ctx, m, xb, &yb, opts)).unwrap();
    ctx.run_pass("t", |p| op.encode(p)).unwrap();
    pollster::block_on(ctx.read_f32(&yb, 0, init.len())).unwrap()
}

/// A mat-vec with the RMSNorm fused in front (`norm`: weight and eps) and all its rows (half of
/// them with SwiGLU) in `y` from element 0.
fn norm_matvec(
    ctx: &GpuContext,
    m: &QuantMatrix,
    x: &wgpu::Buffer,
    norm: (&wgpu::Buffer, f32),
    y: &wgpu::Buffer,
    opts: MatVecOptions,
) -> MatVec {
    let rows = if opts.swiglu {
        m.n_out() / 2
    } else {
        m.n_out()
    };
    pollster::block_on(MatVec::new_fused(
        ctx,
        m,
        x,
        Some(MatVecNorm {
            weight: norm.0,
            eps: norm.1,
        }),
        &[MatVecOutput {
            buffer: y,
            offset: 0,
            rows,
        }],
        opts,
    ))
    .unwrap()
}

/// `set_x_offset` points a built op (fused norm, matrix split over several buffers) at another
/// row of its input, as the engine's head does for a prompt's last token; offsets past the
/// input are refused.
#[test]
fn matvec_set_x_offset_reads_another_row() {
    let _gpu = common::serial();
    for (path, ctx) in common::variant_contexts() {
        let ty = GgmlType::Q8_0;
        let (n_in, n_out, n_rows) = (320, 21, 3);
        let mut rng = Rng::new(41);
        let bytes = random_tensor(ty, n_in, n_out, &mut rng);
        let x: Vec<f32> = (0..n_in * n_rows).map(|_| 2.0 * rng.signed()).collect();
        let nw: Vec<f32> = (0..n_in).map(|_| 0.5 + rng.unit()).collect();
        let eps = 1e-5;
        let row_bytes = (n_in / ty.block_elems() * ty.block_bytes()) as u64;
        let mut m = QuantMatrix::with_part_limit(
            &ctx,
            "output",
            ty,
            n_in as u64,
            n_out as u64,
            8 * row_bytes,
        )
        .unwrap();
        assert!(m.parts().len() > 1);
        m.write(&ctx, 0, &bytes).unwrap();
        m.finish(&ctx).unwrap();
        let xb = ctx.storage_buffer_init("x", &x).unwrap();
        let nwb = ctx.storage_buffer_init("nw", &nw).unwrap();
        let yb = ctx.storage_buffer("y", n_out as u64 * 4).unwrap();
        let mut op = norm_matvec(&ctx, &m, &xb, (&nwb, eps), &yb, MatVecOptions::default());
        for row in [0, 2, 1, 1, 0] {
            op.set_x_offset(&ctx, (row * n_in) as u32).unwrap();
            ctx.run_pass("t", |p| op.encode(p)).unwrap();
            let y = pollster::block_on(ctx.read_f32(&yb, 0, n_out)).unwrap();
            let xn = reference_rms_norm(&x[row * n_in..][..n_in], &nw, eps);
            let want = reference_matmul(ty, &bytes, n_in, n_out, &xn);
            let (e, _) = nmse(&y, &want);
            assert!(e <= tolerance(&ctx, ty), "{path} row {row}: nmse {e}");
        }
        assert!(op.set_x_offset(&ctx, (2 * n_in + 1) as u32).is_err());
        // Rows of a multiple of 4 elements read x four at a time: an offset inside a group of
        // four is refused too, with the ops' uniforms as they were.
        assert!(op.label().contains("_x4"), "{}", op.label());
        assert!(op.set_x_offset(&ctx, 2).is_err());
        ctx.run_pass("t", |p| op.encode(p)).unwrap();
        let y = pollster::block_on(ctx.read_f32(&yb, 0, n_out)).unwrap();
        let xn = reference_rms_norm(&x[..n_in], &nw, eps);
        let (e, _) = nmse(&y, &reference_matmul(ty, &bytes, n_in, n_out, &xn));
        assert!(
            e <= tolerance(&ctx, ty),
            "{path} after refused offsets: nmse {e}"
        );
    }
}

/// Fused gate+up+SwiGLU over a stacked [gate; up] matrix against
/// silu(gate·x)·(up·x) computed in f64 from the dequantized matrices.
#[test]
fn matvec_swiglu_fused() {
    let _gpu = common::serial();
    for (path, ctx) in common::variant_contexts() {
        for (i, ty) in [
            GgmlType::Q4_0,
            GgmlType::Q5_0,
            GgmlType::Q8_0,
            GgmlType::Q4K,
            GgmlType::Q6K,
            GgmlType::F16,
        ]
        .into_iter()
        .enumerate()
        {
            let n_in = if ty.block_elems() == 256 { 512 } else { 800 };
            let n_ff = 13;
            let mut rng = Rng::new(90 + i as u64);
            let gate = random_tensor(ty, n_in, n_ff, &mut rng);
            let up = random_tensor(ty, n_in, n_ff, &mut rng);
            let x: Vec<f32> = (0..n_in).map(|_| rng.signed()).collect();
            let g = reference_matmul(ty, &gate, n_in, n_ff, &x);
            let u = reference_matmul(ty, &up, n_in, n_ff, &x);
            let want: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            // The loader's view: one matrix of 2·n_ff rows, gate written at row 0, up at row n_ff.
            let mut m =
                QuantMatrix::new(&ctx, "ffn_gate_up", ty, n_in as u64, 2 * n_ff as u64).unwrap();
            m.write(&ctx, 0, &gate).unwrap();
            m.write(&ctx, gate.len() as u64, &up).unwrap();
            m.finish(&ctx).unwrap();
            let xb = ctx.storage_buffer_init("x", &x).unwrap();
            let yb = ctx.storage_buffer("y", n_ff as u64 * 4).unwrap();
            let opts = MatVecOptions {
                swiglu: true,
                ..Default::default()
            };
            let op = pollster::block_on(MatVec::new(&ctx, &m, &xb, &yb, opts)).unwrap();
            ctx.run_pass("swiglu", |p| op.encode(p)).unwrap();
            let got = pollster::block_on(ctx.read_f32(&yb, 0, n_ff)).unwrap();
            let (e, max) = nmse(&got, &want);
            eprintln!("swiglu {ty} {path} {n_in}x{n_ff}: nmse {e:.2e} max abs {max:.2e}");
            assert!(e <= tolerance(&ctx, ty), "swiglu {ty} {path}: nmse {e:e}");
            // accumulate + swiglu is refused.
            let bad = MatVecOptions {
                swiglu: true,
                accumulate: true,
                ..Default::default()
            };
            assert!(pollster::block_on(MatVec::new(&ctx, &m, &xb, &yb, bad)).is_err());
        }
    }
}

/// RMSNorm in f64: x / sqrt(mean(x²) + eps) ⊙ w, the input of the fused-norm products.
fn reference_rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let ss: f64 = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
    let scale = 1.0 / (ss + eps as f64).sqrt();
    x.iter()
        .zip(w)
        .map(|(&v, &g)| (v as f64 * scale * g as f64) as f32)
        .collect()
}

/// Fused RMSNorm + product split over three outputs (a stacked q/k/v matrix) against the f64
/// norm followed by the f64 product of the dequantized q, k and v matrices; on a one-part matrix
/// and on one split across several buffers so that the parts straddle the outputs.
#[test]
fn matvec_norm_fused_qkv_outputs() {
    let _gpu = common::serial();
    for (path, ctx) in common::variant_contexts() {
        for (i, ty) in [
            GgmlType::Q5_0,
            GgmlType::Q8_0,
            GgmlType::Q4K,
            GgmlType::Q6K,
            GgmlType::F16,
            GgmlType::F32,
        ]
        .into_iter()
        .enumerate()
        {
            let n_in = if ty.block_elems() == 256 { 512 } else { 800 };
            let rows = [13usize, 6, 7];
            let mut rng = Rng::new(300 + i as u64);
            let mats: Vec<Vec<u8>> = rows
                .iter()
                .map(|&r| random_tensor(ty, n_in, r, &mut rng))
                .collect();
            // A residual stream with a large mean square, so a missing norm cannot pass.
            let x: Vec<f32> = (0..n_in).map(|_| 3.0 * rng.signed()).collect();
            let nw: Vec<f32> = (0..n_in).map(|_| 0.5 + rng.unit()).collect();
            let eps = 1e-6;
            let xn = reference_rms_norm(&x, &nw, eps);
            let want: Vec<Vec<f64>> = mats
                .iter()
                .zip(rows)
                .map(|(b, r)| reference_matmul(ty, b, n_in, r, &xn))
                .collect();
            let total: usize = rows.iter().sum();
            let row_bytes = (n_in / ty.block_elems() * ty.block_bytes()) as u64;
            for limit in [None, Some(5 * row_bytes)] {
                let mut m = match limit {
                    Some(l) => QuantMatrix::with_part_limit(
                        &ctx,
                        "attn_qkv",
                        ty,
                        n_in as u64,
                        total as u64,
                        l,
                    )
                    .unwrap(),
                    None => {
                        QuantMatrix::new(&ctx, "attn_qkv", ty, n_in as u64, total as u64).unwrap()
                    }
                };
                let mut at = 0u64;
                for b in &mats {
                    m.write(&ctx, at, b).unwrap();
                    at += b.len() as u64;
                }
                m.finish(&ctx).unwrap();
                let xb = ctx.storage_buffer_init("x", &x).unwrap();
                let nwb = ctx.storage_buffer_init("nw", &nw).unwrap();
                // Outputs at different offsets, to check each output's base element.
                let offs = [0u32, 3, 1];
                let ys: Vec<wgpu::Buffer> = rows
                    .iter()
                    .zip(offs)
                    .map(|(&r, o)| ctx.storage_buffer("y", (r as u64 + o as u64) * 4).unwrap())
                    .collect();
                let outputs: Vec<MatVecOutput<'_>> = ys
                    .iter()
                    .zip(rows)
                    .zip(offs)
                    .map(|((b, r), offset)| MatVecOutput {
                        buffer: b,
                        offset,
                        rows: r as u64,
                    })
                    .collect();
                let norm = MatVecNorm { weight: &nwb, eps };
                let op = pollster::block_on(MatVec::new_fused(
                    &ctx,
                    &m,
                    &xb,
                    Some(norm),
                    &outputs,
                    MatVecOptions::default(),
                ))
                .unwrap();
                assert_eq!(op.dispatch_count(), m.parts().len() as u64);
                ctx.run_pass("qkv", |p| op.encode(p)).unwrap();
                for (k, (yb, off)) in ys.iter().zip(offs).enumerate() {
                    let got =
                        pollster::block_on(ctx.read_f32(yb, 0, rows[k] + off as usize)).unwrap();
                    assert!(got[..off as usize].iter().all(|&v| v == 0.0));
                    let (e, max) = nmse(&got[off as usize..], &want[k]);
                    eprintln!(
                        "norm+qkv {ty} {path} parts={} output {k}: nmse {e:.2e} max abs {max:.2e}",
                        m.parts().len()
                    );
                    assert!(
                        e <= tolerance(&ctx, ty),
                        "{ty} {path} output {k}: nmse {e:e}"
                    );
                }
                // Outputs that do not add up to the matrix's rows are refused.
                assert!(pollster::block_on(MatVec::new_fused(
                    &ctx,
                    &m,
                    &xb,
                    Some(norm),
                    &outputs[..2],
                    MatVecOptions::default(),
                ))
                .is_err());
            }
        }
    }
}

/// A q/k/v layout: a label, the stacks as (bytes, [q, k, v] rows) and a part size limit.
type Layout<'a> = (&'static str, Vec<(&'a [u8], [usize; 3])>, Option<u64>);

/// Rotates the pairs of every `hd`-element head of `v` (first `rd` elements of each) to
/// position `pos`, in f64 (llama.cpp NORMAL mode).
fn reference_rope(v: &mut [f64], hd: usize, rd: usize, pos: usize) {
    for head in v.chunks_mut(hd) {
        for i in 0..rd / 2 {
            let theta = pos as f64 * 10000f64.powf(-2.0 * i as f64 / rd as f64);
            let (x0, x1) = (head[2 * i], head[2 * i + 1]);
            head[2 * i] = x0 * theta.cos() - x1 * theta.sin();
            head[2 * i + 1] = x0 * theta.sin() + x1 * theta.cos();
        }
    }
}

/// Head shapes of the fused q/k/v + RoPE tests: (n_head, n_head_kv, head_dim, rope_dim, pos),
/// with GQA and a rope_dim shorter than the head; q + k rows 60, 48 and 24.
const ROPE_SHAPES: [(usize, usize, usize, usize, usize); 3] =
    [(4, 2, 10, 10, 7), (2, 2, 12, 8, 0), (3, 1, 6, 6, 30)];

/// One random case of decode's fused q/k/v + RoPE + KV-store product: q and k weights of type
/// `ty`, v weights of type `vty`, the raw x and the norm weight on the GPU, the step and cos/sin
/// uniforms, and the f64 expectations (norm, products, rotation).
struct QkvCase {
    ty: GgmlType,
    n_in: usize,
    shape: (usize, usize, usize, usize, usize),
    wq: Vec<u8>,
    wk: Vec<u8>,
    wv: Vec<u8>,
    want: [Vec<f64>; 3],
    xb: wgpu::Buffer,
    nwb: wgpu::Buffer,
    step: wgpu::Buffer,
    cs: wgpu::Buffer,
}

const EPS: f32 = 1e-6;

impl QkvCase {
    fn new(
        ctx: &GpuContext,
        (ty, vty): (GgmlType, GgmlType),
        shape: (usize, usize, usize, usize, usize),
        seed: u64,
    ) -> QkvCase {
        let (nh, nkv, hd, rd, pos) = shape;
        let n_in = if ty.block_elems() == 256 { 512 } else { 320 };
        let (qd, kvd) = (nh * hd, nkv * hd);
        let mut rng = Rng::new(seed);
        let wq = random_tensor(ty, n_in, qd, &mut rng);
        let wk = random_tensor(ty, n_in, kvd, &mut rng);
        let wv = random_tensor(vty, n_in, kvd, &mut rng);
        let x: Vec<f32> = (0..n_in).map(|_| 3.0 * rng.signed()).collect();
        let nw: Vec<f32> = (0..n_in).map(|_| 0.5 + rng.unit()).collect();
        let xn = reference_rms_norm(&x, &nw, EPS);
        let mut want_q = reference_matmul(ty, &wq, n_in, qd, &xn);
        let mut want_k = reference_matmul(ty, &wk, n_in, kvd, &xn);
        let want_v = reference_matmul(vty, &wv, n_in, kvd, &xn);
        reference_rope(&mut want_q, hd, rd, pos);
        reference_rope(&mut want_k, hd, rd, pos);
        let step = StepParams {
            n_tokens: 1,
            pos0: pos as u32,
            ..Default::default()
        };
        QkvCase {
            ty,
            n_in,
            shape,
            wq,
            wk,
            wv,
            want: [want_q, want_k, want_v],
            xb: ctx.storage_buffer_init("x", &x).unwrap(),
            nwb: ctx.storage_buffer_init("nw", &nw).unwrap(),
            step: ctx.uniform_buffer("step", &step).unwrap(),
            cs: ctx
                .storage_buffer_init("cos/sin", &rope::cos_sin_table(pos + 3, rd, 10000.0))
                .unwrap(),
        }
    }

    /// (q rows, k and v rows, context positions).
    fn dims(&self) -> (usize, usize, usize) {
        let (nh, nkv, hd, _, pos) = self.shape;
        (nh * hd, nkv * hd, pos + 3)
    }

    fn norm(&self) -> Option<MatVecNorm<'_>> {
        Some(MatVecNorm {
            weight: &self.nwb,
            eps: EPS,
        })
    }

    /// Fresh (zeroed) q output and caches.
    fn outputs(&self, ctx: &GpuContext) -> [wgpu::Buffer; 3] {
        let (qd, kvd, n_ctx) = self.dims();
        let cache_bytes = (n_ctx * kvd) as u64 * rope::kv_elem_bytes(ctx.use_f16());
        [
            ctx.storage_buffer("q", qd as u64 * 4).unwrap(),
            ctx.storage_buffer("k cache", cache_bytes).unwrap(),
            ctx.storage_buffer("v cache", cache_bytes).unwrap(),
        ]
    }

    /// The RoPE description writing into `out` (from [`QkvCase::outputs`]).
    fn rope<'a>(
        &'a self,
        out: &'a [wgpu::Buffer; 3],
        rows: [u64; 3],
        v: Option<&'a QuantMatrix>,
    ) -> MatVecRope<'a> {
        let (_, nkv, hd, rd, _) = self.shape;
        MatVecRope {
            q: &out[0],
            rows,
            step: &self.step,
            cos_sin: &self.cs,
            k_cache: &out[1],
            v_cache: &out[2],
            head_dim: hd as u32,
            rope_dim: rd as u32,
            n_head_kv: nkv as u32,
            v,
        }
    }

    /// Reads `out` back and checks q, k and v (v of type `vty`) against the expectations, and
    /// that no other cache row was written.
    fn check(&self, ctx: &GpuContext, out: &[wgpu::Buffer; 3], vty: GgmlType, label: &str) {
        self.check_with(ctx, out, vty, label, false);
    }

    /// [`QkvCase::check`] of a product made with x in 8-bit integers or not.
    fn check_with(
        &self,
        ctx: &GpuContext,
        out: &[wgpu::Buffer; 3],
        vty: GgmlType,
        label: &str,
        int_dot: bool,
    ) {
        let (qd, kvd, n_ctx) = self.dims();
        let pos = self.shape.4;
        let got_q = pollster::block_on(ctx.read_f32(&out[0], 0, qd)).unwrap();
        let got_k = read_cache(ctx, &out[1], n_ctx * kvd);
        let got_v = read_cache(ctx, &out[2], n_ctx * kvd);
        let cache_tol = if ctx.use_f16() { 1e-6 } else { 0.0 };
        let row = pos * kvd..(pos + 1) * kvd;
        for (what, got, want, t) in [
            ("q", &got_q[..], &self.want[0], self.ty),
            ("k", &got_k[row.clone()], &self.want[1], self.ty),
            ("v", &got_v[row.clone()], &self.want[2], vty),
        ] {
            let (e, max) = nmse(got, want);
            eprintln!(
                "{label} {:?} {what}: nmse {e:.2e} max abs {max:.2e}",
                self.shape
            );
            let tol = tolerance_for(ctx, t, int_dot).max(cache_tol);
            assert!(e <= tol, "{label} {what}: nmse {e:e}");
        }
        for c in [&got_k, &got_v] {
            assert!(
                c[..row.start]
                    .iter()
                    .chain(&c[row.end..])
                    .all(|&v| v == 0.0),
                "{label}: a cache row other than {pos} was written"
            );
        }
    }
}

/// Decode's q/k/v product with RoPE and the KV-cache store fused in (`MatVec::new_qkv_rope`)
/// against the f64 norm and products followed by the f64 rotation: q lands rotated in its
/// buffer, k rotated and v in the caches' row `pos` (every other row untouched). Covers a whole
/// q/k/v stack, q/k and v in stacks of their own (one dispatch each), a stack split over
/// several buffers, GQA and a rope_dim shorter than the head.
#[test]
fn matvec_qkv_rope_fused_into_the_cache() {
    let _gpu = common::serial();
    for (path, ctx) in common::variant_contexts() {
        for (i, ty) in [GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4K, GgmlType::F32]
            .into_iter()
            .enumerate()
        {
            for (j, &shape) in ROPE_SHAPES.iter().enumerate() {
                let case = QkvCase::new(&ctx, (ty, ty), shape, 700 + 10 * i as u64 + j as u64);
                let (qd, kvd, _) = case.dims();
                let n_in = case.n_in;
                let row_bytes = (n_in / ty.block_elems() * ty.block_bytes()) as u64;
                let whole = [&case.wq[..], &case.wk[..], &case.wv[..]].concat();
                let qk = [&case.wq[..], &case.wk[..]].concat();
                // (label, stacks as (bytes, [q, k, v] rows), part limit)
                let layouts: [Layout<'_>; 3] = [
                    ("q/k/v", vec![(&whole, [qd, kvd, kvd])], None),
                    (
                        "q/k + v",
                        vec![(&qk, [qd, kvd, 0]), (&case.wv, [0, 0, kvd])],
                        None,
                    ),
                    (
                        "q/k/v in parts",
                        vec![(&whole, [qd, kvd, kvd])],
                        Some(10 * row_bytes),
                    ),
                ];
                for (layout, stacks, limit) in layouts {
                    let out = case.outputs(&ctx);
                    let mut ops = Vec::new();
                    let mut parts = 0;
                    for (bytes, rows) in &stacks {
                        let n_out = rows.iter().sum::<usize>() as u64;
                        let limit = limit.unwrap_or(u64::MAX);
                        let mut m = QuantMatrix::with_part_limit(
                            &ctx,
                            "qkv",
                            ty,
                            n_in as u64,
                            n_out,
                            limit,
                        )
                        .unwrap();
                        m.write(&ctx, 0, bytes).unwrap();
                        m.finish(&ctx).unwrap();
                        parts += m.parts().len();
                        let r = case.rope(&out, rows.map(|r| r as u64), None);
                        let op = pollster::block_on(MatVec::new_qkv_rope(
                            &ctx,
                            &m,
                            &case.xb,
                            case.norm(),
                            r,
                            // every other head shape with two units per loop step, the
                            // layouts of the first with the CPU adapters' mat-vec (16 x 8,
                            // whole units per thread) and of the second with 64 x 8, both
                            // with the one-round reduction where there are no subgroups
                            MatVecOptions {
                                pairs: j % 2 == 1,
                                flat_reduce: j < 2,
                                blocks: j == 0,
                                ..Default::default()
                            }
                            .with_shape(match j {
                                0 => MatVecShape::CPU,
                                1 => "64x8".parse().unwrap(),
                                _ => MatVecShape::GPU,
                            }),
                        ))
                        .unwrap();
                        // An odd number of rows per workgroup would split rotation pairs.
                        let odd = MatVecOptions {
                            rows: 1,
                            ..Default::default()
                        };
                        assert!(pollster::block_on(MatVec::new_qkv_rope(
                            &ctx,
                            &m,
                            &case.xb,
                            case.norm(),
                            r,
                            odd
                        ))
                        .is_err());
                        ops.push(op);
                    }
                    ctx.run_pass("qkv+rope", |p| ops.iter().for_each(|op| op.encode(p)))
                        .unwrap();
                    case.check(
                        &ctx,
                        &out,
                        ty,
                        &format!("{ty} {path} {layout} ({parts} parts)"),
                    );
                }
            }
        }
    }
}

/// The fused q/k/v + RoPE product over two matrices of different types (`MatVecRope::v`: q and
/// k in one, v in the other, as in the "more bits" layers of llama.cpp's Q4_K_M files) in ONE
/// dispatch, against the f64 references of each type; with one and two units per loop step,
/// 4 and 8 rows per workgroup. Shapes it cannot take are typed errors.
#[test]
fn matvec_qkv_rope_two_types_one_dispatch() {
    let _gpu = common::serial();
    for (path, ctx) in common::variant_contexts() {
        // Nibble + byte layouts (the 3B's Q5_0 + Q8_0), two nibble types, two K-quants (the 7B's).
        let pairs = [0, 2, 3].map(|k| ahma_kernels::matvec::MIXED_PAIRS[k]);
        for (i, (ty, vty)) in pairs.into_iter().enumerate() {
            for (j, &shape) in ROPE_SHAPES.iter().enumerate() {
                let case = QkvCase::new(&ctx, (ty, vty), shape, 900 + 10 * i as u64 + j as u64);
                let (qd, kvd, _) = case.dims();
                let n_in = case.n_in as u64;
                let qk = [&case.wq[..], &case.wk[..]].concat();
                let m =
                    QuantMatrix::from_bytes(&ctx, "qk", ty, n_in, (qd + kvd) as u64, &qk).unwrap();
                let mv =
                    QuantMatrix::from_bytes(&ctx, "v", vty, n_in, kvd as u64, &case.wv).unwrap();
                let rows = [qd as u64, kvd as u64, kvd as u64];
                for (threads, per_group, pairs, int_dot) in [
                    (128, 4, j % 2 == 1, false),
                    (128, 8, j % 2 == 0, false),
                    (128, 4, j % 2 == 0, true),
                    (64, 8, false, false),
                    (16, 8, false, false),
                ] {
                    let out = case.outputs(&ctx);
                    let opts = MatVecOptions {
                        workgroup_size: threads,
                        rows: per_group,
                        pairs,
                        int_dot,
                        flat_reduce: threads < 128,
                        blocks: threads == 16,
                        ..Default::default()
                    };
                    let r = case.rope(&out, rows, Some(&mv));
                    let built = pollster::block_on(MatVec::new_qkv_rope(
                        &ctx,
                        &m,
                        &case.xb,
                        case.norm(),
                        r,
                        opts,
                    ));
                    if (qd + kvd) % per_group as usize != 0 {
                        // v's rows must start a workgroup.
                        assert!(
                            built.is_err(),
                            "{ty}+{vty}: q + k rows {} with {per_group} rows",
                            qd + kvd
                        );
                        continue;
                    }
                    let op = built.unwrap();
                    assert_eq!(op.dispatch_count(), 1);
                    ctx.run_pass("qkv+rope", |p| op.encode(p)).unwrap();
                    let label = format!(
                        "qk {ty} + v {vty} {path} wg{threads} rows {per_group} pairs {pairs} int8 \
                         {int_dot}"
                    );
                    case.check_with(&ctx, &out, vty, &label, int_dot);
                }
                // Without the unrolled vectors, or with v rows in the first matrix too: typed
                // errors.
                let out = case.outputs(&ctx);
                let no_vectors = MatVecOptions {
                    unroll: false,
                    ..Default::default()
                };
                let r = case.rope(&out, rows, Some(&mv));
                let split = case.rope(&out, [rows[0], rows[1] - 2, 2], Some(&mv));
                for (r, opts) in [(r, no_vectors), (split, MatVecOptions::default())] {
                    let built = MatVec::new_qkv_rope(&ctx, &m, &case.xb, case.norm(), r, opts);
                    assert!(pollster::block_on(built).is_err());
                }
            }
        }
    }
}

/// Fused RMSNorm + gate/up + SwiGLU against the f64 norm, products and silu, with several
/// workgroup shapes.
#[test]
fn matvec_norm_fused_swiglu() {
    let _gpu = common::serial();
    for (path, ctx) in common::variant_contexts() {
        // (type, threads, rows, unroll, pairs, int_dot, flat_reduce)
        for (i, (ty, workgroup_size, rows, unroll, pairs, int_dot, flat_reduce)) in [
            (GgmlType::Q5_0, 128, 4, true, false, false, false),
            (GgmlType::Q5_0, 128, 4, true, true, false, false),
            (GgmlType::Q5_0, 128, 4, false, false, false, false),
            (GgmlType::Q8_0, 256, 8, true, false, false, false),
            (GgmlType::Q8_0, 64, 8, true, true, false, false),
            (GgmlType::Q4K, 64, 2, true, false, false, false),
            (GgmlType::Q6K, 128, 1, true, false, false, false),
            (GgmlType::Q5_0, 128, 4, true, false, true, false),
            (GgmlType::Q8_0, 128, 8, true, true, true, false),
            (GgmlType::Q4K, 128, 4, true, false, true, false),
            (GgmlType::Q5_0, 64, 8, true, false, false, true),
            (GgmlType::Q5_0, 16, 8, true, false, false, true),
            (GgmlType::Q4K, 16, 8, true, false, false, false),
            (GgmlType::Q8_0, 16, 8, true, false, false, false),
            (GgmlType::Q4_0, 16, 4, true, false, false, true),
            (GgmlType::Q5_0, 16, 8, true, false, true, false),
            (GgmlType::Q6K, 16, 8, true, false, false, true),
            (GgmlType::Q6K, 128, 4, false, false, false, true),
            (GgmlType::Q8_0, 256, 8, true, true, true, true),
        ]
        .into_iter()
        .enumerate()
        {
            let n_in = if ty.block_elems() == 256 { 768 } else { 3200 };
            let n_ff = 21;
            let mut rng = Rng::new(400 + i as u64);
            let gate = random_tensor(ty, n_in, n_ff, &mut rng);
            let up = random_tensor(ty, n_in, n_ff, &mut rng);
            let x: Vec<f32> = (0..n_in).map(|_| 2.0 * rng.signed()).collect();
            let nw: Vec<f32> = (0..n_in).map(|_| rng.signed()).collect();
            let eps = 1e-5;
            let xn = reference_rms_norm(&x, &nw, eps);
            let g = reference_matmul(ty, &gate, n_in, n_ff, &xn);
            let u = reference_matmul(ty, &up, n_in, n_ff, &xn);
            let want: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let mut m =
                QuantMatrix::new(&ctx, "ffn_gate_up", ty, n_in as u64, 2 * n_ff as u64).unwrap();
            m.write(&ctx, 0, &gate).unwrap();
            m.write(&ctx, gate.len() as u64, &up).unwrap();
            m.finish(&ctx).unwrap();
            let xb = ctx.storage_buffer_init("x", &x).unwrap();
            let nwb = ctx.storage_buffer_init("nw", &nw).unwrap();
            let yb = ctx.storage_buffer("y", n_ff as u64 * 4).unwrap();
            let opts = MatVecOptions {
                swiglu: true,
                workgroup_size,
                rows,
                unroll,
                pairs,
                int_dot,
                flat_reduce,
                blocks: workgroup_size == 16,
                ..Default::default()
            };
            let op = norm_matvec(&ctx, &m, &xb, (&nwb, eps), &yb, opts);
            ctx.run_pass("norm swiglu", |p| op.encode(p)).unwrap();
            let got = pollster::block_on(ctx.read_f32(&yb, 0, n_ff)).unwrap();
            let (e, max) = nmse(&got, &want);
            eprintln!(
                "norm+swiglu {ty} {path} wg{workgroup_size} rows {rows} unroll {unroll} pairs {pairs} int8 {int_dot} flat {flat_reduce}: nmse {e:.2e} max abs {max:.2e}"
            );
            assert!(
                e <= tolerance_for(&ctx, ty, int_dot),
                "{ty} {path} int8 {int_dot}: nmse {e:e}"
            );
        }
    }
}

/// Every workgroup size and row count gives the product (with accumulate), including row counts
/// that do not divide the rows and a unit count that does not divide the workgroup.
#[test]
fn matvec_workgroup_shapes() {
    let _gpu = common::serial();
    let ty = GgmlType::Q5_0;
    // 37 rows: partial workgroups at every row count, and rows past the threads (16 x 32: each
    // thread finishes two rows) with subgroups, with the one-round reduction and with the tree.
    let (n_in, n_out) = (3200, 37);
    let mut rng = Rng::new(77);
    let bytes = random_tensor(ty, n_in, n_out, &mut rng);
    let x: Vec<f32> = (0..n_in).map(|_| rng.signed()).collect();
    let init: Vec<f32> = (0..n_out).map(|_| rng.signed()).collect();
    let mut want = reference_matmul(ty, &bytes, n_in, n_out, &x);
    for (w, i) in want.iter_mut().zip(&init) {
        *w += *i as f64;
    }
    for no_sg in [false, true] {
        let ctx = common::context(false, no_sg);
        let m = QuantMatrix::from_bytes(&ctx, "w", ty, n_in as u64, n_out as u64, &bytes).unwrap();
        let xb = ctx.storage_buffer_init("x", &x).unwrap();
        for workgroup_size in ahma_kernels::matvec::WORKGROUP_SIZES {
            for (rows, unroll, pairs, blocks) in ahma_kernels::matvec::ROW_COUNTS
                .into_iter()
                .map(|r| (r, true, false, false))
                .chain([
                    (4, false, false, false),
                    (4, true, true, false),
                    (8, true, true, false),
                    (4, true, false, true),
                    (8, true, false, true),
                    (16, true, false, true),
                    (32, true, false, true),
                ])
            {
                for flat_reduce in [false, true] {
                    let opts = MatVecOptions {
                        workgroup_size,
                        rows,
                        unroll,
                        pairs,
                        blocks,
                        flat_reduce,
                        ..Default::default()
                    };
                    let got = accumulate_matvec(&ctx, &m, &xb, &init, opts);
                    let (e, _) = nmse(&got, &want);
                    assert!(
                        e <= tolerance(&ctx, ty),
                        "no_sg {no_sg} wg{workgroup_size} rows {rows} unroll {unroll} pairs {pairs} \
                         blocks {blocks} flat {flat_reduce}: nmse {e:e}"
                    );
                }
            }
        }
        let bad = MatVecOptions {
            rows: 3,
            ..Default::default()
        };
        let yb = ctx.storage_buffer("y", n_out as u64 * 4).unwrap();
        assert!(pollster::block_on(MatVec::new(&ctx, &m, &xb, &yb, bad)).is_err());
    }
}

/// x in 8-bit integers (`MatVecOptions::int_dot`): the products of Q4_0, Q5_0, Q8_0 and Q4_K
/// rows against the f64 reference within the quantized-activation bound, and different from
/// the float product (so the integer path ran); a type without an integer product (Q6_K) gives
/// exactly the float product. x has a group of zeros (no scale to divide by), a group a
/// thousand times larger than the rest and a row length that ends inside a workgroup's walk;
/// with accumulate, 4 and 8 rows per workgroup, one and two units per loop step.
#[test]
fn matvec_int_dot_products() {
    let _gpu = common::serial();
    for (path, ctx) in common::variant_contexts() {
        for (i, ty) in common::INT_DOT_TYPES.into_iter().enumerate() {
            let n_in = if ty.block_elems() == 256 { 1280 } else { 3200 };
            let n_out = 37;
            let mut rng = Rng::new(1300 + i as u64);
            let bytes = random_tensor(ty, n_in, n_out, &mut rng);
            let mut x: Vec<f32> = (0..n_in).map(|_| rng.signed()).collect();
            x[40..56].iter_mut().for_each(|v| *v = 0.0);
            x[96..104].iter_mut().for_each(|v| *v *= 1000.0);
            let init: Vec<f32> = (0..n_out).map(|_| rng.signed()).collect();
            let mut want = reference_matmul(ty, &bytes, n_in, n_out, &x);
            for (w, i) in want.iter_mut().zip(&init) {
                *w += *i as f64;
            }
            let m =
                QuantMatrix::from_bytes(&ctx, "w", ty, n_in as u64, n_out as u64, &bytes).unwrap();
            let xb = ctx.storage_buffer_init("x", &x).unwrap();
            for (rows, pairs) in [(4, false), (8, true)] {
                let run = |int_dot: bool| {
                    let opts = MatVecOptions {
                        rows,
                        pairs,
                        int_dot,
                        ..Default::default()
                    };
                    accumulate_matvec(&ctx, &m, &xb, &init, opts)
                };
                let (float, int) = (run(false), run(true));
                let (e, max) = nmse(&int, &want);
                let label = format!("{ty} {path} rows {rows} pairs {pairs}");
                eprintln!("int8 {label}: nmse {e:.2e} max abs {max:.2e}");
                assert!(
                    e <= tolerance_for(&ctx, ty, true),
                    "int8 {label}: nmse {e:e}"
                );
                if has_int_dot(ty) {
                    assert_ne!(int, float, "{label}: the integer product did not run");
                } else {
                    assert_eq!(int, float, "{label}: a float-only type changed");
                }
            }
        }
    }
}

/// Workgroup shapes as `ahma bench --matvec-shape` and the benchmark page's `shape=` name them;
/// anything else is a typed error.
#[test]
fn matvec_shapes_parse_and_print() {
    for s in [
        "64x8", "128x4", "256x8", "64x4", "16x8", "32x4", "16x16", "16x32",
    ] {
        assert_eq!(s.parse::<MatVecShape>().unwrap().to_string(), s);
    }
    for bad in [
        "", "64", "64x", "x8", "8x8", "48x8", "512x4", "64x3", "64x64", "ax8", "64x8x2", "128x1",
    ] {
        assert!(bad.parse::<MatVecShape>().is_err(), "`{bad}` parsed");
    }
    assert_eq!(
        MatVecShape::for_device(wgpu::DeviceType::Cpu),
        MatVecShape::CPU
    );
    assert_eq!(MatVecShape::CPU.to_string(), "16x32");
    for gpu in [
        wgpu::DeviceType::DiscreteGpu,
        wgpu::DeviceType::IntegratedGpu,
        wgpu::DeviceType::Other,
    ] {
        assert_eq!(MatVecShape::for_device(gpu), MatVecShape::GPU);
    }
}
