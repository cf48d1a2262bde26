//! Throughput of the weight kernels on the default adapter, for tuning and for the report:
//! `cargo run -p ahma-kernels --release --example kernel_bench [reps]`.
//!
//! For Ahma-3B shapes (3200→8640, 8640→3200, and the 3200→64256 output matrix in Q8_0) it times
//! `reps` back-to-back matvec dispatches in one compute pass and prints microseconds per call and
//! weight bytes per second, for each variant path (f16/f32, subgroups on/off, 64/256 threads);
//! then the prefill matmul for 64- and 512-token batches with every workgroup tile, in GFLOP/s.
//! Each line also gives the CPU time spent recording and submitting, per call. Weights are random
//! blocks with sane f16 scales. KB_OPS=reads adds the streaming read of `read_probe.wgsl` (GB/s
//! of u32, vec4 and texel loads: the ceiling of kernels that read every weight once).
//! Environment: KB_OPS=matvec|matmul|reads, KB_TOKENS=64,512,
//! KB_TYPES=q5_0,q8_0 narrow the sweep; KB_INT_DOT=0 leaves out the integer-dot products;
//! KB_SHAPES=64x8,128x4+pairs,16x8+blocks times only these mat-vec shapes (threads x rows);
//! KB_TILES and KB_LANES ("16x8", threads x tokens, or "none") the mat-mul's tiles and its
//! row-per-invocation shapes.

use std::time::Instant;

use ahma_gguf::GgmlType;
use ahma_kernels::matmul::{has_int_dot, MatMul, MatMulOptions, Tile, TILES};
use ahma_kernels::matmul_rows::{Lanes, LANES};
use ahma_kernels::quantize::{x8_bytes, QuantizeOptions, QuantizeX, X8};
use ahma_kernels::read_probe::{self, WG};
use ahma_kernels::{
    ContextOptions, GpuContext, KernelError, MatVec, MatVecOptions, QuantMatrix, ShaderChecks,
};

fn random_bytes(ty: GgmlType, n: usize, seed: &mut u64) -> Vec<u8> {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    let blocks = n / ty.block_elems();
    let mut out: Vec<u8> = (0..blocks * ty.block_bytes())
        .map(|_| next() as u8)
        .collect();
    // Make every aligned 16-bit word a small positive half: scales stay sane whatever the layout
    // (float types become small weights too).
    let half = half_bits(0.004);
    for w in out.chunks_mut(2) {
        if next() % 4 == 0 && w.len() == 2 {
            w.copy_from_slice(&half.to_le_bytes());
        }
    }
    out
}

fn half_bits(v: f32) -> u16 {
    // v is a small normal number: rebias the exponent and keep 10 mantissa bits.
    let b = v.to_bits();
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    ((exp as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

fn wait(ctx: &GpuContext) -> Result<(), KernelError> {
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| KernelError::Gpu(e.to_string()))?;
    ctx.check()
}

/// Seconds per repetition: (wall time from the start of recording to the end of the GPU work,
/// of which the CPU spent recording, finishing and submitting the command buffer).
fn time_reps(
    ctx: &GpuContext,
    reps: u32,
    f: &dyn Fn(&mut wgpu::ComputePass<'_>),
) -> Result<(f64, f64), KernelError> {
    ctx.run_pass("warmup", |p| f(p))?;
    let start = Instant::now();
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        for _ in 0..reps {
            f(&mut pass);
        }
    }
    ctx.queue().submit([enc.finish()]);
    let recorded = start.elapsed().as_secs_f64();
    wait(ctx)?;
    let n = reps as f64;
    Ok((start.elapsed().as_secs_f64() / n, recorded / n))
}

/// The streaming read of `read_probe.wgsl` for each way of reading and each order, in GB/s:
/// what a shader can read per second here, the weight kernels' ceiling. KB_READ_MB and
/// KB_READ_WG override the size read and the workgroups of 64 invocations reading it
/// (`read_probe::default_size`).
fn time_reads(ctx: &GpuContext, path: &str, reps: u32) -> Result<(), KernelError> {
    let cpu = ctx.adapter().device_type == wgpu::DeviceType::Cpu;
    let mut size = read_probe::default_size(ctx);
    let env = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(default)
    };
    // Whole MiB are whole texture rows (64 KiB).
    size.bytes = (env("KB_READ_MB", (size.bytes >> 20) as u32) as u64) << 20;
    size.workgroups = env("KB_READ_WG", size.workgroups);
    size.reps = if cpu { (reps / 40).max(3) } else { reps };
    let start = Instant::now();
    let now = || start.elapsed().as_secs_f64();
    let rates = pollster::block_on(read_probe::measure(ctx, size, &now))?;
    for (kind, order, gb_s) in rates.0 {
        println!(
            "reads  {path:14} {:17} {:11} {:6.1} MB, {} x {WG} invocations: {:9.1} us  {gb_s:8.2} GB/s",
            kind.name(),
            order.name(),
            size.bytes as f64 / 1e6,
            size.workgroups,
            size.bytes as f64 / gb_s / 1e3,
        );
    }
    Ok(())
}

/// A mat-vec variant: (threads, rows, unroll, pairs, int_dot).
type Shape = (u32, u32, bool, bool, bool, bool);

fn main() -> Result<(), KernelError> {
    let reps: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    // KB_OPS: "matvec", "matmul" or both (default); KB_TOKENS: matmul token counts ("64,512").
    let ops = std::env::var("KB_OPS").unwrap_or_else(|_| "matvec,matmul".into());
    let token_counts: Vec<u32> = std::env::var("KB_TOKENS")
        .unwrap_or_else(|_| "64,512".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    // KB_TYPES: only these GGML type names (e.g. "q5_0,q8_0"); default all cases.
    let types = std::env::var("KB_TYPES").ok();
    // KB_INT_DOT=0: leave out the integer-dot products (timed only for types that have one).
    let int_rows = std::env::var("KB_INT_DOT").as_deref() != Ok("0");
    let mut seed = 0x1234_5678_9abc_def1u64;
    let probe = pollster::block_on(GpuContext::new(ContextOptions::default()))?;
    println!("adapter: {}", probe.adapter());
    println!("caps: {:?}", probe.caps());
    drop(probe);
    let cases: Vec<(GgmlType, u64, u64)> = vec![
        (GgmlType::Q5_0, 3200, 3200),
        (GgmlType::Q4_0, 3200, 8640),
        (GgmlType::Q5_0, 3200, 8640),
        (GgmlType::Q8_0, 3200, 8640),
        (GgmlType::Iq4Nl, 3200, 8640),
        (GgmlType::Q5_0, 8640, 3200),
        (GgmlType::Q4K, 4096, 11008),
        (GgmlType::Q6K, 4096, 11008),
        (GgmlType::F16, 3200, 8640),
        (GgmlType::Q8_0, 3200, 64256),
    ];
    // KB_PATHS: only these paths ("f16+sg,f32+sg"). KB_UNCHECKED: shader checks to leave out,
    // one set per run separated by ';' (e.g. "none;loops;bounds;all", see ShaderChecks);
    // default: the context's automatic choice.
    let paths = std::env::var("KB_PATHS").ok();
    let check_sets: Vec<Option<ShaderChecks>> = match std::env::var("KB_UNCHECKED") {
        Ok(v) => v
            .split(';')
            .map(|s| ShaderChecks::without(s).map(Some))
            .collect::<Result<_, _>>()?,
        Err(_) => vec![None],
    };
    // KB_TILES: only these mat-mul tiles ("64x64,128x128x8x8": tokens x rows [x tokens x rows
    // per thread]).
    let tiles = std::env::var("KB_TILES").ok();
    // KB_LANES: only these row-per-invocation shapes ("16x8,32x8": threads x tokens); "none"
    // leaves them out.
    let lanes_list = std::env::var("KB_LANES").ok();
    // KB_SHAPES: only these mat-vec shapes, `WGxROWS` with optional `+pairs`, `+int8` and
    // `+blocks` ("64x8,128x4+pairs,16x8+blocks"); all unrolled where the row count allows.
    let shape_list: Option<Vec<Shape>> = std::env::var("KB_SHAPES").ok().map(|v| {
        v.split(',')
            .filter_map(|s| {
                let mut it = s.trim().split('+');
                let (wg, rows) = it.next()?.split_once('x')?;
                let flags: Vec<&str> = it.collect();
                Some((
                    wg.parse().ok()?,
                    rows.parse().ok()?,
                    true,
                    flags.contains(&"pairs"),
                    flags.contains(&"int8"),
                    flags.contains(&"blocks"),
                ))
            })
            .collect()
    });
    for (force_f32, disable_subgroups, shader_checks) in
        [(false, false), (false, true), (true, false), (true, true)]
            .into_iter()
            .flat_map(|(a, b)| check_sets.iter().map(move |&c| (a, b, c)))
    {
        let ctx = pollster::block_on(GpuContext::new(ContextOptions {
            force_f32,
            disable_subgroups,
            shader_checks,
            ..Default::default()
        }))?;
        let base_path = format!(
            "{}{}",
            if ctx.use_f16() { "f16" } else { "f32" },
            if ctx.use_subgroups() {
                "+sg"
            } else {
                "+wg-reduce"
            }
        );
        if let Some(p) = &paths {
            if !p.split(',').any(|n| n.trim() == base_path) {
                continue;
            }
        }
        let left_out = ctx.shader_checks().left_out();
        let path = if left_out.is_empty() {
            base_path
        } else {
            format!("{base_path}-{left_out}")
        };
        if ops.contains("reads") {
            time_reads(&ctx, &path, reps)?;
        }
        if !ops.contains("matvec") && !ops.contains("matmul") {
            continue;
        }
        for &(ty, n_in, n_out) in &cases {
            if let Some(t) = &types {
                if !t
                    .split(',')
                    .any(|n| n.trim().eq_ignore_ascii_case(ty.name()))
                {
                    continue;
                }
            }
            let bytes = random_bytes(ty, (n_in * n_out) as usize, &mut seed);
            let m = QuantMatrix::from_bytes(&ctx, "w", ty, n_in, n_out, &bytes)?;
            let x: Vec<f32> = (0..n_in).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
            let xb = ctx.storage_buffer_init("x", &x)?;
            let yb = ctx.storage_buffer("y", n_out * 4)?;
            // (threads, rows, unroll, pairs, int_dot): the default first, then the same with x
            // in 8-bit integers, with two units per step or without the unrolled rows, then
            // other shapes.
            let default_shapes: &[Shape] = if ops.contains("matvec") {
                &[
                    (128, 4, true, false, false, false),
                    (128, 4, true, false, true, false),
                    (128, 4, true, true, false, false),
                    (128, 4, true, true, true, false),
                    (128, 4, false, false, false, false),
                    (256, 4, true, false, false, false),
                    (256, 4, true, true, false, false),
                    (64, 4, true, false, false, false),
                    (64, 4, true, true, false, false),
                    (64, 8, true, false, false, false),
                    (64, 8, true, false, false, true),
                    (16, 8, true, false, false, false),
                    (16, 8, true, false, false, true),
                    (128, 8, true, false, false, false),
                    (128, 8, true, false, true, false),
                    (128, 8, true, true, false, false),
                    (128, 2, false, false, false, false),
                ]
            } else {
                &[]
            };
            let shapes = match &shape_list {
                Some(list) if ops.contains("matvec") => list.as_slice(),
                _ => default_shapes,
            };
            for &(wg, rows, unroll, pairs, int_dot, blocks) in shapes {
                if int_dot && !(int_rows && has_int_dot(ty)) {
                    continue;
                }
                let opts = MatVecOptions {
                    workgroup_size: wg,
                    rows,
                    unroll,
                    pairs,
                    int_dot,
                    blocks,
                    ..Default::default()
                };
                let op = pollster::block_on(MatVec::new(&ctx, &m, &xb, &yb, opts))?;
                let (t, cpu) = time_reps(&ctx, reps, &|p| op.encode(p))?;
                println!(
                    "matvec {path:14} {:7} {n_in:5}x{n_out:5} wg{wg:<3} rows {rows}{}{} parts {}: {:8.1} us (cpu {:5.1})  {:7.1} GB/s",
                    match (unroll && (rows == 4 || rows == 8), pairs, int_dot) {
                        (true, true, true) => " unrolled+pairs+int8",
                        (true, true, false) => " unrolled+pairs     ",
                        (true, false, true) => " unrolled+int8      ",
                        (true, false, false) => " unrolled           ",
                        _ => "                    ",
                    },
                    if blocks { "+blocks" } else { "" },
                    ty.name(),
                    m.parts().len(),
                    t * 1e6,
                    cpu * 1e6,
                    m.byte_len() as f64 / t / 1e9
                );
            }
            if !ops.contains("matmul") || n_out > 11008 {
                continue;
            }
            for &n_tokens in &token_counts {
                let xs: Vec<f32> = (0..n_in * n_tokens as u64)
                    .map(|i| ((i % 5) as f32 - 2.0) * 0.1)
                    .collect();
                let xb = ctx.storage_buffer_init("xs", &xs)?;
                let yb = ctx.storage_buffer("ys", n_out * n_tokens as u64 * 4)?;
                // The integer products read X quantized once (as the engine does for every
                // product of one input): timed here on its own, then run once before them.
                let x8b = ctx.storage_buffer("x8", x8_bytes(n_in, n_tokens))?;
                let x8 = X8 {
                    buffer: &x8b,
                    tokens: n_tokens,
                };
                let int_here = int_rows && has_int_dot(ty);
                if int_here {
                    let q = pollster::block_on(QuantizeX::new(
                        &ctx,
                        &xb,
                        x8,
                        n_in as u32,
                        n_tokens,
                        QuantizeOptions::default(),
                    ))?;
                    let (t, cpu) = time_reps(&ctx, reps, &|p| q.encode(p))?;
                    println!(
                        "quantize {path:12} {n_in:5} x {n_tokens:4} tok: {:9.1} us (cpu {:5.1})",
                        t * 1e6,
                        cpu * 1e6
                    );
                }
                // Builds the product (`int_dot`: on the quantized X), times it and prints it as
                // `layout` names it.
                let time_matmul = |opts: MatMulOptions,
                                   int_dot: bool,
                                   layout: &str|
                 -> Result<(), KernelError> {
                    let op = if int_dot {
                        pollster::block_on(MatMul::new_int8(&ctx, &m, x8, &yb, n_tokens, opts))
                    } else {
                        pollster::block_on(MatMul::new(&ctx, &m, &xb, &yb, n_tokens, opts))
                    }?;
                    let r = (reps * 64 / n_tokens / 10).max(2);
                    let (t, cpu) = time_reps(&ctx, r, &|p| op.encode(p))?;
                    println!(
                        "matmul {path:14} {:7} {n_in:5}x{n_out:5} {n_tokens:4} tok {layout}: {:9.1} us (cpu {:5.1})  {:8.1} GFLOP/s",
                        ty.name(),
                        t * 1e6,
                        cpu * 1e6,
                        2.0 * (n_in * n_out) as f64 * n_tokens as f64 / t / 1e9
                    );
                    Ok(())
                };
                for tile in TILES {
                    if let Some(t) = &tiles {
                        if !t
                            .split(',')
                            .any(|s| s.trim().parse::<Tile>().ok() == Some(tile))
                        {
                            continue;
                        }
                    }
                    // The float product, then (types with one) the integer one, each where the
                    // device has the workgroup memory.
                    for int_dot in [false, true] {
                        let limit = ctx.caps().max_compute_workgroup_storage_size;
                        if (int_dot && !int_here) || tile.workgroup_bytes(int_dot) > limit {
                            continue;
                        }
                        let opts = MatMulOptions {
                            tile: Some(tile),
                            ..Default::default()
                        };
                        let mark = if int_dot { " int8" } else { "     " };
                        time_matmul(opts, int_dot, &format!("tile {tile}{mark}"))?;
                    }
                }
                // The row-per-invocation product (CPU adapters), every shape or KB_LANES's.
                for lanes in LANES {
                    if let Some(l) = &lanes_list {
                        if !l
                            .split(',')
                            .any(|s| s.trim().parse::<Lanes>().ok() == Some(lanes))
                        {
                            continue;
                        }
                    }
                    let opts = MatMulOptions {
                        lanes: Some(lanes),
                        ..Default::default()
                    };
                    // The float X, then (types with an integer product) the quantized one.
                    for int_dot in [false, true] {
                        if int_dot && !int_here {
                            continue;
                        }
                        let mark = if int_dot { " int8" } else { "" };
                        time_matmul(opts, int_dot, &format!("lanes {lanes}{mark}"))?;
                    }
                }
            }
        }
    }
    Ok(())
}
