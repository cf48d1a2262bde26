//! Throughput of the weight kernels on the default adapter, for tuning and for the report:
//! `cargo run -p ahma-kernels --release --example kernel_bench [reps]`.
//!
//! For Ahma-3B shapes (3200→8640, 8640→3200, and the 3200→64256 output matrix in Q8_0) it times
//! `reps` back-to-back matvec dispatches in one compute pass and prints microseconds per call and
//! weight bytes per second, for each variant path (f16/f32, subgroups on/off, 64/256 threads);
//! then a 64-token matmul in GFLOP/s. Weights are random blocks with sane f16 scales.

use std::time::Instant;

use ahma_gguf::GgmlType;
use ahma_kernels::matmul::{MatMul, MatMulOptions};
use ahma_kernels::{ContextOptions, GpuContext, KernelError, MatVec, MatVecOptions, QuantMatrix};

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

fn time_reps(
    ctx: &GpuContext,
    reps: u32,
    f: &dyn Fn(&mut wgpu::ComputePass<'_>),
) -> Result<f64, KernelError> {
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
    wait(ctx)?;
    Ok(start.elapsed().as_secs_f64() / reps as f64)
}

fn main() -> Result<(), KernelError> {
    let reps: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
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
    for (force_f32, disable_subgroups) in
        [(false, false), (false, true), (true, false), (true, true)]
    {
        let ctx = pollster::block_on(GpuContext::new(ContextOptions {
            force_f32,
            disable_subgroups,
            ..Default::default()
        }))?;
        let path = format!(
            "{}{}",
            if ctx.use_f16() { "f16" } else { "f32" },
            if ctx.use_subgroups() {
                "+sg"
            } else {
                "+wg-reduce"
            }
        );
        for &(ty, n_in, n_out) in &cases {
            let bytes = random_bytes(ty, (n_in * n_out) as usize, &mut seed);
            let m = QuantMatrix::from_bytes(&ctx, "w", ty, n_in, n_out, &bytes)?;
            let x: Vec<f32> = (0..n_in).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
            let xb = ctx.storage_buffer_init("x", &x)?;
            let yb = ctx.storage_buffer("y", n_out * 4)?;
            for (wg, rows) in [(128, 4), (128, 8), (256, 4), (256, 8), (64, 2), (128, 2)] {
                let opts = MatVecOptions {
                    workgroup_size: wg,
                    rows,
                    ..Default::default()
                };
                let op = pollster::block_on(MatVec::new(&ctx, &m, &xb, &yb, opts))?;
                let t = time_reps(&ctx, reps, &|p| op.encode(p))?;
                println!(
                    "matvec {path:14} {:7} {n_in:5}x{n_out:5} wg{wg:<3} rows {rows} parts {}: {:8.1} us  {:7.1} GB/s",
                    ty.name(),
                    m.parts().len(),
                    t * 1e6,
                    m.byte_len() as f64 / t / 1e9
                );
            }
            if n_out <= 11008 {
                let n_tokens = 64u32;
                let xs: Vec<f32> = (0..n_in * n_tokens as u64)
                    .map(|i| ((i % 5) as f32 - 2.0) * 0.1)
                    .collect();
                let xb = ctx.storage_buffer_init("xs", &xs)?;
                let yb = ctx.storage_buffer("ys", n_out * n_tokens as u64 * 4)?;
                let op = pollster::block_on(MatMul::new(
                    &ctx,
                    &m,
                    &xb,
                    &yb,
                    n_tokens,
                    MatMulOptions::default(),
                ))?;
                let t = time_reps(&ctx, reps.div_ceil(10), &|p| op.encode(p))?;
                println!(
                    "matmul {path:14} {:7} {n_in:5}x{n_out:5} 64 tok   : {:8.1} us  {:7.1} GFLOP/s",
                    ty.name(),
                    t * 1e6,
                    2.0 * (n_in * n_out) as f64 * n_tokens as f64 / t / 1e9
                );
            }
        }
    }
    Ok(())
}
