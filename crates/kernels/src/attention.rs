//! Causal attention over the KV cache, split-KV / flash-decoding style
//! (`shaders/attention.wgsl`): a `split` pass writes per-split partial
//! softmax results, a `reduce` pass merges them (a single split writes the
//! output itself). The same dispatches serve decode (one token) and prefill
//! (a batch of tokens).

use std::sync::Arc;

use crate::step::{bind_group, key, pipeline, uniform, StepParams};
use crate::{GpuContext, KernelError, KernelKey};

/// Workgroup size: four invocations per key of a block.
pub const WG: u32 = 256;
/// Keys per block (`CHUNK` in the shader): the engine's split arithmetic must use the same.
pub const CHUNK: u32 = 64;
/// Largest head_dim the shader supports (two pairs for each of 64 invocations).
pub const MAX_HEAD_DIM: u32 = 256;

/// Mirror of `Params` in `shaders/attention.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionParams {
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
    /// `1 / sqrt(head_dim)`.
    pub scale: f32,
}

pub fn kernel_key(entry: &'static str, kv_f16: bool, subgroups: bool) -> KernelKey {
    let mut d = vec![("WG", WG.to_string())];
    if kv_f16 {
        d.push(("F16", "1".into()));
    }
    if subgroups && entry == "split" {
        d.push(("SUBGROUPS", "1".into()));
    }
    key("attention", entry, &d)
}

pub fn params_layouts() -> Vec<crate::ParamsLayout> {
    vec![crate::params_layout!(AttentionParams {
        n_head,
        n_head_kv,
        head_dim,
        scale
    })]
}

pub fn variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    for f16 in [false, true] {
        for sg in [false, true] {
            v.push(kernel_key("split", f16, sg));
        }
        v.push(kernel_key("reduce", f16, false));
    }
    v
}

/// `(n_splits, chunks_per_split)` for rows whose longest key range is `kv_len`:
/// at most `max_splits` splits of whole `CHUNK` blocks, none of them empty.
pub fn splits(kv_len: u32, max_splits: u32) -> (u32, u32) {
    let chunks = kv_len.div_ceil(CHUNK).max(1);
    let per_split = chunks.div_ceil(max_splits.max(1));
    (chunks.div_ceil(per_split), per_split)
}

/// Fills the attention fields of a step for a batch of `n_tokens` at `pos0`.
pub fn fill_step(step: &mut StepParams, pos0: u32, n_tokens: u32, max_splits: u32) {
    let (n, per) = splits(pos0 + n_tokens, max_splits);
    step.pos0 = pos0;
    step.n_tokens = n_tokens;
    step.n_splits = n;
    step.chunks_per_split = per;
}

/// Buffers the attention passes bind.
pub struct AttentionBuffers<'a> {
    pub step: &'a wgpu::Buffer,
    /// `(n_tokens, n_head * head_dim)` f32, already roped.
    pub q: &'a wgpu::Buffer,
    /// `(n_ctx, n_head_kv * head_dim)` cache.
    pub k_cache: &'a wgpu::Buffer,
    pub v_cache: &'a wgpu::Buffer,
    /// `(max_tokens, n_head, max_splits, head_dim)` f32.
    pub partial_o: &'a wgpu::Buffer,
    /// `(max_tokens, n_head, max_splits, 2)` f32.
    pub partial_ml: &'a wgpu::Buffer,
    /// `(n_tokens, n_head * head_dim)` f32.
    pub out: &'a wgpu::Buffer,
}

/// A compute pipeline with its bind group.
type Pass = (Arc<wgpu::ComputePipeline>, wgpu::BindGroup);

/// The dispatches an [`Attention`] records: the split passes, or (`new_with`'s `rows`) the
/// CPU adapters' batch pass with one invocation per (token, head) and decode pass with 8
/// lanes per head. Only the pipelines of one set are compiled.
enum Passes {
    Split { split: Pass, reduce: Pass },
    Rows { batch: Pass, decode: Pass },
}

pub struct Attention {
    passes: Passes,
    n_head: u32,
    _params: wgpu::Buffer,
}

impl Attention {
    pub async fn new(
        ctx: &GpuContext,
        b: &AttentionBuffers<'_>,
        params: AttentionParams,
    ) -> Result<Self, KernelError> {
        Attention::new_with(ctx, b, params, false).await
    }

    /// [`Attention::new`], and with `rows` the passes laid out for CPU adapters
    /// (`shaders/attention_rows.wgsl`, one dispatch each): a batch of several tokens gives each
    /// invocation one (token, head), which walks its keys alone; a single token (decode) gives
    /// each head 8 lanes, each walking every 8th key, merged after one barrier.
    pub async fn new_with(
        ctx: &GpuContext,
        b: &AttentionBuffers<'_>,
        params: AttentionParams,
        rows: bool,
    ) -> Result<Self, KernelError> {
        if !params.head_dim.is_multiple_of(2) || params.head_dim > MAX_HEAD_DIM {
            return Err(KernelError::InvalidArgument(format!(
                "attention head_dim {} must be even and at most {MAX_HEAD_DIM}",
                params.head_dim
            )));
        }
        if params.n_head_kv == 0 || !params.n_head.is_multiple_of(params.n_head_kv) {
            return Err(KernelError::InvalidArgument(format!(
                "attention n_head {} is not a multiple of n_head_kv {}",
                params.n_head, params.n_head_kv
            )));
        }
        let f16 = ctx.use_f16();
        let pbuf = uniform(ctx, "attention params", &params)?;
        // Bindings 5 and 6 (the partial results) only where the entry point uses them.
        let make = |pl: Arc<wgpu::ComputePipeline>, label: &str, partial: bool, full: bool| {
            let bg = bind_group(
                ctx,
                label,
                &pl,
                &[
                    Some(b.step),
                    Some(&pbuf),
                    full.then_some(b.q),
                    full.then_some(b.k_cache),
                    full.then_some(b.v_cache),
                    partial.then_some(b.partial_o),
                    partial.then_some(b.partial_ml),
                    Some(b.out),
                ],
            );
            (pl, bg)
        };
        let passes = if rows {
            let sg = crate::matmul_rows::subgroup_width(ctx);
            let kb = crate::attention_rows::key(params.head_dim, f16, sg);
            let kd = crate::attention_rows::decode_key(params.head_dim, f16);
            Passes::Rows {
                batch: make(pipeline(ctx, &kb).await?, &kb.to_string(), false, true),
                decode: make(pipeline(ctx, &kd).await?, &kd.to_string(), false, true),
            }
        } else {
            let split = pipeline(ctx, &kernel_key("split", f16, ctx.use_subgroups())).await?;
            let reduce = pipeline(ctx, &kernel_key("reduce", f16, false)).await?;
            Passes::Split {
                split: make(split, "attention split", true, true),
                reduce: make(reduce, "attention reduce", true, false),
            }
        };
        Ok(Attention {
            passes,
            n_head: params.n_head,
            _params: pbuf,
        })
    }

    /// Records the passes (the reduce only with several splits; the CPU layout one dispatch);
    /// `step` must be the values written to the step uniform for this submit (see
    /// [`fill_step`]). Returns the number of dispatches.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, step: &StepParams) -> u64 {
        let (split, reduce) = match &self.passes {
            Passes::Rows { batch, decode } => {
                if step.n_tokens > 1 {
                    pass.set_pipeline(&batch.0);
                    pass.set_bind_group(0, &batch.1, &[]);
                    pass.dispatch_workgroups(
                        step.n_tokens.div_ceil(crate::attention_rows::WG),
                        self.n_head,
                        1,
                    );
                } else {
                    pass.set_pipeline(&decode.0);
                    pass.set_bind_group(0, &decode.1, &[]);
                    pass.dispatch_workgroups(self.n_head, 1, 1);
                }
                return 1;
            }
            Passes::Split { split, reduce } => (split, reduce),
        };
        pass.set_pipeline(&split.0);
        pass.set_bind_group(0, &split.1, &[]);
        pass.dispatch_workgroups(step.n_splits, self.n_head, step.n_tokens);
        if step.n_splits == 1 {
            return 1;
        }
        pass.set_pipeline(&reduce.0);
        pass.set_bind_group(0, &reduce.1, &[]);
        pass.dispatch_workgroups(self.n_head, step.n_tokens, 1);
        2
    }
}
