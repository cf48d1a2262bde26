//! matmul (prefill) against the CPU oracle for every GGML type with n_tokens in {1, 7, 64}, on
//! the f16 and f32 paths. Tolerances as in tests/matvec.rs: NMSE 1e-7 (f32), 1e-5 (f16).

mod common;

use ahma_gguf::GgmlType;
use ahma_kernels::matmul::{matmul_once, MatMul, MatMulOptions};
use ahma_kernels::matmul_rows::{Lanes, LANES};
use ahma_kernels::quantize::{x8_bytes, QuantizeOptions, QuantizeX, X8};
use ahma_kernels::{GpuContext, QuantMatrix};
use common::{nmse, random_tensor, reference_matmul, Rng};

fn tolerance(ctx: &GpuContext, ty: GgmlType) -> f64 {
    if ctx.use_f16() && ty != GgmlType::F32 {
        1e-5
    } else {
        1e-7
    }
}

/// Contexts for the f16 and f32 paths (matmul has no subgroup variant).
fn contexts() -> Vec<(&'static str, GpuContext)> {
    let mut out = vec![("f32", common::context(true, true))];
    let ctx = common::context(false, true);
    if ctx.use_f16() {
        out.push(("f16", ctx));
    }
    out
}

fn shape(ty: GgmlType) -> (usize, usize) {
    match ty.block_elems() {
        1 => (70, 37),
        32 => (96, 37),
        _ => (256, 37),
    }
}

fn run_case(
    ctx: &GpuContext,
    path: &str,
    ty: GgmlType,
    (n_in, n_out, n_tokens): (usize, usize, usize),
    seed: u64,
    accumulate: bool,
) {
    let mut rng = Rng::new(seed);
    let bytes = random_tensor(ty, n_in, n_out, &mut rng);
    let x: Vec<f32> = (0..n_in * n_tokens).map(|_| rng.signed()).collect();
    let mut want = reference_matmul(ty, &bytes, n_in, n_out, &x);
    let m = QuantMatrix::from_bytes(ctx, "w", ty, n_in as u64, n_out as u64, &bytes).unwrap();
    let got = if accumulate {
        let init: Vec<f32> = (0..n_out * n_tokens).map(|_| rng.signed()).collect();
        for (w, i) in want.iter_mut().zip(&init) {
            *w += *i as f64;
        }
        pollster::block_on(matmul_once(ctx, &m, &x, Some(&init))).unwrap()
    } else {
        pollster::block_on(matmul_once(ctx, &m, &x, None)).unwrap()
    };
    let (e, max) = nmse(&got, &want);
    eprintln!(
        "{ty} {path} {n_tokens}x{n_in}x{n_out} acc={accumulate}: nmse {e:.2e} max abs {max:.2e}"
    );
    assert!(
        e <= tolerance(ctx, ty),
        "{ty} {path} {n_tokens} tokens: nmse {e:e}"
    );
}

fn check_type(ty: GgmlType) {
    let (n_in, n_out) = shape(ty);
    for (path, ctx) in contexts() {
        for (i, n_tokens) in [1usize, 7, 64].into_iter().enumerate() {
            run_case(
                &ctx,
                path,
                ty,
                (n_in, n_out, n_tokens),
                2000 + i as u64,
                i == 1,
            );
        }
    }
}

macro_rules! type_tests {
    ($($name:ident => $ty:expr),* $(,)?) => {
        $(#[test] fn $name() { let _gpu = common::serial(); check_type($ty); })*
    };
}

type_tests! {
    matmul_f32 => GgmlType::F32,
    matmul_f16 => GgmlType::F16,
    matmul_bf16 => GgmlType::Bf16,
    matmul_q8_0 => GgmlType::Q8_0,
    matmul_q4_0 => GgmlType::Q4_0,
    matmul_q4_1 => GgmlType::Q4_1,
    matmul_q5_0 => GgmlType::Q5_0,
    matmul_q5_1 => GgmlType::Q5_1,
    matmul_iq4_nl => GgmlType::Iq4Nl,
    matmul_q2_k => GgmlType::Q2K,
    matmul_q3_k => GgmlType::Q3K,
    matmul_q4_k => GgmlType::Q4K,
    matmul_q5_k => GgmlType::Q5K,
    matmul_q6_k => GgmlType::Q6K,
    matmul_iq4_xs => GgmlType::Iq4Xs,
}

/// An Ahma-3B-like row length with a split matrix, strides, offsets and a token count that
/// changes after the op is built, for the float and the integer product (whose quantizer reads
/// the same strided rows).
#[test]
fn matmul_split_strides_and_token_count() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    let ty = GgmlType::Q5_0;
    let (n_in, n_out, max_tokens) = (3200usize, 45usize, 40u32);
    let mut rng = Rng::new(9);
    let bytes = random_tensor(ty, n_in, n_out, &mut rng);
    let row = (n_in / 32 * 22) as u64;
    let mut m =
        QuantMatrix::with_part_limit(&ctx, "w", ty, n_in as u64, n_out as u64, 16 * row).unwrap();
    m.write(&ctx, 0, &bytes).unwrap();
    m.finish(&ctx).unwrap();
    assert_eq!(m.parts().len(), 3);
    let (x_stride, y_stride, x_off, y_off) = (n_in + 5, n_out + 3, 2usize, 7usize);
    let x: Vec<f32> = (0..x_off + max_tokens as usize * x_stride)
        .map(|_| rng.signed())
        .collect();
    let xb = ctx.storage_buffer_init("x", &x).unwrap();
    let xs: Vec<f32> = (0..33)
        .flat_map(|t| x[x_off + t * x_stride..x_off + t * x_stride + n_in].to_vec())
        .collect();
    let want = reference_matmul(ty, &bytes, n_in, n_out, &xs);
    // The float product, then the integer one on X quantized from the same strided rows, then
    // the row-per-invocation product (X read element by element: the stride is odd), on floats
    // and on the quantized X.
    for (int8, lanes) in [
        (false, None),
        (true, None),
        (false, Some(Lanes::CPU)),
        (true, Some(Lanes::CPU_UNSHARED)),
    ] {
        let yb = ctx
            .storage_buffer("y", (y_off + max_tokens as usize * y_stride) as u64 * 4)
            .unwrap();
        let x8b = ctx
            .storage_buffer("x8", x8_bytes(n_in as u64, max_tokens))
            .unwrap();
        let x8 = X8 {
            buffer: &x8b,
            tokens: max_tokens,
        };
        let qopts = QuantizeOptions {
            x_offset: x_off as u32,
            x_stride: x_stride as u32,
        };
        let mut quantize = pollster::block_on(QuantizeX::new(
            &ctx,
            &xb,
            x8,
            n_in as u32,
            max_tokens,
            qopts,
        ))
        .unwrap();
        let opts = MatMulOptions {
            accumulate: false,
            x_offset: x_off as u32,
            x_stride: x_stride as u32,
            y_offset: y_off as u32,
            y_stride: y_stride as u32,
            lanes,
            ..Default::default()
        };
        let mut op = if int8 {
            pollster::block_on(MatMul::new_int8(&ctx, &m, x8, &yb, max_tokens, opts))
        } else {
            pollster::block_on(MatMul::new(&ctx, &m, &xb, &yb, max_tokens, opts))
        }
        .unwrap();
        assert_eq!(op.dispatch_count(), 3, "one dispatch per part");
        let n_tokens = 33usize;
        op.set_n_tokens(&ctx, n_tokens as u32).unwrap();
        quantize.set_n_tokens(&ctx, n_tokens as u32).unwrap();
        assert!(op.set_n_tokens(&ctx, max_tokens + 1).is_err());
        assert!(quantize.set_n_tokens(&ctx, max_tokens + 1).is_err());
        ctx.run_pass("t", |p| {
            if int8 {
                quantize.encode(p);
            }
            op.encode(p)
        })
        .unwrap();
        let y = pollster::block_on(ctx.read_f32(&yb, 0, y_off + max_tokens as usize * y_stride))
            .unwrap();
        let got: Vec<f32> = (0..n_tokens)
            .flat_map(|t| y[y_off + t * y_stride..y_off + t * y_stride + n_out].to_vec())
            .collect();
        let (e, _) = nmse(&got, &want);
        let tol = if int8 { 5e-4 } else { tolerance(&ctx, ty) };
        assert!(e <= tol, "int8 {int8} lanes {lanes:?}: nmse {e}");
        // Nothing is written outside the addressed rows and columns.
        assert!(y[..y_off].iter().all(|&v| v == 0.0));
        assert!(y[y_off + n_tokens * y_stride..].iter().all(|&v| v == 0.0));
        for t in 0..n_tokens {
            assert!(y[y_off + t * y_stride + n_out..y_off + (t + 1) * y_stride]
                .iter()
                .all(|&v| v == 0.0));
        }
    }
}

/// A row range of a stacked matrix (the prefill view of a stacked q/k/v or gate/up matrix): each
/// member's rows computed on their own, on one buffer and on a matrix split so that a range
/// straddles two parts, against the oracle on that member's bytes alone.
#[test]
fn matmul_row_range_of_stacked_matrix() {
    let _gpu = common::serial();
    for (path, ctx) in contexts() {
        for (i, ty) in [GgmlType::Q5_0, GgmlType::Q6K, GgmlType::F16]
            .into_iter()
            .enumerate()
        {
            let n_in = if ty.block_elems() == 256 { 512 } else { 96 };
            let rows = [11usize, 5, 9];
            let mut rng = Rng::new(500 + i as u64);
            let mats: Vec<Vec<u8>> = rows
                .iter()
                .map(|&r| random_tensor(ty, n_in, r, &mut rng))
                .collect();
            let total: usize = rows.iter().sum();
            let n_tokens = 7usize;
            let x: Vec<f32> = (0..n_tokens * n_in).map(|_| rng.signed()).collect();
            let row_bytes = (n_in / ty.block_elems() * ty.block_bytes()) as u64;
            for limit in [u64::MAX, 4 * row_bytes] {
                let mut m = QuantMatrix::with_part_limit(
                    &ctx,
                    "stacked",
                    ty,
                    n_in as u64,
                    total as u64,
                    limit,
                )
                .unwrap();
                let mut at = 0u64;
                for b in &mats {
                    m.write(&ctx, at, b).unwrap();
                    at += b.len() as u64;
                }
                m.finish(&ctx).unwrap();
                let xb = ctx.storage_buffer_init("x", &x).unwrap();
                let mut first = 0u64;
                for (k, b) in mats.iter().enumerate() {
                    let yb = ctx
                        .storage_buffer("y", (n_tokens * rows[k]) as u64 * 4)
                        .unwrap();
                    // In tiles, then a few weight rows per invocation.
                    for lanes in [None, Some(Lanes::CPU)] {
                        let opts = MatMulOptions {
                            first_row: first,
                            n_rows: rows[k] as u64,
                            lanes,
                            ..Default::default()
                        };
                        let op = pollster::block_on(MatMul::new(
                            &ctx,
                            &m,
                            &xb,
                            &yb,
                            n_tokens as u32,
                            opts,
                        ))
                        .unwrap();
                        ctx.run_pass("t", |p| op.encode(p)).unwrap();
                        let got =
                            pollster::block_on(ctx.read_f32(&yb, 0, n_tokens * rows[k])).unwrap();
                        let want = reference_matmul(ty, b, n_in, rows[k], &x);
                        let (e, _) = nmse(&got, &want);
                        eprintln!(
                            "matmul rows {first}+{} {ty} {path} parts {} lanes {lanes:?}: nmse {e:.2e}",
                            rows[k],
                            m.parts().len()
                        );
                        assert!(
                            e <= tolerance(&ctx, ty),
                            "{ty} {path} member {k} lanes {lanes:?}: nmse {e}"
                        );
                    }
                    first += rows[k] as u64;
                }
                // A range past the end is refused.
                let yb = ctx.storage_buffer("y", 4 * 1024).unwrap();
                let bad = MatMulOptions {
                    first_row: total as u64 - 2,
                    n_rows: 3,
                    ..Default::default()
                };
                assert!(pollster::block_on(MatMul::new(&ctx, &m, &xb, &yb, 1, bad)).is_err());
            }
        }
    }
}

/// Every workgroup tile the shader supports, with several tiles along both axes and partial
/// tiles at both ends (70 tokens, 133 rows), on the f16 and f32 paths.
#[test]
fn matmul_every_tile_shape() {
    let _gpu = common::serial();
    for (path, ctx) in contexts() {
        for (i, ty) in [GgmlType::Q5_0, GgmlType::Q4K, GgmlType::F32]
            .into_iter()
            .enumerate()
        {
            let n_in = match ty.block_elems() {
                1 => 70,
                32 => 96,
                _ => 256,
            };
            let (n_out, n_tokens) = (133usize, 70usize);
            let mut rng = Rng::new(900 + i as u64);
            let bytes = random_tensor(ty, n_in, n_out, &mut rng);
            let x: Vec<f32> = (0..n_in * n_tokens).map(|_| rng.signed()).collect();
            let want = reference_matmul(ty, &bytes, n_in, n_out, &x);
            let m =
                QuantMatrix::from_bytes(&ctx, "w", ty, n_in as u64, n_out as u64, &bytes).unwrap();
            let xb = ctx.storage_buffer_init("x", &x).unwrap();
            for tile in ahma_kernels::matmul::TILES {
                let yb = ctx
                    .storage_buffer("y", (n_tokens * n_out) as u64 * 4)
                    .unwrap();
                let opts = MatMulOptions {
                    tile: Some(tile),
                    ..Default::default()
                };
                let op = pollster::block_on(MatMul::new(&ctx, &m, &xb, &yb, n_tokens as u32, opts));
                let caps = ctx.caps();
                if tile.workgroup_bytes(false) > caps.max_compute_workgroup_storage_size {
                    // A tile the device cannot hold is a typed error, not a shader failure.
                    assert!(op.is_err(), "{tile} on {path}");
                    eprintln!("matmul {ty} {path} tile {tile}: refused (workgroup memory)");
                    continue;
                }
                let op = op.unwrap();
                ctx.run_pass("t", |p| op.encode(p)).unwrap();
                let got = pollster::block_on(ctx.read_f32(&yb, 0, n_tokens * n_out)).unwrap();
                let (e, _) = nmse(&got, &want);
                eprintln!("matmul {ty} {path} tile {tile}: nmse {e:.2e}");
                assert!(
                    e <= tolerance(&ctx, ty),
                    "{ty} {path} tile {tile}: nmse {e}"
                );
            }
            // An unsupported tile is a typed error, not a shader failure.
            let yb = ctx.storage_buffer("y", 4 * 1024).unwrap();
            let bad = MatMulOptions {
                tile: Some(ahma_kernels::matmul::Tile::new(16, 64, 4, 4)),
                ..Default::default()
            };
            assert!(pollster::block_on(MatMul::new(&ctx, &m, &xb, &yb, 1, bad)).is_err());
        }
    }
}

/// The integer product (`MatMul::new_int8`): X quantized once by `QuantizeX` (into a buffer with
/// room for more tokens than the batch) and the weights staged as 8-bit integers, multiplied in
/// packed integer dot products. Q4_0, Q5_0, Q8_0 and Q4_K against the f64
/// reference within ggml's bound for quantized-activation products (5e-4, as the mat-vec's),
/// different from the float product (so the integer path ran), with accumulate, every tile
/// (those with 8 tokens or rows per thread included, in at most 16 KiB of workgroup memory),
/// partial tiles at both ends (70 tokens, 133 rows), a token of zeros and a token a thousand
/// times larger than the rest. The same quantized X through every shape of the
/// row-per-invocation product (`lanes`: its X8 variant, the CPU adapters' layout) within the
/// same bound and within f32 rounding of the tiles. A type without an integer product (Q6_K)
/// and more tokens than the quantized input holds are typed errors.
#[test]
fn matmul_int_dot_products() {
    use ahma_kernels::matmul::{has_int_dot, Tile, TILES};
    let _gpu = common::serial();
    for (path, ctx) in contexts() {
        for (i, ty) in common::INT_DOT_TYPES.into_iter().enumerate() {
            let n_in = if ty.block_elems() == 256 { 512 } else { 320 };
            let (n_out, n_tokens) = (133usize, 70usize);
            let mut rng = Rng::new(1500 + i as u64);
            let bytes = random_tensor(ty, n_in, n_out, &mut rng);
            let mut x: Vec<f32> = (0..n_in * n_tokens).map(|_| rng.signed()).collect();
            x[3 * n_in..4 * n_in].iter_mut().for_each(|v| *v = 0.0);
            x[5 * n_in..6 * n_in].iter_mut().for_each(|v| *v *= 1000.0);
            let init: Vec<f32> = (0..n_out * n_tokens).map(|_| rng.signed()).collect();
            let mut want = reference_matmul(ty, &bytes, n_in, n_out, &x);
            for (w, v) in want.iter_mut().zip(&init) {
                *w += *v as f64;
            }
            let m =
                QuantMatrix::from_bytes(&ctx, "w", ty, n_in as u64, n_out as u64, &bytes).unwrap();
            let xb = ctx.storage_buffer_init("x", &x).unwrap();
            // X quantized once, into a buffer with room for more tokens than the batch.
            let x8b = ctx
                .storage_buffer("x8", x8_bytes(n_in as u64, n_tokens as u32 + 9))
                .unwrap();
            let x8 = X8 {
                buffer: &x8b,
                tokens: n_tokens as u32 + 9,
            };
            let quantize = pollster::block_on(QuantizeX::new(
                &ctx,
                &xb,
                x8,
                n_in as u32,
                n_tokens as u32,
                QuantizeOptions::default(),
            ))
            .unwrap();
            ctx.run_pass("quantize", |p| quantize.encode(p)).unwrap();
            let run = |tile: Tile, int_dot: bool| {
                let yb = ctx.storage_buffer_init("y", &init).unwrap();
                let opts = MatMulOptions {
                    tile: Some(tile),
                    accumulate: true,
                    ..Default::default()
                };
                let op = if int_dot {
                    pollster::block_on(MatMul::new_int8(&ctx, &m, x8, &yb, n_tokens as u32, opts))
                } else {
                    pollster::block_on(MatMul::new(&ctx, &m, &xb, &yb, n_tokens as u32, opts))
                }
                .unwrap();
                ctx.run_pass("t", |p| op.encode(p)).unwrap();
                pollster::block_on(ctx.read_f32(&yb, 0, n_tokens * n_out)).unwrap()
            };
            let limit = ctx.caps().max_compute_workgroup_storage_size;
            for tile in TILES.into_iter().filter(|_| has_int_dot(ty)) {
                // The float product where the device holds its tile (it needs more workgroup
                // memory than the integer one, which fits every tile in 16 KiB).
                assert!(tile.workgroup_bytes(true) <= 16 << 10, "{tile}");
                let int = run(tile, true);
                if tile.workgroup_bytes(false) <= limit {
                    let float = run(tile, false);
                    assert_ne!(
                        int, float,
                        "{ty} {path} tile {tile}: the integer product did not run"
                    );
                }
                let (e, max) = nmse(&int, &want);
                let label = format!("{ty} {path} tile {tile}");
                eprintln!("matmul int8 {label}: nmse {e:.2e} max abs {max:.2e}");
                assert!(e <= 5e-4, "int8 {label}: nmse {e:e}");
            }
            // The row-per-invocation product on the quantized X (its X8 variant), every shape:
            // a float product of the same quantized values, so as close as the tiles'. It
            // agrees with their integer product to f32 rounding, except for Q4_K's minimums,
            // which the tiles take against X's exact sum and this against its quantized values.
            if has_int_dot(ty) {
                let tiled: Vec<f64> = run(Tile::new(64, 64, 4, 4), true)
                    .into_iter()
                    .map(f64::from)
                    .collect();
                let bound = if ty == GgmlType::Q4K { 1e-6 } else { 1e-9 };
                for lanes in LANES {
                    let yb = ctx.storage_buffer_init("y", &init).unwrap();
                    let opts = MatMulOptions {
                        lanes: Some(lanes),
                        accumulate: true,
                        ..Default::default()
                    };
                    let op = pollster::block_on(MatMul::new_int8(
                        &ctx,
                        &m,
                        x8,
                        &yb,
                        n_tokens as u32,
                        opts,
                    ))
                    .unwrap();
                    assert!(op.label().starts_with("matmul_rows"), "{}", op.label());
                    assert!(op.label().contains("x8"), "{}", op.label());
                    ctx.run_pass("t", |p| op.encode(p)).unwrap();
                    let got = pollster::block_on(ctx.read_f32(&yb, 0, n_tokens * n_out)).unwrap();
                    let (e, max) = nmse(&got, &want);
                    let label = format!("{ty} {path} lanes {lanes}");
                    eprintln!("matmul int8 {label}: nmse {e:.2e} max abs {max:.2e}");
                    assert!(e <= 5e-4, "int8 {label}: nmse {e:e}");
                    let (d, _) = nmse(&got, &tiled);
                    assert!(d <= bound, "int8 {label} against the tiles: nmse {d:e}");
                }
            }
            let yb = ctx
                .storage_buffer("y", (n_tokens * n_out) as u64 * 4)
                .unwrap();
            let build = |tile: Tile, tokens: u32| {
                let opts = MatMulOptions {
                    tile: Some(tile),
                    ..Default::default()
                };
                pollster::block_on(MatMul::new_int8(&ctx, &m, x8, &yb, tokens, opts))
            };
            let tile = Tile::new(64, 64, 4, 4);
            // A type without an integer product and more tokens than the quantized input holds
            // are typed errors.
            assert_eq!(
                build(tile, n_tokens as u32).is_ok(),
                has_int_dot(ty),
                "{ty}"
            );
            if has_int_dot(ty) {
                assert!(
                    build(tile, n_tokens as u32 + 10).is_err(),
                    "{ty}: too many tokens"
                );
            }
        }
    }
}

/// Contexts for the row-per-invocation product: f32 without subgroups (the browser's CPU
/// adapter), and where the adapter has them, f32 and f16 with subgroups (the lanes then share
/// their loads of X).
fn rows_contexts() -> Vec<(&'static str, GpuContext)> {
    let mut out = vec![("f32", common::context(true, true))];
    let sg = common::context(true, false);
    if sg.use_subgroups() {
        out.push(("f32+sg", sg));
    }
    let f16 = common::context(false, false);
    if f16.use_f16() {
        out.push((if f16.use_subgroups() { "f16+sg" } else { "f16" }, f16));
    }
    out
}

/// One row-per-invocation product of `n_tokens` x `n_out` against the oracle (plus a random Y
/// with `accumulate`), checking that the variant ran (and shared X through subgroups where the
/// context has them).
#[allow(clippy::too_many_arguments)]
fn rows_case(
    ctx: &GpuContext,
    path: &str,
    ty: GgmlType,
    (n_in, n_out, n_tokens): (usize, usize, usize),
    lanes: Lanes,
    accumulate: bool,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let bytes = random_tensor(ty, n_in, n_out, &mut rng);
    let x: Vec<f32> = (0..n_in * n_tokens).map(|_| rng.signed()).collect();
    let mut want = reference_matmul(ty, &bytes, n_in, n_out, &x);
    let init: Vec<f32> = (0..n_out * n_tokens).map(|_| rng.signed()).collect();
    if accumulate {
        for (w, i) in want.iter_mut().zip(&init) {
            *w += *i as f64;
        }
    }
    let m = QuantMatrix::from_bytes(ctx, "w", ty, n_in as u64, n_out as u64, &bytes).unwrap();
    let xb = ctx.storage_buffer_init("x", &x).unwrap();
    let yb = ctx.storage_buffer_init("y", &init).unwrap();
    let opts = MatMulOptions {
        accumulate,
        lanes: Some(lanes),
        ..Default::default()
    };
    let op = pollster::block_on(MatMul::new(ctx, &m, &xb, &yb, n_tokens as u32, opts)).unwrap();
    assert!(op.label().starts_with("matmul_rows"), "{}", op.label());
    let shared = ctx.use_subgroups() && ctx.caps().subgroup_min_size >= 4;
    assert_eq!(op.label().contains("subgroups"), shared, "{}", op.label());
    ctx.run_pass("t", |p| op.encode(p)).unwrap();
    let got = pollster::block_on(ctx.read_f32(&yb, 0, n_tokens * n_out)).unwrap();
    let (e, max) = nmse(&got, &want);
    let label = format!("{ty} {path} lanes {lanes} {n_tokens}x{n_in}x{n_out} acc={accumulate}");
    eprintln!("matmul rows {label}: nmse {e:.2e} max abs {max:.2e}");
    // f32 arithmetic on every path (the variant never takes f16).
    assert!(e <= 1e-7, "rows {label}: nmse {e:e}");
}

/// The row-per-invocation product (`MatMulOptions::lanes`, the CPU adapters' prefill) for every
/// GGML type, with a partial token block in accumulate mode and a batch of three blocks and a
/// bit (37 rows: a partial workgroup of rows), with and without subgroups, each at its default
/// shape (`Lanes::for_context`).
#[test]
fn matmul_rows_every_type() {
    let _gpu = common::serial();
    for (path, ctx) in rows_contexts() {
        for (i, ty) in GgmlType::ALL.into_iter().enumerate() {
            let (n_in, n_out) = shape(ty);
            for (j, (n_tokens, accumulate)) in [(7, true), (37, false)].into_iter().enumerate() {
                rows_case(
                    &ctx,
                    path,
                    ty,
                    (n_in, n_out, n_tokens),
                    Lanes::for_context(&ctx),
                    accumulate,
                    3000 + 10 * i as u64 + j as u64,
                );
            }
        }
    }
}

/// Every shape of the row-per-invocation product, with partial blocks of rows and tokens at
/// both ends (70 tokens, 133 rows), X read as vec4 (96- and 256-element rows) and as floats
/// (70-element F32 rows).
#[test]
fn matmul_rows_every_shape() {
    let _gpu = common::serial();
    for (path, ctx) in rows_contexts() {
        for (i, ty) in [GgmlType::Q5_0, GgmlType::Q4K, GgmlType::Q6K, GgmlType::F32]
            .into_iter()
            .enumerate()
        {
            let (n_in, _) = shape(ty);
            for (j, lanes) in LANES.into_iter().enumerate() {
                rows_case(
                    &ctx,
                    path,
                    ty,
                    (n_in, 133, 70),
                    lanes,
                    j % 2 == 1,
                    4000 + 10 * i as u64 + j as u64,
                );
            }
        }
    }
    // A shape the shader is not built for is a typed error, as is parsing one.
    let ctx = common::context(true, true);
    let m = QuantMatrix::from_bytes(&ctx, "w", GgmlType::F32, 4, 4, &[0u8; 64]).unwrap();
    let xb = ctx.storage_buffer("x", 64).unwrap();
    let yb = ctx.storage_buffer("y", 64).unwrap();
    let bad = MatMulOptions {
        lanes: Some(Lanes::new(16, 5)),
        ..Default::default()
    };
    assert!(pollster::block_on(MatMul::new(&ctx, &m, &xb, &yb, 4, bad)).is_err());
    assert!("16x5".parse::<Lanes>().is_err());
    assert_eq!("16x16".parse::<Lanes>().unwrap(), Lanes::new(16, 16));
    assert_eq!(
        "16x16x2".parse::<Lanes>().unwrap(),
        Lanes::with_rows(16, 16, 2)
    );
    assert_eq!(Lanes::CPU.to_string().parse::<Lanes>().unwrap(), Lanes::CPU);
    assert_eq!(
        "8x16x4".parse::<Lanes>().unwrap(),
        Lanes::with_rows(8, 16, 4)
    );
    assert_eq!("16x16x8".parse::<Lanes>().unwrap(), Lanes::CPU_UNSHARED);
    for bad in [
        "16x16x3",
        "8x16x8",
        "16x16x16",
        "16x16x1x2",
        "16",
        "16x",
        "axb",
    ] {
        assert!(bad.parse::<Lanes>().is_err(), "{bad}");
    }
    let bad = MatMulOptions {
        lanes: Some(Lanes::with_rows(8, 16, 8)),
        ..Default::default()
    };
    assert!(pollster::block_on(MatMul::new(&ctx, &m, &xb, &yb, 4, bad)).is_err());
}
