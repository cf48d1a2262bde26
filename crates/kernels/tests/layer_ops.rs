//! GPU tests of the layer ops (RMSNorm, RoPE + KV store, split-KV attention,
//! residual add, SwiGLU, sampling) against the plain CPU reference
//! (`ahma-reference`) over random shapes, including odd sizes, on both the f32
//! and the f16 KV-cache paths, with and without subgroups. Runs on whatever
//! adapter wgpu finds (lavapipe in CI); no adapter is a failure.

use ahma_kernels::attention::{self, Attention, AttentionBuffers, AttentionParams};
use ahma_kernels::elementwise::{Elementwise, ElementwiseOp};
use ahma_kernels::rms_norm::RmsNorm;
use ahma_kernels::rope::{self, Rope, RopeBuffers, RopeParams};
use ahma_kernels::sample::{Sample, SampleBuffers, SampleParams};
use ahma_kernels::step::StepParams;
use ahma_kernels::{ContextOptions, GpuContext};
use ahma_reference::ops;

mod common;
use common::read_cache;

/// xorshift64*: reproducible data without a dependency.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn nmse(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    num / den.max(1e-30)
}

/// The contexts every test runs on: f16 KV cache when the adapter has it, the
/// forced f32 path, and the workgroup-memory (no subgroup) reductions.
fn contexts() -> Vec<(String, GpuContext)> {
    let mut out = Vec::new();
    for (force_f32, disable_subgroups) in [(false, false), (true, false), (true, true)] {
        let opts = ContextOptions {
            force_f32,
            disable_subgroups,
            ..Default::default()
        };
        let ctx = pollster::block_on(GpuContext::new(opts)).unwrap_or_else(|e| {
            panic!("GPU tests need an adapter (install lavapipe: mesa-vulkan-drivers): {e}")
        });
        let label = format!("f16={} subgroups={}", ctx.use_f16(), ctx.use_subgroups());
        out.push((label, ctx));
    }
    out
}

fn default_ctx() -> GpuContext {
    pollster::block_on(GpuContext::new(ContextOptions::default())).unwrap_or_else(|e| {
        panic!("GPU tests need an adapter (install lavapipe: mesa-vulkan-drivers): {e}")
    })
}

fn step_buffer(ctx: &GpuContext, st: &StepParams) -> wgpu::Buffer {
    ctx.uniform_buffer("step", st).unwrap()
}

fn f32_buffer(ctx: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    ctx.storage_buffer_init("data", data).unwrap()
}

fn read(ctx: &GpuContext, b: &wgpu::Buffer, n: usize) -> Vec<f32> {
    pollster::block_on(ctx.read_f32(b, 0, n)).unwrap()
}

/// Cache contents as the GPU stores them (f16 pairs or f32).
fn cache_bytes(ctx: &GpuContext, data: &[f32]) -> Vec<u8> {
    if ctx.use_f16() {
        data.iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect()
    } else {
        bytemuck::cast_slice(data).to_vec()
    }
}

fn round_cache(ctx: &GpuContext, data: &[f32]) -> Vec<f32> {
    if ctx.use_f16() {
        data.iter()
            .map(|v| half::f16::from_f32(*v).to_f32())
            .collect()
    } else {
        data.to_vec()
    }
}

#[test]
fn rms_norm_matches_reference() {
    let mut rng = Rng(1);
    for (label, ctx) in contexts() {
        for &(n_tokens, n_embd) in &[(1usize, 1usize), (3, 100), (2, 3200), (5, 257), (4, 800)] {
            let x = rng.vec(n_tokens * n_embd, 3.0);
            let w = rng.vec(n_embd, 1.0);
            let eps = 1e-6;
            let (xb, wb) = (f32_buffer(&ctx, &x), f32_buffer(&ctx, &w));
            let yb = ctx
                .storage_buffer("y", (n_tokens * n_embd * 4) as u64)
                .unwrap();
            let op =
                pollster::block_on(RmsNorm::new(&ctx, &xb, &wb, &yb, n_embd as u32, eps)).unwrap();
            ctx.run_pass("rms_norm", |p| op.encode(p, n_tokens as u32))
                .unwrap();
            let got = read(&ctx, &yb, n_tokens * n_embd);
            let mut want = vec![0.0; n_tokens * n_embd];
            for r in 0..n_tokens {
                ops::rmsnorm(
                    &mut want[r * n_embd..][..n_embd],
                    &x[r * n_embd..][..n_embd],
                    &w,
                    eps,
                );
            }
            let e = nmse(&got, &want);
            assert!(e < 1e-10, "{label} rms_norm {n_tokens}x{n_embd}: nmse {e}");
        }
    }
}

#[test]
fn rope_rotates_q_and_stores_kv() {
    let mut rng = Rng(2);
    for (label, ctx) in contexts() {
        // (n_head, n_head_kv, head_dim, rope_dim, n_tokens, pos0)
        for &(nh, nkv, hd, rd, n, pos0) in &[
            (4usize, 4usize, 100usize, 100usize, 3usize, 0usize),
            (4, 2, 64, 32, 5, 17),
            (2, 1, 6, 6, 1, 1999),
            (3, 3, 2, 2, 7, 40),
        ] {
            let n_ctx = pos0 + n + 3;
            let (qd, kvd) = (nh * hd, nkv * hd);
            let (q, k, v) = (
                rng.vec(n * qd, 2.0),
                rng.vec(n * kvd, 2.0),
                rng.vec(n * kvd, 2.0),
            );
            let st = StepParams {
                n_tokens: n as u32,
                pos0: pos0 as u32,
                ..Default::default()
            };
            let step = step_buffer(&ctx, &st);
            let (qb, kb, vb) = (
                f32_buffer(&ctx, &q),
                f32_buffer(&ctx, &k),
                f32_buffer(&ctx, &v),
            );
            let cache_len = (n_ctx * kvd) as u64 * rope::kv_elem_bytes(ctx.use_f16());
            let kc = ctx.storage_buffer("kc", cache_len).unwrap();
            let vc = ctx.storage_buffer("vc", cache_len).unwrap();
            let cs = f32_buffer(&ctx, &rope::cos_sin_table(n_ctx, rd, 10000.0));
            let bufs = RopeBuffers {
                step: &step,
                q: &qb,
                k: &kb,
                v: &vb,
                k_cache: &kc,
                v_cache: &vc,
                cos_sin: &cs,
            };
            let params = RopeParams {
                n_head: nh as u32,
                n_head_kv: nkv as u32,
                head_dim: hd as u32,
                rope_dim: rd as u32,
            };
            let op = pollster::block_on(Rope::new(&ctx, &bufs, params)).unwrap();
            ctx.run_pass("rope", |p| op.encode(p, n as u32)).unwrap();

            let mut want_q = q.clone();
            let mut want_k = k.clone();
            for t in 0..n {
                for h in 0..nh {
                    ops::rope(&mut want_q[t * qd + h * hd..][..hd], pos0 + t, rd, 10000.0);
                }
                for h in 0..nkv {
                    ops::rope(&mut want_k[t * kvd + h * hd..][..hd], pos0 + t, rd, 10000.0);
                }
            }
            let got_q = read(&ctx, &qb, n * qd);
            let e = nmse(&got_q, &want_q);
            assert!(
                e < 1e-11,
                "{label} rope q {nh}/{nkv}x{hd} rope_dim {rd}: nmse {e}"
            );
            let got_k = read_cache(&ctx, &kc, n_ctx * kvd);
            let got_v = read_cache(&ctx, &vc, n_ctx * kvd);
            let tol = if ctx.use_f16() { 1e-6 } else { 1e-11 };
            let e = nmse(&got_k[pos0 * kvd..(pos0 + n) * kvd], &want_k);
            assert!(e < tol, "{label} rope k cache: nmse {e}");
            let e = nmse(&got_v[pos0 * kvd..(pos0 + n) * kvd], &v);
            assert!(e < tol, "{label} v cache: nmse {e}");
            assert!(
                got_k[..pos0 * kvd].iter().all(|&x| x == 0.0),
                "{label}: rows before pos0 touched"
            );
        }
    }
}

#[test]
fn split_attention_matches_reference() {
    let mut rng = Rng(3);
    for (label, ctx) in contexts() {
        // (n_head, n_head_kv, head_dim, n_tokens, pos0, max_splits): single and multi-block
        // splits, one split over many blocks (no reduce pass), prefill batches, GQA, head_dim
        // 100 and the 256 maximum.
        for &(nh, nkv, hd, n, pos0, max_splits) in &[
            (4usize, 4usize, 100usize, 1usize, 0usize, 32u32),
            (4, 4, 100, 1, 130, 32),
            (4, 4, 100, 1, 300, 1),
            (2, 1, 64, 7, 60, 32),
            (3, 3, 10, 1, 2200, 32),
            (2, 2, 256, 3, 5, 32),
            (8, 2, 32, 33, 100, 32),
            (2, 1, 64, 5, 200, 1),
            (1, 1, 2, 1, 4100, 32),
            (4, 4, 100, 20, 40, 32),
            (3, 3, 10, 18, 3, 32),
            (1, 1, 2, 3, 0, 32),
        ] {
            let n_ctx = pos0 + n;
            let (qd, kvd) = (nh * hd, nkv * hd);
            let q = rng.vec(n * qd, 1.0);
            let kc = round_cache(&ctx, &rng.vec(n_ctx * kvd, 1.0));
            let vc = round_cache(&ctx, &rng.vec(n_ctx * kvd, 1.0));
            let mut st = StepParams::default();
            attention::fill_step(&mut st, pos0 as u32, n as u32, max_splits);
            let step = step_buffer(&ctx, &st);
            let qb = f32_buffer(&ctx, &q);
            let kb = ctx
                .storage_buffer(
                    "kc",
                    (n_ctx * kvd) as u64 * rope::kv_elem_bytes(ctx.use_f16()),
                )
                .unwrap();
            let vb = ctx
                .storage_buffer(
                    "vc",
                    (n_ctx * kvd) as u64 * rope::kv_elem_bytes(ctx.use_f16()),
                )
                .unwrap();
            ctx.queue().write_buffer(&kb, 0, &cache_bytes(&ctx, &kc));
            ctx.queue().write_buffer(&vb, 0, &cache_bytes(&ctx, &vc));
            let po = ctx
                .storage_buffer("po", (n * nh * 32 * hd * 4) as u64)
                .unwrap();
            let pml = ctx
                .storage_buffer("pml", (n * nh * 32 * 2 * 4) as u64)
                .unwrap();
            let out = ctx.storage_buffer("out", (n * qd * 4) as u64).unwrap();
            let bufs = AttentionBuffers {
                step: &step,
                q: &qb,
                k_cache: &kb,
                v_cache: &vb,
                partial_o: &po,
                partial_ml: &pml,
                out: &out,
            };
            let params = AttentionParams {
                n_head: nh as u32,
                n_head_kv: nkv as u32,
                head_dim: hd as u32,
                scale: 1.0 / (hd as f32).sqrt(),
            };
            // The split passes, then the CPU adapters' (one invocation per token and head for
            // a batch, 8 lanes per head for one token).
            let mut gots = Vec::new();
            for rows in [false, true] {
                // Cleared first, so that each pass has to write the whole output itself.
                ctx.queue().write_buffer(&out, 0, &vec![0u8; n * qd * 4]);
                let op =
                    pollster::block_on(Attention::new_with(&ctx, &bufs, params, rows)).unwrap();
                ctx.run_pass("attention", |p| {
                    let dispatches = op.encode(p, &st);
                    let one = st.n_splits == 1 || rows;
                    assert_eq!(dispatches, if one { 1 } else { 2 });
                })
                .unwrap();
                gots.push((rows, read(&ctx, &out, n * qd)));
            }
            let mut want = vec![0.0; n * qd];
            let mut scores = vec![0.0; n_ctx];
            for t in 0..n {
                for h in 0..nh {
                    let kvh = h / (nh / nkv);
                    ops::attention_head(
                        &mut want[t * qd + h * hd..][..hd],
                        &q[t * qd + h * hd..][..hd],
                        &kc,
                        &vc,
                        kvd,
                        kvh * hd,
                        pos0 + t + 1,
                        &mut scores,
                    );
                }
            }
            for (rows, got) in gots {
                let e = nmse(&got, &want);
                assert!(
                    e < 1e-10,
                    "{label} attention {nh}/{nkv}x{hd} n={n} pos0={pos0} splits={} rows={rows}: \
                     nmse {e}",
                    st.n_splits
                );
            }
        }
    }
}

#[test]
fn attention_rejects_bad_shapes() {
    let ctx = default_ctx();
    let b = ctx.storage_buffer("b", 64).unwrap();
    let step = step_buffer(&ctx, &StepParams::default());
    let bufs = AttentionBuffers {
        step: &step,
        q: &b,
        k_cache: &b,
        v_cache: &b,
        partial_o: &b,
        partial_ml: &b,
        out: &b,
    };
    for (nh, nkv, hd) in [(4, 3, 64), (4, 4, 101), (4, 4, 258)] {
        let params = AttentionParams {
            n_head: nh,
            n_head_kv: nkv,
            head_dim: hd,
            scale: 1.0,
        };
        assert!(
            pollster::block_on(Attention::new(&ctx, &bufs, params)).is_err(),
            "{nh}/{nkv}x{hd} accepted"
        );
    }
}

#[test]
fn residual_add_and_swiglu_match_reference() {
    let mut rng = Rng(4);
    for (label, ctx) in contexts().into_iter().take(1) {
        for &(n, row) in &[(1usize, 1usize), (3, 8640), (2, 333)] {
            for op in [ElementwiseOp::Add, ElementwiseOp::SwiGlu] {
                let a = rng.vec(n * row, 8.0);
                let b = rng.vec(n * row, 2.0);
                let st = StepParams {
                    n_tokens: n as u32,
                    ..Default::default()
                };
                let step = step_buffer(&ctx, &st);
                let (ab, bb) = (f32_buffer(&ctx, &a), f32_buffer(&ctx, &b));
                let k = pollster::block_on(Elementwise::new(&ctx, op, &step, &ab, &bb, row as u32))
                    .unwrap();
                ctx.run_pass("elementwise", |p| k.encode(p, n as u32))
                    .unwrap();
                let mut want = a.clone();
                match op {
                    ElementwiseOp::Add => ops::add_assign(&mut want, &b),
                    ElementwiseOp::SwiGlu => ops::swiglu(&mut want, &b),
                }
                let e = nmse(&read(&ctx, &ab, n * row), &want);
                assert!(e < 1e-12, "{label} {op:?} {n}x{row}: nmse {e}");
            }
        }
    }
}

/// Runs the sampler for `draws` independent draws and returns the ids.
struct SamplerRig {
    ctx: GpuContext,
    step: wgpu::Buffer,
    recent: wgpu::Buffer,
    op: Sample,
    out: wgpu::Buffer,
}

impl SamplerRig {
    fn new(
        ctx: GpuContext,
        logits: &[f32],
        recent: &[u32],
        window: usize,
        draws: usize,
        p: &SampleParams,
    ) -> Self {
        let wg = ahma_kernels::sample::workgroup_size(&ctx);
        Self::with_wg(ctx, logits, recent, window, draws, p, wg)
    }

    fn with_wg(
        ctx: GpuContext,
        logits: &[f32],
        recent: &[u32],
        window: usize,
        draws: usize,
        p: &SampleParams,
        wg: u32,
    ) -> Self {
        let n = logits.len();
        let step = step_buffer(&ctx, &StepParams::default());
        let lb = f32_buffer(&ctx, logits);
        let mut ring = recent.to_vec();
        ring.resize(window.max(1), 0);
        let rb = ctx.storage_buffer_init("recent", &ring).unwrap();
        let work = ctx.storage_buffer("work", (draws * n * 4) as u64).unwrap();
        let prob = ctx.storage_buffer("prob", (draws * n * 4) as u64).unwrap();
        let out = ctx.storage_buffer("out", (draws * 4) as u64).unwrap();
        let bufs = SampleBuffers {
            step: &step,
            logits: &lb,
            recent: &rb,
            work: &work,
            prob: &prob,
            token_out: &out,
        };
        let op = pollster::block_on(Sample::with_workgroup_size(&ctx, &bufs, p, wg)).unwrap();
        SamplerRig {
            ctx,
            step,
            recent: rb,
            op,
            out,
        }
    }

    fn draw(&self, st: &StepParams, draws: usize) -> Vec<u32> {
        self.ctx
            .queue()
            .write_buffer(&self.step, 0, bytemuck::bytes_of(st));
        self.ctx
            .run_pass("sample", |p| self.op.encode(p, draws as u32))
            .unwrap();
        pollster::block_on(self.ctx.read_u32(&self.out, 0, draws)).unwrap()
    }
}

fn sample_params(
    n: usize,
    temperature: f32,
    top_k: u32,
    top_p: f32,
    penalty: f32,
    seed: u64,
    window: usize,
) -> SampleParams {
    SampleParams {
        n_vocab: n as u32,
        top_k,
        top_p,
        temperature,
        penalty,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        window: window as u32,
    }
}

/// How often each of `n` ids was drawn.
fn histogram(ids: &[u32], n: usize) -> Vec<f64> {
    let mut hist = vec![0f64; n];
    for &i in ids {
        hist[i as usize] += 1.0;
    }
    hist
}

/// Total variation distance between draw counts `hist` and probabilities `want`.
fn total_variation(hist: &[f64], want: &[f64]) -> f64 {
    let draws: f64 = hist.iter().sum();
    hist.iter()
        .zip(want)
        .map(|(h, w)| (h / draws - w).abs())
        .sum::<f64>()
        / 2.0
}

/// transformers' repetition penalty, applied once per distinct token.
fn penalize(logits: &[f32], recent: &[u32], penalty: f32) -> Vec<f32> {
    let mut out = logits.to_vec();
    let mut seen = std::collections::HashSet::new();
    for &t in recent {
        if seen.insert(t) {
            let l = out[t as usize];
            out[t as usize] = if l < 0.0 { l * penalty } else { l / penalty };
        }
    }
    out
}

/// The distribution transformers' warpers give: temperature, then top-k (ties
/// kept), then top-p (smallest prefix of the sorted probabilities reaching p).
fn expected_probs(logits: &[f32], temperature: f32, top_k: usize, top_p: f64) -> Vec<f64> {
    let z: Vec<f64> = logits
        .iter()
        .map(|&l| l as f64 / temperature as f64)
        .collect();
    let mut order: Vec<usize> = (0..z.len()).collect();
    order.sort_by(|&a, &b| z[b].partial_cmp(&z[a]).unwrap());
    let mut keep = vec![true; z.len()];
    if top_k > 0 && top_k < z.len() {
        let kth = z[order[top_k - 1]];
        for i in 0..z.len() {
            keep[i] = z[i] >= kth;
        }
    }
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut p: Vec<f64> = (0..z.len())
        .map(|i| if keep[i] { (z[i] - m).exp() } else { 0.0 })
        .collect();
    let total: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= total);
    if top_p < 1.0 {
        let mut acc = 0.0;
        let mut cut = false;
        for &i in &order {
            if cut {
                p[i] = 0.0;
            } else if keep[i] {
                acc += p[i];
                if acc >= top_p {
                    cut = true;
                }
            }
        }
        let total: f64 = p.iter().sum();
        p.iter_mut().for_each(|x| *x /= total);
    }
    p
}

#[test]
fn greedy_with_repetition_penalty_matches_cpu() {
    let mut rng = Rng(5);
    for &n in &[1usize, 7, 300, 64256] {
        let logits = rng.vec(n, 4.0);
        let recent: Vec<u32> = (0..12).map(|_| rng.below(n) as u32).chain([0, 0]).collect();
        for penalty in [1.0f32, 1.3, 0.7] {
            let p = sample_params(n, 0.0, 0, 1.0, penalty, 0, 16);
            let rig = SamplerRig::new(default_ctx(), &logits, &recent, 16, 1, &p);
            let st = StepParams {
                n_recent: recent.len() as u32,
                recent_head: 3,
                ..Default::default()
            };
            let got = rig.draw(&st, 1)[0];
            let want = ops::argmax(&penalize(&logits, &recent, penalty)).unwrap() as u32;
            assert_eq!(got, want, "n={n} penalty={penalty}");
            let ring = pollster::block_on(rig.ctx.read_u32(&rig.recent, 0, 16)).unwrap();
            assert_eq!(ring[3], want, "sampled id not pushed into the ring");
        }
    }
}

/// `suppress` (min length) takes one token out of greedy and sampled draws,
/// after the penalty, and nothing else changes.
#[test]
fn suppressed_token_is_never_drawn() {
    let mut rng = Rng(8);
    let n = 50;
    let mut logits = rng.vec(n, 1.0);
    // token 17 dominates: greedy and every sampled draw would pick it
    logits[17] = 40.0;
    let draws = 5000;
    let recent = [17u32, 4];
    let rig = SamplerRig::new(
        default_ctx(),
        &logits,
        &recent,
        4,
        draws,
        &sample_params(n, 0.0, 0, 1.0, 1.2, 3, 4),
    );
    let st = StepParams {
        n_recent: 2,
        recent_head: 2,
        ..Default::default()
    };
    assert_eq!(rig.draw(&st, 1)[0], 17);
    let banned = StepParams { suppress: 18, ..st };
    let mut without = penalize(&logits, &recent, 1.2);
    without[17] = f32::NEG_INFINITY;
    let want = ops::argmax(&without).unwrap() as u32;
    assert_eq!(
        rig.draw(&banned, 1)[0],
        want,
        "greedy with token 17 suppressed"
    );
    for (t, k, p) in [
        (0.6f32, 4u32, 1.0f32),
        (1.5, 0, 1.0),
        (1.0, 0, 0.9),
        (0.7, 60, 1.0),
    ] {
        rig.op
            .set_params(&rig.ctx, &sample_params(n, t, k, p, 1.2, 3, 4));
        let ids = rig.draw(&banned, draws);
        assert!(
            ids.iter().all(|&i| i != 17 && (i as usize) < n),
            "T={t} k={k} p={p}: suppressed token drawn"
        );
        // the rest keeps its distribution
        let want = expected_probs(&without, t, k as usize, p as f64);
        let tv = total_variation(&histogram(&ids, n), &want);
        // ~0.04 expected from 5000 draws over up to 49 tokens
        assert!(tv < 0.08, "T={t} k={k} p={p}: total variation {tv}");
    }
    // an id outside the vocabulary is ignored
    let out_of_range = StepParams {
        suppress: n as u32 + 1,
        ..st
    };
    assert_eq!(rig.draw(&out_of_range, 1)[0], 17);
}

#[test]
fn sampling_is_deterministic_per_seed() {
    let mut rng = Rng(6);
    let ctx = default_ctx();
    let logits = rng.vec(1000, 3.0);
    let p = sample_params(1000, 0.9, 40, 0.95, 1.1, 12345, 8);
    let rig = SamplerRig::new(ctx, &logits, &[1, 2, 3], 8, 64, &p);
    let st = StepParams {
        rng_step: 7,
        n_recent: 3,
        recent_head: 3,
        ..Default::default()
    };
    let a = rig.draw(&st, 64);
    let b = rig.draw(&st, 64);
    assert_eq!(a, b, "same seed and step must give the same tokens");
    let c = rig.draw(&StepParams { rng_step: 8, ..st }, 64);
    assert_ne!(a, c, "a different step must give a different stream");
    assert!(a.iter().all(|&t| t < 1000));
}

/// Empirical distribution of many GPU draws vs the CPU probabilities: total
/// variation distance within sampling noise.
#[test]
fn sampling_distribution_matches_cpu_probabilities() {
    let mut rng = Rng(7);
    let ctx = default_ctx();
    let n = 40;
    let draws = 5_000;
    let logits: Vec<f32> = rng.vec(n, 2.5);
    let cases: &[(f32, u32, f32, f32)] = &[
        (1.0, 0, 1.0, 1.0),
        (0.7, 0, 1.0, 1.0),
        (1.5, 5, 1.0, 1.0),
        (1.0, 0, 0.6, 1.0),
        (0.8, 10, 0.8, 1.0),
        (1.0, 0, 1.0, 1.8),
        // The small-k list path with top-p, and the chat's defaults (top-k 4, penalty 1.2).
        (0.9, 6, 0.7, 1.0),
        (1.2, 3, 0.5, 1.0),
        (0.6, 4, 1.0, 1.2),
    ];
    let recent = [3u32, 5, 5, 9];
    // Draw 0 writes its token into the ring at recent_head: a fifth slot that the four
    // penalized entries do not include, so no draw changes what the others (and the next
    // case) penalize.
    let rig = SamplerRig::new(
        ctx,
        &logits,
        &recent,
        5,
        draws,
        &sample_params(n, 1.0, 0, 1.0, 1.0, 99, 5),
    );
    for &(t, k, p, pen) in cases {
        rig.op
            .set_params(&rig.ctx, &sample_params(n, t, k, p, pen, 99, 5));
        let st = StepParams {
            rng_step: 1000,
            n_recent: 4,
            recent_head: 4,
            ..Default::default()
        };
        let ids = rig.draw(&st, draws);
        let hist = histogram(&ids, n);
        let want = expected_probs(&penalize(&logits, &recent, pen), t, k as usize, p as f64);
        // Expected total variation of 5000 draws over these ~40 categories is
        // about 0.02; the RNG streams are fixed, so the outcome is deterministic.
        let tv = total_variation(&hist, &want);
        println!("T={t} k={k} p={p} penalty={pen}: total variation {tv:.4}");
        assert!(
            tv < 0.05,
            "T={t} k={k} p={p} pen={pen}: total variation {tv}"
        );
        for (i, (&h, &w)) in hist.iter().zip(&want).enumerate() {
            assert!(
                w > 0.0 || h == 0.0,
                "T={t} k={k} p={p}: token {i} drawn {h} times but filtered out"
            );
        }
    }
}

/// A vocabulary longer than four scans of the widest workgroup (plus a tail), with ties at the
/// top: greedy picks the lowest id of the largest value (after the penalty), and top-k keeps
/// exactly the tokens at or above the k-th largest value, ties included, on both the small-k
/// path (k <= 8) and the radix path, for both workgroup sizes.
#[test]
fn large_vocabulary_greedy_and_top_k_keep_exact_ties() {
    use ahma_kernels::sample::{WG, WG_WIDE};
    let mut rng = Rng(11);
    let n = 9001;
    let mut logits = rng.vec(n, 2.0);
    let top = logits.iter().cloned().fold(f32::MIN, f32::max) + 1.0;
    // 4100 and 4101 share one invocation's id range for both workgroup sizes, so the draw
    // must also walk inside a range correctly.
    for i in [17usize, 4100, 4101, 8999] {
        logits[i] = top;
    }
    for i in [300usize, 7000] {
        logits[i] = top - 0.5;
    }
    let draws = 400;
    for wg in [WG, WG_WIDE] {
        let ctx = default_ctx();
        if ctx.caps().max_compute_invocations_per_workgroup < wg {
            panic!("{}: no workgroups of {wg}", ctx.adapter().name);
        }
        let rig = SamplerRig::with_wg(
            ctx,
            &logits,
            &[17, 17],
            4,
            draws,
            &sample_params(n, 0.0, 0, 1.0, 1.0, 5, 4),
            wg,
        );
        let st = StepParams {
            rng_step: 77,
            n_recent: 2,
            recent_head: 2,
            ..Default::default()
        };
        let ids = rig.draw(&st, 1);
        assert_eq!(ids, [17], "wg {wg}: greedy tie goes to the lowest id");
        rig.op
            .set_params(&rig.ctx, &sample_params(n, 0.0, 0, 1.0, 1.3, 5, 4));
        let ids = rig.draw(&st, 1);
        assert_eq!(ids, [4100], "wg {wg}: greedy after penalizing token 17");
        for k in [1u32, 3, 4, 5, 6, 8, 9, 12] {
            rig.op
                .set_params(&rig.ctx, &sample_params(n, 1.0, k, 1.0, 1.0, 5, 4));
            let ids = rig.draw(&st, draws);
            let hist = histogram(&ids, n);
            let want = expected_probs(&logits, 1.0, k as usize, 1.0);
            let kept = want.iter().filter(|&&w| w > 0.0).count();
            for (i, (&h, &w)) in hist.iter().zip(&want).enumerate() {
                assert!(
                    w > 0.0 || h == 0.0,
                    "wg {wg} k={k}: token {i} drawn {h} times but not among the {kept} kept"
                );
            }
            let tv = total_variation(&hist, &want);
            println!("wg {wg} k={k}: {kept} kept, total variation {tv:.3}");
            assert!(tv < 0.12, "wg {wg} k={k}: total variation {tv}");
            if k <= 6 {
                // The tied top tokens are each drawn (probability >= 0.1 each).
                for i in [17usize, 4100, 4101, 8999] {
                    assert!(
                        hist[i] > 0.0,
                        "wg {wg} k={k}: tied top token {i} never drawn"
                    );
                }
            }
        }
    }
}
