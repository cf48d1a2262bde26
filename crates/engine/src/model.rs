//! The Llama model on the GPU: weights, KV cache, scratch buffers, the kernels
//! prebuilt over them, and the forward pass.
//!
//! Every kernel's pipeline, uniform and bind group is created once at load
//! time. A forward pass writes one 32-byte step uniform and records its
//! dispatches into a single compute pass, so a decoded token is one queue
//! submit and one 4-byte readback of the sampled id. Decode steps are
//! pipelined: step n + 1 is submitted before step n's id is read back.

use ahma_gguf::{names, LlamaConfig};
use ahma_kernels::attention::{self, Attention, AttentionBuffers, AttentionParams};
use ahma_kernels::elementwise::{Elementwise, ElementwiseOp};
use ahma_kernels::matvec::{
    check_two_types, MatVec, MatVecNorm, MatVecOptions, MatVecOutput, MatVecRope,
};
use ahma_kernels::quantize::{QuantizeOptions, QuantizeX, X8};
use ahma_kernels::rms_norm::RmsNorm;
use ahma_kernels::rope::{self, Rope, RopeBuffers, RopeParams};
use ahma_kernels::sample::{Sample, SampleBuffers, SampleParams};
use ahma_kernels::step::StepParams;
use std::sync::Arc;

use ahma_kernels::GpuContext;

use crate::linear::{Batch, Embedding, Linear, Matrix, Member, Stack};
use crate::plan::{attn_partial_rows, attn_splits, x8_scratch_bytes, MemoryPlan, LOGITS_ROWS};
use crate::profile::Profiler;
use crate::readback::{read_buffer, read_buffer_after};
use crate::{EngineError, LoadOptions, SamplingParams};

/// Weights of one block.
pub(crate) struct LayerWeights {
    pub attn_norm: wgpu::Buffer, // (n_embd) f32
    /// attn_q (n_embd -> n_head * head_dim), attn_k and attn_v (n_embd -> kv_dim), stacked
    /// into one matrix where their types allow (else two or three).
    pub attn: Vec<Stack>,
    pub wo: Matrix,             // (n_head * head_dim) -> (n_embd)
    pub ffn_norm: wgpu::Buffer, // (n_embd) f32
    /// ffn_gate and ffn_up (n_embd -> n_ff), stacked where their types allow.
    pub ffn: Vec<Stack>,
    pub w_down: Matrix, // (n_ff) -> (n_embd)
}

/// All weights, raw GGUF blocks on the GPU.
pub(crate) struct Weights {
    pub token_embd: Matrix, // (n_vocab rows of n_embd)
    pub layers: Vec<LayerWeights>,
    pub output_norm: wgpu::Buffer, // (n_embd) f32
    pub output: Matrix,            // (n_embd) -> (n_vocab)
}

/// Activations and other per-step buffers, sized for `max_batch` tokens.
struct Scratch {
    step: wgpu::Buffer,   // StepParams uniform
    ids: wgpu::Buffer,    // (max_batch) u32 token ids; the sampler writes ids[0]
    hidden: wgpu::Buffer, // (max_batch, n_embd) residual stream
    normed: wgpu::Buffer, // (max_batch, n_embd)
    q: wgpu::Buffer,      // (max_batch, n_head * head_dim)
    k: wgpu::Buffer,      // (max_batch, kv_dim)
    v: wgpu::Buffer,      // (max_batch, kv_dim)
    attn: wgpu::Buffer,   // (max_batch, n_head * head_dim)
    gate: wgpu::Buffer,   // (max_batch, n_ff)
    up: wgpu::Buffer,     // (max_batch, n_ff)
    logits: wgpu::Buffer, // (max_batch, n_vocab)
    /// With `LoadOptions::matmul_int_dot`: the input of the next integer mat-muls in 8-bit
    /// integers (`QuantizeX`'s layout, for max_batch tokens of the widest input).
    x8: Option<wgpu::Buffer>,
    /// Two 4-byte MAP_READ buffers: a decode step submitted ahead copies its id into the one the
    /// step being read back does not use.
    token_read: [wgpu::Buffer; 2],
}

impl Scratch {
    /// `x8` as the integer mat-muls and the quantizers see it: room for `max_batch` tokens.
    fn x8(&self, max_batch: usize) -> Option<X8<'_>> {
        self.x8.as_ref().map(|buffer| X8 {
            buffer,
            tokens: max_batch as u32,
        })
    }
}

/// Kernels of one block, bound to that block's weights and KV cache.
///
/// Decode (one token) runs at most 8 dispatches: q/k/v with the attention RMSNorm, RoPE and
/// the KV write fused in (one mat-vec per stack, usually one, and one for a [q; k] stack with
/// a v stack of another type with `mixed_qkv`; with `fuse_rope` off, RoPE + KV write in a
/// dispatch of its own), attention (two), the output
/// projection adding into the residual stream, gate/up with the FFN RMSNorm and SwiGLU fused
/// in, and the down projection adding into the residual stream. Prefill batches run the
/// explicit norms, one tiled product per tensor and the SwiGLU kernel.
struct LayerOps {
    /// Decode: norm-fused mat-vecs over the q/k/v stacks (with RoPE and the KV write fused in
    /// with `LoadOptions::fuse_rope`).
    qkv: Vec<MatVec>,
    /// Decode: norm-fused mat-vecs over the gate/up stacks; one SwiGLU-fused mat-vec when gate
    /// and up share a stack.
    ffn_in: Vec<MatVec>,
    /// Whether `ffn_in` already applied SwiGLU (else `swiglu` runs after it).
    ffn_fused: bool,
    /// Prefill: explicit norms and one tiled product per tensor (q, k, v; gate, up).
    attn_norm: RmsNorm,
    qkv_batch: Vec<Batch>,
    ffn_norm: RmsNorm,
    ffn_batch: Vec<Batch>,
    rope: Rope,
    attention: Attention,
    o: Linear, // accumulates into the residual stream
    swiglu: Elementwise,
    down: Linear, // accumulates into the residual stream
}

/// With `LoadOptions::matmul_int_dot`: a prefill batch's mat-mul inputs quantized into
/// `Scratch::x8`, each just before the products that read it (every layer reuses them).
struct Quantizers {
    /// `normed`: the input of q/k/v, of gate/up and of the all-rows output head.
    normed: QuantizeX,
    /// `attn`: the output projection's input.
    attn: QuantizeX,
    /// `gate` after SwiGLU: the down projection's input.
    gate: QuantizeX,
}

/// Which logits a forward pass produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Head {
    /// Logits of every token of the batch into `logits` rows 0..n.
    All,
    /// Logits of the last token into `logits` row 0, then sample into `ids[0]`.
    LastAndSample,
    /// No output head (inner prefill batches).
    None,
}

/// Counters for `ahma bench`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepStats {
    pub dispatches: u64,
    pub submits: u64,
    pub readback_bytes: u64,
    /// CPU time [`Model::decode`] spent recording, finishing and submitting its command buffers,
    /// read from the model's clock ([`Model::set_clock`]; native: `std::time::Instant`; wasm32:
    /// none until the app sets one, and 0 without). Without [`LoadOptions::pipeline_decode`]
    /// the GPU idles for it on every token; with it, it overlaps the previous step's GPU work.
    pub record_ns: u64,
}

/// Seconds since a fixed moment, never decreasing: what [`Model::set_clock`] takes.
pub type Clock = fn() -> f64;

/// The native clock: seconds since its first call. `std::time::Instant` panics on wasm32,
/// where the app passes its own (the page's `performance.now()`).
#[cfg(not(target_arch = "wasm32"))]
fn instant_clock() -> f64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

#[cfg(not(target_arch = "wasm32"))]
const DEFAULT_CLOCK: Option<Clock> = Some(instant_clock);
#[cfg(target_arch = "wasm32")]
const DEFAULT_CLOCK: Option<Clock> = None;

/// A loaded model with its KV cache: one conversation at a time.
pub struct Model {
    ctx: Arc<GpuContext>,
    cfg: LlamaConfig,
    opts: LoadOptions,
    plan: MemoryPlan,
    weights: Weights,
    _kv: Vec<(wgpu::Buffer, wgpu::Buffer)>,
    _tables: Vec<wgpu::Buffer>,
    s: Scratch,
    embed: Embedding,
    layers: Vec<LayerOps>,
    x8: Option<Quantizers>,
    out_norm_all: RmsNorm,
    /// The all-rows head of [`Model::logits`] (tests and `ahma logits`; chat never asks for it),
    /// built on first use: its matrix-matrix pipeline is not compiled while a model loads.
    output: Option<Linear>,
    /// Decode head: the output projection with the final RMSNorm fused in.
    output_fused: MatVec,
    /// The same for a prompt's last token: reads its row of the batch (`set_x_offset`), so a
    /// prompt's head is one dispatch of the decode head's pipeline.
    output_prompt: MatVec,
    sample: Sample,
    recent: wgpu::Buffer,
    /// Tokens in the KV cache.
    n_past: usize,
    /// Tokens ever pushed to the recent ring (its fill and head follow from it).
    n_seen: u64,
    /// Draws so far: the RNG stream index.
    n_draws: u32,
    sampling: SamplingParams,
    /// A token the sampler may not draw (see [`Model::suppress`]).
    suppressed: Option<u32>,
    stats: StepStats,
    /// What [`StepStats::record_ns`] is read from (`None`: not measured).
    clock: Option<Clock>,
    /// Whether `ids[0]` holds a sampled token not yet in the KV cache.
    pending: bool,
    /// The pending token's id (what `ids[0]` holds for the next step).
    last_id: u32,
    /// CPU copy of the GPU penalty ring, to undo a step submitted ahead.
    ring: Vec<u32>,
    /// Bumped by [`Model::set_sampling`]: a step submitted ahead under other
    /// sampling parameters is redone.
    epoch: u64,
    /// The decode step submitted ahead of the caller's [`Model::decode`].
    ahead: Option<Ahead>,
}

/// A decode step recorded and submitted before the caller asked for it.
struct Ahead {
    /// The step uniform it ran with (position, RNG step, penalty ring head,
    /// suppressed token): adopted only if the step the caller asks for has
    /// exactly these.
    st: StepParams,
    epoch: u64,
    /// Where its id lands.
    draw: Draw,
    dispatches: u64,
}

/// The sampled id of a submitted step: which `token_read` buffer receives it,
/// and the submission to wait for.
struct Draw {
    slot: usize,
    submission: wgpu::SubmissionIndex,
}

fn storage(ctx: &GpuContext, label: &str, bytes: u64) -> Result<wgpu::Buffer, EngineError> {
    Ok(ctx.storage_buffer(label, bytes)?)
}

impl Model {
    /// Builds the KV cache, scratch and kernels around streamed-in weights.
    pub(crate) async fn build(
        ctx: Arc<GpuContext>,
        cfg: LlamaConfig,
        mut opts: LoadOptions,
        plan: MemoryPlan,
        weights: Weights,
    ) -> Result<Model, EngineError> {
        // The shape and walk in use, for `Model::options` to report (the same ones
        // `matvec_options` derives from unset choices).
        let mv = opts.matvec_options(&ctx);
        opts.matvec_shape = Some(mv.shape());
        opts.matvec_blocks = Some(mv.blocks);
        let lanes = opts.matmul_lanes_on(&ctx);
        opts.matmul_rows = Some(lanes.is_some());
        opts.matmul_lanes = Some(
            opts.matmul_lanes
                .unwrap_or_else(|| ahma_kernels::Lanes::for_context(&ctx)),
        );
        let attention_rows = opts.attention_rows_on(&ctx);
        opts.attention_rows = Some(attention_rows);
        let b = opts.max_batch as u64;
        let f = 4u64;
        let d = cfg.n_embd as u64;
        let qd = (cfg.n_head * cfg.head_dim) as u64;
        let kvd = cfg.kv_dim() as u64;
        let ff = cfg.n_ff as u64;
        let nv = cfg.n_vocab as u64;
        let dev = ctx.device();
        let step = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("step"),
            size: std::mem::size_of::<StepParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let s = Scratch {
            ids: storage(&ctx, "ids", 4 * b)?,
            hidden: storage(&ctx, "hidden", f * b * d)?,
            normed: storage(&ctx, "normed", f * b * d)?,
            q: storage(&ctx, "q", f * b * qd)?,
            k: storage(&ctx, "k", f * b * kvd)?,
            v: storage(&ctx, "v", f * b * kvd)?,
            attn: storage(&ctx, "attn", f * b * qd)?,
            gate: storage(&ctx, "gate", f * b * ff)?,
            up: storage(&ctx, "up", f * b * ff)?,
            logits: storage(&ctx, "logits", f * b.min(LOGITS_ROWS as u64) * nv)?,
            x8: match x8_scratch_bytes(&cfg, &opts, opts.max_batch) {
                0 => None,
                bytes => Some(storage(&ctx, "x8", bytes)?),
            },
            token_read: [0, 1].map(|_| {
                dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("token readback"),
                    size: 4,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }),
            step,
        };
        let heads = cfg.n_head as u64;
        let rows = attn_partial_rows(opts.max_batch) as u64;
        let partial_o = storage(
            &ctx,
            "attention partial o",
            f * rows * heads * cfg.head_dim as u64,
        )?;
        let partial_ml = storage(&ctx, "attention partial ml", f * rows * heads * 2)?;
        let table = rope::cos_sin_table(opts.n_ctx, cfg.rope_dim, cfg.rope_base);
        let cos_sin = storage(&ctx, "rope cos/sin", f * table.len() as u64)?;
        ctx.queue()
            .write_buffer(&cos_sin, 0, bytemuck::cast_slice(&table));
        let kv_bytes = opts.n_ctx as u64 * kvd * rope::kv_elem_bytes(ctx.use_f16());
        let mut kv = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            kv.push((
                storage(&ctx, &format!("k cache {l}"), kv_bytes)?,
                storage(&ctx, &format!("v cache {l}"), kv_bytes)?,
            ));
        }
        let window = opts.penalty_window as u64;
        let recent = storage(&ctx, "recent tokens", 4 * window.max(1))?;
        let work = storage(&ctx, "sample work", f * nv)?;
        let prob = storage(&ctx, "sample prob", f * nv)?;

        let mb = opts.max_batch as u32;
        // The decode mat-vecs' loop shape, for every product built below.
        let mv_default = opts.matvec_options(&ctx);
        let n_embd = cfg.n_embd as u32;
        let x8 = s.x8(opts.max_batch);
        let quantizers = match x8 {
            Some(out) => {
                let q = |x, n_in: u64| {
                    let ctx = &ctx;
                    async move {
                        QuantizeX::new(ctx, x, out, n_in as u32, mb, QuantizeOptions::default())
                            .await
                    }
                };
                Some(Quantizers {
                    normed: q(&s.normed, d).await?,
                    attn: q(&s.attn, qd).await?,
                    gate: q(&s.gate, ff).await?,
                })
            }
            None => None,
        };
        let embed = Embedding::new(&ctx, &weights.token_embd, &s.ids, &s.hidden, mb).await?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for (l, w) in weights.layers.iter().enumerate() {
            let (kc, vc) = &kv[l];
            // Scratch buffer of each stacked tensor.
            let dest = |name: &str| -> Result<&wgpu::Buffer, EngineError> {
                let b = [
                    (names::attn_q(l), &s.q),
                    (names::attn_k(l), &s.k),
                    (names::attn_v(l), &s.v),
                    (names::ffn_gate(l), &s.gate),
                    (names::ffn_up(l), &s.up),
                ]
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b);
                b.ok_or_else(|| EngineError::BadTensor {
                    name: name.into(),
                    reason: "unexpected in a stack".into(),
                })
            };
            // One output per member of a stack, into that tensor's scratch buffer.
            let member_outputs = |st: &Stack| {
                st.members
                    .iter()
                    .map(|m| {
                        Ok(MatVecOutput {
                            buffer: dest(&m.name)?,
                            offset: 0,
                            rows: m.rows,
                        })
                    })
                    .collect::<Result<Vec<_>, EngineError>>()
            };
            let mut qkv = Vec::new();
            let mut qkv_batch = Vec::new();
            let qkv_names = [names::attn_q(l), names::attn_k(l), names::attn_v(l)];
            let rope_bufs = MatVecRope {
                q: &s.q,
                rows: [0; 3],
                step: &s.step,
                cos_sin: &cos_sin,
                k_cache: kc,
                v_cache: vc,
                head_dim: cfg.head_dim as u32,
                rope_dim: cfg.rope_dim as u32,
                n_head_kv: cfg.n_head_kv as u32,
                v: None,
            };
            // Every stack holds its members in q, k, v order.
            let rows_of = |members: &[Member]| {
                let mut rows = [0u64; 3];
                for m in members {
                    if let Some(i) = qkv_names.iter().position(|n| *n == m.name) {
                        rows[i] = m.rows;
                    }
                }
                rows
            };
            let attn_norm = MatVecNorm {
                weight: &w.attn_norm,
                eps: cfg.rms_eps,
            };
            // A [q; k] stack and a [v] stack of another type: one dispatch over both matrices,
            // where the kernel can take them (`matvec::check_two_types`).
            let mixed = match w.attn.as_slice() {
                [qk, v] if opts.fuse_rope && opts.mixed_qkv => {
                    let (a, b) = (rows_of(&qk.members), rows_of(&v.members));
                    let rows = [a[0], a[1], b[2]];
                    check_two_types(&qk.m.0, &v.m.0, rows, &mv_default)
                        .is_ok()
                        .then_some((qk, v, rows))
                }
                _ => None,
            };
            if let Some((qk, v, rows)) = mixed {
                qkv.push(
                    MatVec::new_qkv_rope(
                        &ctx,
                        &qk.m.0,
                        &s.hidden,
                        Some(attn_norm),
                        MatVecRope {
                            rows,
                            v: Some(&v.m.0),
                            ..rope_bufs
                        },
                        mv_default,
                    )
                    .await?,
                );
            }
            for st in &w.attn {
                // With the two-type product above, only prefill's per-tensor products remain.
                if mixed.is_none() {
                    let op = if opts.fuse_rope {
                        MatVec::new_qkv_rope(
                            &ctx,
                            &st.m.0,
                            &s.hidden,
                            Some(attn_norm),
                            MatVecRope {
                                rows: rows_of(&st.members),
                                ..rope_bufs
                            },
                            mv_default,
                        )
                        .await?
                    } else {
                        MatVec::new_fused(
                            &ctx,
                            &st.m.0,
                            &s.hidden,
                            Some(attn_norm),
                            &member_outputs(st)?,
                            mv_default,
                        )
                        .await?
                    };
                    qkv.push(op);
                }
                if mb > 1 {
                    for m in &st.members {
                        qkv_batch.push(
                            Batch::new(
                                &ctx,
                                &st.m,
                                m.first_row,
                                m.rows,
                                &s.normed,
                                x8,
                                dest(&m.name)?,
                                mb,
                                false,
                                &opts,
                            )
                            .await?,
                        );
                    }
                }
            }
            let mut ffn_in = Vec::new();
            let mut ffn_batch = Vec::new();
            let ffn_fused = w.ffn.len() == 1;
            for st in &w.ffn {
                let norm = MatVecNorm {
                    weight: &w.ffn_norm,
                    eps: cfg.rms_eps,
                };
                let (outs, mv_opts) = if ffn_fused {
                    // [gate; up] in one stack: y = silu(gate·x)·(up·x) into the gate buffer.
                    let o = MatVecOutput {
                        buffer: &s.gate,
                        offset: 0,
                        rows: ff,
                    };
                    let opts = MatVecOptions {
                        swiglu: true,
                        ..mv_default
                    };
                    (vec![o], opts)
                } else {
                    (member_outputs(st)?, mv_default)
                };
                ffn_in.push(
                    MatVec::new_fused(&ctx, &st.m.0, &s.hidden, Some(norm), &outs, mv_opts).await?,
                );
                if mb > 1 {
                    for m in &st.members {
                        ffn_batch.push(
                            Batch::new(
                                &ctx,
                                &st.m,
                                m.first_row,
                                m.rows,
                                &s.normed,
                                x8,
                                dest(&m.name)?,
                                mb,
                                false,
                                &opts,
                            )
                            .await?,
                        );
                    }
                }
            }
            layers.push(LayerOps {
                qkv,
                ffn_in,
                ffn_fused,
                qkv_batch,
                ffn_batch,
                attn_norm: RmsNorm::new(
                    &ctx,
                    &s.hidden,
                    &w.attn_norm,
                    &s.normed,
                    n_embd,
                    cfg.rms_eps,
                )
                .await?,
                rope: Rope::new(
                    &ctx,
                    &RopeBuffers {
                        step: &s.step,
                        q: &s.q,
                        k: &s.k,
                        v: &s.v,
                        k_cache: kc,
                        v_cache: vc,
                        cos_sin: &cos_sin,
                    },
                    RopeParams {
                        n_head: cfg.n_head as u32,
                        n_head_kv: cfg.n_head_kv as u32,
                        head_dim: cfg.head_dim as u32,
                        rope_dim: cfg.rope_dim as u32,
                    },
                )
                .await?,
                attention: Attention::new_with(
                    &ctx,
                    &AttentionBuffers {
                        step: &s.step,
                        q: &s.q,
                        k_cache: kc,
                        v_cache: vc,
                        partial_o: &partial_o,
                        partial_ml: &partial_ml,
                        out: &s.attn,
                    },
                    AttentionParams {
                        n_head: cfg.n_head as u32,
                        n_head_kv: cfg.n_head_kv as u32,
                        head_dim: cfg.head_dim as u32,
                        scale: 1.0 / (cfg.head_dim as f32).sqrt(),
                    },
                    attention_rows,
                )
                .await?,
                o: Linear::new(&ctx, &w.wo, &s.attn, x8, &s.hidden, mb, true, &opts).await?,
                ffn_norm: RmsNorm::new(
                    &ctx,
                    &s.hidden,
                    &w.ffn_norm,
                    &s.normed,
                    n_embd,
                    cfg.rms_eps,
                )
                .await?,
                swiglu: Elementwise::new(
                    &ctx,
                    ElementwiseOp::SwiGlu,
                    &s.step,
                    &s.gate,
                    &s.up,
                    cfg.n_ff as u32,
                )
                .await?,
                down: Linear::new(&ctx, &w.w_down, &s.gate, x8, &s.hidden, mb, true, &opts).await?,
            });
        }
        let out_norm_all = RmsNorm::new(
            &ctx,
            &s.hidden,
            &weights.output_norm,
            &s.normed,
            n_embd,
            cfg.rms_eps,
        )
        .await?;
        let head = |ctx: Arc<GpuContext>| {
            let (hidden, logits) = (&s.hidden, &s.logits);
            let (w, norm) = (&weights.output.0, &weights.output_norm);
            async move {
                MatVec::new_fused(
                    &ctx,
                    w,
                    hidden,
                    Some(MatVecNorm {
                        weight: norm,
                        eps: cfg.rms_eps,
                    }),
                    &[MatVecOutput {
                        buffer: logits,
                        offset: 0,
                        rows: nv,
                    }],
                    mv_default,
                )
                .await
            }
        };
        let output_fused = head(ctx.clone()).await?;
        let output_prompt = head(ctx.clone()).await?;
        let sampling = SamplingParams::greedy();
        let sample = Sample::new(
            &ctx,
            &SampleBuffers {
                step: &s.step,
                logits: &s.logits,
                recent: &recent,
                work: &work,
                prob: &prob,
                token_out: &s.ids,
            },
            &sample_params(&sampling, cfg.n_vocab, opts.penalty_window),
        )
        .await?;
        let tables = vec![cos_sin, partial_o, partial_ml, work, prob];
        ctx.check()?;
        Ok(Model {
            ctx,
            cfg,
            plan,
            weights,
            _kv: kv,
            _tables: tables,
            s,
            embed,
            layers,
            x8: quantizers,
            out_norm_all,
            output: None,
            output_fused,
            output_prompt,
            sample,
            recent,
            n_past: 0,
            n_seen: 0,
            n_draws: 0,
            sampling,
            suppressed: None,
            stats: StepStats::default(),
            clock: DEFAULT_CLOCK,
            pending: false,
            last_id: 0,
            ring: vec![0; opts.penalty_window],
            epoch: 0,
            ahead: None,
            opts,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    pub fn options(&self) -> &LoadOptions {
        &self.opts
    }

    pub fn memory_plan(&self) -> &MemoryPlan {
        &self.plan
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The shared context, to load another model on the same device (its
    /// pipeline cache is reused).
    pub fn shared_context(&self) -> Arc<GpuContext> {
        self.ctx.clone()
    }

    /// Tokens currently in the KV cache.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Free positions left in the context.
    pub fn room(&self) -> usize {
        self.opts.n_ctx - self.n_past
    }

    /// Submit and readback counters since load (or [`Model::reset_stats`]).
    pub fn stats(&self) -> StepStats {
        self.stats
    }

    pub fn reset_stats(&mut self) {
        self.stats = StepStats::default();
    }

    /// The clock [`StepStats::record_ns`] is read from, in seconds (the browser passes
    /// `performance.now() / 1000`; natively it is `std::time::Instant` already).
    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = Some(clock);
    }

    /// Forgets the conversation: empty KV cache, empty penalty window, RNG
    /// stream restarted.
    pub fn reset(&mut self) {
        self.n_past = 0;
        self.n_seen = 0;
        self.n_draws = 0;
        self.pending = false;
        self.suppressed = None;
        self.ahead = None;
    }

    /// Forgets every cached position from `n_past` on, keeping the first
    /// `n_past` (a chat that edits or regenerates its last turn reuses the
    /// shared prefix). The later KV entries are simply overwritten by the next
    /// evaluation. The penalty window is cleared, since the tokens it held may
    /// be the ones forgotten.
    pub fn rewind(&mut self, n_past: usize) -> Result<(), EngineError> {
        if n_past > self.n_past {
            return Err(EngineError::InvalidArgument(format!(
                "cannot rewind to position {n_past}: only {} positions are cached",
                self.n_past
            )));
        }
        self.n_past = n_past;
        self.n_seen = 0;
        self.pending = false;
        self.ahead = None;
        Ok(())
    }

    /// Sets how [`Model::prefill`] and [`Model::decode`] choose tokens; also
    /// restarts the RNG stream so a seed reproduces a generation.
    pub fn set_sampling(&mut self, params: SamplingParams) -> Result<(), EngineError> {
        params.validate()?;
        self.sample.set_params(
            &self.ctx,
            &sample_params(&params, self.cfg.n_vocab, self.opts.penalty_window),
        );
        self.sampling = params;
        self.n_draws = 0;
        self.epoch += 1;
        Ok(())
    }

    /// Makes `token` undrawable by the following [`Model::prefill`] and
    /// [`Model::decode`] calls until it is lifted with `None` (its logit is
    /// -inf, as transformers' `MinLengthLogitsProcessor` does for the
    /// end-of-sequence id while the sequence is shorter than `min_length`).
    /// Ids outside the vocabulary are refused.
    pub fn suppress(&mut self, token: Option<u32>) -> Result<(), EngineError> {
        if let Some(id) = token.filter(|&t| t as usize >= self.cfg.n_vocab) {
            return Err(EngineError::BadToken {
                id,
                n_vocab: self.cfg.n_vocab,
            });
        }
        self.suppressed = token;
        Ok(())
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<(), EngineError> {
        if tokens.is_empty() {
            return Err(EngineError::InvalidArgument("no tokens to evaluate".into()));
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= self.cfg.n_vocab) {
            return Err(EngineError::BadToken {
                id,
                n_vocab: self.cfg.n_vocab,
            });
        }
        let extra = usize::from(self.pending);
        if tokens.len() + extra > self.room() {
            return Err(EngineError::ContextOverflow {
                requested: tokens.len() + extra,
                room: self.room(),
                n_ctx: self.opts.n_ctx,
            });
        }
        Ok(())
    }

    /// Appends tokens to the penalty ring on the CPU side (prompt tokens).
    fn push_recent(&mut self, tokens: &[u32]) {
        let w = self.opts.penalty_window;
        if w == 0 {
            return;
        }
        // Only the last `w` tokens can still be in the window.
        let skip = tokens.len().saturating_sub(w);
        self.n_seen += skip as u64;
        for &t in &tokens[skip..] {
            let slot = self.n_seen % w as u64;
            self.ctx
                .queue()
                .write_buffer(&self.recent, slot * 4, bytemuck::bytes_of(&t));
            self.ring[slot as usize] = t;
            self.n_seen += 1;
        }
    }

    fn step_params(&self, pos0: usize, n_tokens: usize) -> StepParams {
        self.step_params_with(pos0, n_tokens, self.n_draws, self.n_seen)
    }

    /// The step uniform with the sampler counters given (those of a draw
    /// not yet read back, for a step submitted ahead).
    fn step_params_with(&self, pos0: usize, n_tokens: usize, draws: u32, seen: u64) -> StepParams {
        let mut st = StepParams::default();
        let max_splits = if n_tokens == 1 {
            // Decode: as many splits as the context has `attn_split_keys` blocks.
            (pos0 + 1)
                .div_ceil(self.opts.attn_split_keys)
                .clamp(1, attn_splits(1))
        } else {
            attn_splits(n_tokens)
        };
        attention::fill_step(&mut st, pos0 as u32, n_tokens as u32, max_splits as u32);
        let w = self.opts.penalty_window as u64;
        st.rng_step = draws;
        st.suppress = self.suppressed.map_or(0, |t| t + 1);
        st.n_recent = seen.min(w) as u32;
        st.recent_head = if w == 0 { 0 } else { (seen % w) as u32 };
        st
    }

    /// Points every matrix-matrix product at a batch of `n` tokens (the all-rows output head
    /// only with `Head::All`, whose batches hold at most `LOGITS_ROWS` tokens).
    fn prepare_batch(&mut self, n: u32, head: Head) -> Result<(), EngineError> {
        let ctx = &self.ctx;
        self.embed.prepare(ctx, n)?;
        if let (Some(q), true) = (&mut self.x8, n > 1) {
            for op in [&mut q.normed, &mut q.attn, &mut q.gate] {
                op.set_n_tokens(ctx, n)?;
            }
        }
        for l in &mut self.layers {
            l.o.prepare(ctx, n)?;
            l.down.prepare(ctx, n)?;
            if n > 1 {
                for b in l.qkv_batch.iter_mut().chain(l.ffn_batch.iter_mut()) {
                    b.prepare(ctx, n)?;
                }
            }
        }
        match (head, &mut self.output) {
            (Head::All, Some(output)) => output.prepare(ctx, n)?,
            (Head::All, None) => {
                return Err(EngineError::InvalidArgument(
                    "the all-rows output head is not built".into(),
                ))
            }
            (Head::LastAndSample, _) if n > 1 => {
                let last_row = (n - 1) * self.cfg.n_embd as u32;
                self.output_prompt.set_x_offset(ctx, last_row)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Records the forward pass of `n` tokens (ids already in `ids`) at `pos0`.
    /// Returns the number of dispatches recorded.
    fn encode_forward(
        &self,
        enc: &mut wgpu::CommandEncoder,
        st: &StepParams,
        head: Head,
        mut prof: Option<&mut Profiler>,
    ) -> u64 {
        let n = st.n_tokens;
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("forward"),
            timestamp_writes: None,
        });
        // With a profiler, a timestamp after each operation (its GPU time is the difference).
        let mut mark = |pass: &mut wgpu::ComputePass<'_>, op: &'static str| {
            if let Some(p) = prof.as_deref_mut() {
                p.mark(pass, op);
            }
        };
        mark(&mut pass, "start");
        // Norms, rope, SwiGLU, sampling: one dispatch each; attention: two;
        // the matrix products report theirs (one per buffer of a split matrix).
        // Quantizes an input for the integer mat-muls that read it (when any does; the profile
        // then times it as `x8`).
        let quantize = |pass: &mut wgpu::ComputePass<'_>,
                        pick: fn(&Quantizers) -> &QuantizeX,
                        needed: bool| {
            match &self.x8 {
                Some(q) if needed => {
                    pick(q).encode(pass);
                    true
                }
                _ => false,
            }
        };
        let mut dispatches = self.embed.encode(&mut pass);
        mark(&mut pass, "embed");
        for l in &self.layers {
            let rope_fused = n == 1 && self.opts.fuse_rope;
            if n == 1 {
                for mv in &l.qkv {
                    mv.encode(&mut pass);
                    dispatches += mv.dispatch_count();
                }
                mark(
                    &mut pass,
                    if rope_fused {
                        "norm+qkv+rope+kv"
                    } else {
                        "norm+qkv"
                    },
                );
            } else {
                l.attn_norm.encode(&mut pass, n);
                dispatches += 1;
                mark(&mut pass, "attn_norm");
                let int8 = l.qkv_batch.iter().any(Batch::int8);
                if quantize(&mut pass, |q| &q.normed, int8) {
                    dispatches += 1;
                    mark(&mut pass, "x8");
                }
                for b in &l.qkv_batch {
                    dispatches += b.encode(&mut pass);
                }
                mark(&mut pass, "qkv");
            }
            if !rope_fused {
                l.rope.encode(&mut pass, n);
                dispatches += 1;
                mark(&mut pass, "rope+kv");
            }
            dispatches += l.attention.encode(&mut pass, st);
            mark(&mut pass, "attention");
            if quantize(&mut pass, |q| &q.attn, n > 1 && l.o.int8()) {
                dispatches += 1;
                mark(&mut pass, "x8");
            }
            dispatches += l.o.encode(&mut pass, n);
            mark(&mut pass, "o");
            if n == 1 {
                for mv in &l.ffn_in {
                    mv.encode(&mut pass);
                    dispatches += mv.dispatch_count();
                }
                mark(&mut pass, "norm+gate_up");
            } else {
                l.ffn_norm.encode(&mut pass, n);
                dispatches += 1;
                mark(&mut pass, "ffn_norm");
                let int8 = l.ffn_batch.iter().any(Batch::int8);
                if quantize(&mut pass, |q| &q.normed, int8) {
                    dispatches += 1;
                    mark(&mut pass, "x8");
                }
                for b in &l.ffn_batch {
                    dispatches += b.encode(&mut pass);
                }
                mark(&mut pass, "gate_up");
            }
            if n > 1 || !l.ffn_fused {
                l.swiglu.encode(&mut pass, n);
                dispatches += 1;
                mark(&mut pass, "swiglu");
            }
            if quantize(&mut pass, |q| &q.gate, n > 1 && l.down.int8()) {
                dispatches += 1;
                mark(&mut pass, "x8");
            }
            dispatches += l.down.encode(&mut pass, n);
            mark(&mut pass, "down");
        }
        match head {
            Head::All if n == 1 => {
                self.output_fused.encode(&mut pass);
                dispatches += self.output_fused.dispatch_count();
            }
            Head::All => {
                // `run` builds the head before a batch asks for it.
                if let Some(output) = &self.output {
                    self.out_norm_all.encode(&mut pass, n);
                    dispatches += 1 + u64::from(quantize(&mut pass, |q| &q.normed, output.int8()));
                    dispatches += output.encode(&mut pass, n);
                }
            }
            Head::LastAndSample => {
                let op = if n == 1 {
                    &self.output_fused
                } else {
                    &self.output_prompt
                };
                op.encode(&mut pass);
                dispatches += op.dispatch_count();
                mark(&mut pass, "output");
                self.sample.encode(&mut pass, 1);
                dispatches += 1;
                mark(&mut pass, "sample");
            }
            Head::None => {}
        }
        if head == Head::All {
            mark(&mut pass, "output");
        }
        drop(pass);
        dispatches
    }

    /// Runs `tokens` through the model in batches of at most `max_batch`,
    /// recording one submit per batch; the last batch gets `last_head`. With
    /// `LastAndSample` it returns where the sampled id lands.
    async fn run(
        &mut self,
        tokens: &[u32],
        last_head: Head,
        mut prof: Option<&mut Profiler>,
    ) -> Result<(Vec<f32>, Option<Draw>), EngineError> {
        // A step submitted ahead is void: these tokens replace its input, and
        // their ring pushes overwrite the slot it wrote.
        self.ahead = None;
        if last_head == Head::All && self.output.is_none() {
            // All logits rows of a batch: `logits` evaluates at most LOGITS_ROWS tokens per submit.
            let rows = self.opts.max_batch.min(LOGITS_ROWS) as u32;
            self.output = Some(
                Linear::new(
                    &self.ctx,
                    &self.weights.output,
                    &self.s.normed,
                    self.s.x8(self.opts.max_batch),
                    &self.s.logits,
                    rows,
                    false,
                    &self.opts,
                )
                .await?,
            );
        }
        let mut all_logits = Vec::new();
        let mut draw = None;
        // Every logits row is read back: at most LOGITS_ROWS of them per submit.
        let batch = if last_head == Head::All {
            self.opts.max_batch.min(LOGITS_ROWS)
        } else {
            self.opts.max_batch
        };
        let chunks: Vec<&[u32]> = tokens.chunks(batch).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            let head = if last_head == Head::All {
                Head::All
            } else if last {
                last_head
            } else {
                Head::None
            };
            self.push_recent(chunk);
            self.prepare_batch(chunk.len() as u32, head)?;
            let st = self.step_params(self.n_past, chunk.len());
            let q = self.ctx.queue();
            q.write_buffer(&self.s.ids, 0, bytemuck::cast_slice(chunk));
            q.write_buffer(&self.s.step, 0, bytemuck::bytes_of(&st));
            let mut enc =
                self.ctx
                    .device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("prefill"),
                    });
            self.stats.dispatches += self.encode_forward(&mut enc, &st, head, prof.as_deref_mut());
            if let Some(p) = prof.as_deref() {
                p.resolve(&mut enc);
            }
            let logits_bytes = (chunk.len() * self.cfg.n_vocab * 4) as u64;
            let read = if head == Head::All {
                let rb = self.ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some("logits readback"),
                    size: logits_bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                enc.copy_buffer_to_buffer(&self.s.logits, 0, &rb, 0, logits_bytes);
                Some(rb)
            } else {
                None
            };
            if head == Head::LastAndSample {
                enc.copy_buffer_to_buffer(&self.s.ids, 0, &self.s.token_read[0], 0, 4);
            }
            let submission = self.ctx.queue().submit([enc.finish()]);
            self.stats.submits += 1;
            self.n_past += chunk.len();
            if head == Head::LastAndSample {
                draw = Some(Draw {
                    slot: 0,
                    submission: submission.clone(),
                });
            }
            if let Some(p) = prof.as_deref_mut() {
                p.collect(&self.ctx).await?;
            }
            if let Some(rb) = read {
                let bytes = read_buffer(&self.ctx, &rb).await?;
                self.stats.readback_bytes += bytes.len() as u64;
                all_logits.extend_from_slice(bytemuck::cast_slice::<u8, f32>(&bytes));
            }
        }
        // Decode steps look up one id: without this they would embed as many rows as the
        // last batch had (harmless, but 512 rows cost a decode step ~25 µs on an H100).
        self.embed.prepare(&self.ctx, 1)?;
        Ok((all_logits, draw))
    }

    /// Evaluates `tokens` after what is already in the cache and returns the
    /// logits of every one of them, `(tokens.len(), n_vocab)` row-major. For
    /// tests and `ahma logits`: generation never reads logits back.
    pub async fn logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>, EngineError> {
        self.check_tokens(tokens)?;
        if self.pending {
            return Err(EngineError::InvalidArgument(
                "a sampled token is pending: call decode() or reset() before evaluating more tokens".into(),
            ));
        }
        Ok(self.run(tokens, Head::All, None).await?.0)
    }

    /// Evaluates the prompt `tokens` and samples the first new token (one
    /// 4-byte readback). The token is not yet in the cache: the next
    /// [`Model::decode`] feeds it.
    pub async fn prefill(&mut self, tokens: &[u32]) -> Result<u32, EngineError> {
        self.prefill_with(tokens, None).await
    }

    /// [`Model::prefill`] with a timestamp after each operation of each batch (each batch
    /// waits for the one before; the next [`Model::decode`] is not submitted ahead).
    pub async fn profile_prefill(
        &mut self,
        tokens: &[u32],
        prof: &mut Profiler,
    ) -> Result<u32, EngineError> {
        self.prefill_with(tokens, Some(prof)).await
    }

    async fn prefill_with(
        &mut self,
        tokens: &[u32],
        prof: Option<&mut Profiler>,
    ) -> Result<u32, EngineError> {
        self.check_tokens(tokens)?;
        if self.pending {
            return Err(EngineError::InvalidArgument(
                "a sampled token is pending: call decode() or reset() before prefilling again"
                    .into(),
            ));
        }
        let profiled = prof.is_some();
        let (_, draw) = self.run(tokens, Head::LastAndSample, prof).await?;
        let draw =
            draw.ok_or_else(|| EngineError::InvalidArgument("no tokens to evaluate".into()))?;
        if !profiled {
            self.submit_ahead(draw.slot);
        }
        self.finish_draw(draw).await
    }

    /// A decode step needs a sampled token to feed and room in the cache for it.
    fn check_decodable(&self) -> Result<(), EngineError> {
        if !self.pending {
            return Err(EngineError::InvalidArgument(
                "decode() needs a sampled token: call prefill() first".into(),
            ));
        }
        if self.room() == 0 {
            return Err(EngineError::ContextOverflow {
                requested: 1,
                room: 0,
                n_ctx: self.opts.n_ctx,
            });
        }
        Ok(())
    }

    /// Feeds the last sampled token and samples the next one: one submit, one
    /// 4-byte readback. With [`LoadOptions::pipeline_decode`] the step was
    /// usually submitted already (by the previous call, while its own id was
    /// on its way back), and this call submits the one after it before
    /// waiting for its id.
    pub async fn decode(&mut self) -> Result<u32, EngineError> {
        self.check_decodable()?;
        let t0 = self.clock.map(|c| c());
        let st = self.step_params(self.n_past, 1);
        let draw = match self.ahead.take() {
            Some(a) if a.st == st && a.epoch == self.epoch => {
                self.stats.dispatches += a.dispatches;
                a.draw
            }
            stale => {
                if let Some(a) = stale {
                    self.undo_ahead(&a);
                }
                let (submission, dispatches) = self.submit_step(&st, 0, None);
                self.stats.dispatches += dispatches;
                Draw {
                    slot: 0,
                    submission,
                }
            }
        };
        self.stats.submits += 1;
        self.n_past += 1;
        self.submit_ahead(draw.slot);
        if let (Some(c), Some(t0)) = (self.clock, t0) {
            self.stats.record_ns += ((c() - t0).max(0.0) * 1e9) as u64;
        }
        self.finish_draw(draw).await
    }

    /// [`Model::decode`] with a timestamp after each operation: the step is submitted alone
    /// (a step already submitted ahead is undone) and none is submitted after it. Not counted
    /// in [`Model::stats`].
    pub async fn profile_decode(&mut self, prof: &mut Profiler) -> Result<u32, EngineError> {
        self.check_decodable()?;
        if let Some(a) = self.ahead.take() {
            // Its inputs were right, but it wrote no timestamps: redo it with them.
            self.undo_ahead(&a);
        }
        let st = self.step_params(self.n_past, 1);
        let (submission, _) = self.submit_step(&st, 0, Some(prof));
        self.n_past += 1;
        let id = self
            .finish_draw(Draw {
                slot: 0,
                submission,
            })
            .await?;
        prof.collect(&self.ctx).await?;
        Ok(id)
    }

    /// Records and submits one decode step (input `ids[0]`, uniform `st`),
    /// copying its sampled id into `token_read[slot]`.
    fn submit_step(
        &self,
        st: &StepParams,
        slot: usize,
        mut prof: Option<&mut Profiler>,
    ) -> (wgpu::SubmissionIndex, u64) {
        self.ctx
            .queue()
            .write_buffer(&self.s.step, 0, bytemuck::bytes_of(st));
        let mut enc = self
            .ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("decode"),
            });
        let dispatches =
            self.encode_forward(&mut enc, st, Head::LastAndSample, prof.as_deref_mut());
        enc.copy_buffer_to_buffer(&self.s.ids, 0, &self.s.token_read[slot], 0, 4);
        if let Some(p) = prof {
            p.resolve(&mut enc);
        }
        (self.ctx.queue().submit([enc.finish()]), dispatches)
    }

    /// Submits the step after the one whose id is on its way into
    /// `token_read[busy_slot]`: its input (that id) is already on the GPU,
    /// and its counters are those the pending draw will leave.
    fn submit_ahead(&mut self, busy_slot: usize) {
        if !self.opts.pipeline_decode || self.n_past >= self.opts.n_ctx {
            return;
        }
        let seen = self.n_seen + u64::from(self.opts.penalty_window > 0);
        let st = self.step_params_with(self.n_past, 1, self.n_draws.wrapping_add(1), seen);
        let slot = 1 - busy_slot;
        let (submission, dispatches) = self.submit_step(&st, slot, None);
        self.ahead = Some(Ahead {
            st,
            epoch: self.epoch,
            draw: Draw { slot, submission },
            dispatches,
        });
    }

    /// Puts back what a step submitted ahead changed on the GPU before the
    /// step is redone with other inputs: `ids[0]` (its input, overwritten
    /// with its draw) and the penalty-ring slot its draw was pushed into.
    fn undo_ahead(&self, a: &Ahead) {
        let q = self.ctx.queue();
        q.write_buffer(&self.s.ids, 0, bytemuck::bytes_of(&self.last_id));
        if let Some(&old) = self.ring.get(a.st.recent_head as usize) {
            q.write_buffer(
                &self.recent,
                a.st.recent_head as u64 * 4,
                bytemuck::bytes_of(&old),
            );
        }
    }

    /// Reads the sampled id back and advances the sampler state (the GPU has
    /// already pushed the id into the penalty ring).
    async fn finish_draw(&mut self, draw: Draw) -> Result<u32, EngineError> {
        let bytes = read_buffer_after(
            &self.ctx,
            &self.s.token_read[draw.slot],
            Some(draw.submission),
        )
        .await?;
        self.stats.readback_bytes += bytes.len() as u64;
        let id = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        self.n_draws = self.n_draws.wrapping_add(1);
        let w = self.opts.penalty_window as u64;
        if w > 0 {
            self.ring[(self.n_seen % w) as usize] = id;
            self.n_seen += 1;
        }
        self.pending = true;
        self.last_id = id;
        if id as usize >= self.cfg.n_vocab {
            return Err(EngineError::DeviceLost(format!(
                "sampler returned token id {id} outside the vocabulary"
            )));
        }
        Ok(id)
    }

    /// Drops a sampled-but-not-fed token (for example an end-of-sequence id),
    /// so the next call may be [`Model::prefill`] or [`Model::logits`].
    pub fn discard_pending(&mut self) {
        self.pending = false;
        self.ahead = None;
    }
}

pub(crate) fn sample_params(p: &SamplingParams, n_vocab: usize, window: usize) -> SampleParams {
    SampleParams {
        n_vocab: n_vocab as u32,
        top_k: p.top_k,
        top_p: p.top_p,
        temperature: p.temperature,
        penalty: p.repeat_penalty,
        seed_lo: p.seed as u32,
        seed_hi: (p.seed >> 32) as u32,
        window: window as u32,
    }
}
