//! Shared helpers for the GPU tests: a context on whatever adapter wgpu finds (lavapipe in CI)
//! and deterministic random data.
#![allow(dead_code)]

use ahma_kernels::{ContextOptions, GpuContext};
use std::sync::{Mutex, MutexGuard};

static GPU: Mutex<()> = Mutex::new(());

/// Serialises the GPU tests of one test binary. lavapipe spreads each dispatch over all cores, so
/// tests running side by side on a 2-core runner only thrash (27 s serial vs 113 s in parallel
/// for tests/matmul.rs). Hold the guard for the whole test.
pub fn serial() -> MutexGuard<'static, ()> {
    GPU.lock().unwrap_or_else(|p| p.into_inner())
}

/// Creates a context; a missing adapter fails the test with a clear message (never a skip).
pub fn context(force_f32: bool, disable_subgroups: bool) -> GpuContext {
    let opts = ContextOptions {
        force_f32,
        disable_subgroups,
        ..Default::default()
    };
    match pollster::block_on(GpuContext::new(opts)) {
        Ok(ctx) => ctx,
        Err(e) => panic!(
            "no usable GPU adapter for the kernel tests ({e}). Install a Vulkan driver; on Debian \
             `apt install mesa-vulkan-drivers` provides lavapipe, a CPU implementation."
        ),
    }
}

/// The variant combinations a test should cover on this device: (force_f32, disable_subgroups).
/// Paths the device cannot take (f16 without shader-f16, subgroups without the feature) collapse
/// onto ones it can, so they are dropped rather than run twice.
pub fn variant_contexts() -> Vec<(String, GpuContext)> {
    let probe = context(false, false);
    let mut out = Vec::new();
    for f32_only in [false, true] {
        for no_sg in [false, true] {
            if !f32_only && !probe.caps().shader_f16 {
                continue;
            }
            if !no_sg && !probe.caps().subgroups {
                continue;
            }
            let ctx = context(f32_only, no_sg);
            let name = format!(
                "{}{}",
                if ctx.use_f16() { "f16" } else { "f32" },
                if ctx.use_subgroups() {
                    "+subgroups"
                } else {
                    "+workgroup-reduce"
                }
            );
            out.push((name, ctx));
        }
    }
    out
}

/// A small deterministic PRNG (xorshift64*), so test inputs are reproducible without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

use ahma_gguf::GgmlType;

/// Byte offsets of the f16 scale fields (d, and dmin/m where present) inside one block.
fn scale_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Iq4Nl | GgmlType::Iq4Xs => {
            &[0]
        }
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q2K => &[80, 82],
        GgmlType::Q3K => &[108],
        GgmlType::Q6K => &[208],
        GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16 => &[],
    }
}

/// Random but sane tensor bytes: quant bytes fully random, f16 scales in [1e-3, 1e-2) (so values
/// stay in the range of real weights and nothing overflows), float types uniform in [-1, 1).
pub fn random_tensor(ty: GgmlType, n_in: usize, n_out: usize, rng: &mut Rng) -> Vec<u8> {
    let n = n_in * n_out;
    match ty {
        GgmlType::F32 => (0..n).flat_map(|_| rng.signed().to_le_bytes()).collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|_| half::f16::from_f32(rng.signed()).to_le_bytes())
            .collect(),
        GgmlType::Bf16 => (0..n)
            .flat_map(|_| half::bf16::from_f32(rng.signed()).to_le_bytes())
            .collect(),
        _ => {
            let bytes = n / ty.block_elems() * ty.block_bytes();
            let mut out: Vec<u8> = (0..bytes).map(|_| rng.next_u32() as u8).collect();
            for block in out.chunks_mut(ty.block_bytes()) {
                for &at in scale_fields(ty) {
                    let v = half::f16::from_f32(0.001 + 0.009 * rng.unit());
                    block[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            out
        }
    }
}

/// Normalised mean squared error sum((a-b)^2) / sum(b^2) against the reference `b`, plus the
/// maximum absolute error.
pub fn nmse(a: &[f32], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let mut err = 0.0;
    let mut norm = 0.0;
    let mut max = 0.0f64;
    for (&x, &y) in a.iter().zip(b) {
        let d = x as f64 - y;
        err += d * d;
        norm += y * y;
        max = max.max(d.abs());
    }
    (if norm > 0.0 { err / norm } else { err }, max)
}

/// CPU oracle: ahma_gguf::dequantize, then f64 dot products. `x` is (n_tokens, n_in); the result
/// is (n_tokens, n_out).
pub fn reference_matmul(
    ty: GgmlType,
    bytes: &[u8],
    n_in: usize,
    n_out: usize,
    x: &[f32],
) -> Vec<f64> {
    let mut wf = vec![0f32; n_in * n_out];
    ahma_gguf::dequantize(ty, bytes, &mut wf).expect("oracle dequantize");
    let n_tokens = x.len() / n_in;
    let mut y = vec![0f64; n_tokens * n_out];
    for t in 0..n_tokens {
        for r in 0..n_out {
            let row = &wf[r * n_in..(r + 1) * n_in];
            let xt = &x[t * n_in..(t + 1) * n_in];
            y[t * n_out + r] = row.iter().zip(xt).map(|(&a, &b)| a as f64 * b as f64).sum();
        }
    }
    y
}

/// Shapes (n_in, n_out) for a type: odd row counts, and for the 32-element types row lengths that
/// are not multiples of 256 (800 = Ahma-3B-like 3200 / 4). Float types also get a row length that
/// is not a multiple of 32.
pub fn shapes(ty: GgmlType) -> Vec<(usize, usize)> {
    match ty.block_elems() {
        1 => vec![(37, 5), (800, 13), (70, 1)],
        32 => vec![(800, 13), (96, 5), (32, 7)],
        _ => vec![(768, 13), (256, 5), (512, 7)],
    }
}

/// Reads `n` KV-cache elements (f16 with an f16 context, else f32) as f32.
pub fn read_cache(ctx: &GpuContext, b: &wgpu::Buffer, n: usize) -> Vec<f32> {
    if ctx.use_f16() {
        let bytes = pollster::block_on(ctx.read_bytes(b, 0, n as u64 * 2)).unwrap();
        bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()
    } else {
        pollster::block_on(ctx.read_f32(b, 0, n)).unwrap()
    }
}

/// The weight types of the integer-dot tests: the four with an integer product
/// (`ahma_kernels::matmul::has_int_dot`) and one without (Q6_K keeps the float product).
pub const INT_DOT_TYPES: [GgmlType; 5] = [
    GgmlType::Q4_0,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q6K,
];
