//! Token sampling on the GPU (`shaders/sample.wgsl`): repetition penalty,
//! greedy / temperature / top-k / top-p and a seeded PCG draw, writing the id
//! where the next step's embedding lookup reads it.

use std::sync::Arc;

use crate::step::{bind_group, key, pipeline, uniform};
use crate::{GpuContext, KernelError, KernelKey};

/// Invocations of the one workgroup per draw: [`WG_WIDE`] on a GPU that allows it (each scan
/// of the vocabulary is then a quarter as long), else [`WG`] (WebGPU's default limit, and
/// CPU adapters, where every invocation costs CPU time).
pub const WG: u32 = 256;
pub const WG_WIDE: u32 = 1024;

/// The workgroup size the sampler uses on `ctx`.
pub fn workgroup_size(ctx: &GpuContext) -> u32 {
    let c = ctx.caps();
    if ctx.adapter().device_type != wgpu::DeviceType::Cpu
        && c.max_compute_invocations_per_workgroup >= WG_WIDE
        && c.max_compute_workgroup_size_x >= WG_WIDE
        && c.max_compute_workgroup_storage_size >= 16 * 1024
    {
        WG_WIDE
    } else {
        WG
    }
}

/// Mirror of `Params` in `shaders/sample.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SampleParams {
    pub n_vocab: u32,
    /// 0 = off.
    pub top_k: u32,
    /// >= 1 = off.
    pub top_p: f32,
    /// <= 0 = greedy.
    pub temperature: f32,
    /// 1 = off.
    pub penalty: f32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    /// Capacity of the recent-token ring.
    pub window: u32,
}

pub fn kernel_key(wg: u32) -> KernelKey {
    key("sample", "main", &[("WG", wg.to_string())])
}

pub fn params_layouts() -> Vec<crate::ParamsLayout> {
    vec![crate::params_layout!(SampleParams {
        n_vocab,
        top_k,
        top_p,
        temperature,
        penalty,
        seed_lo,
        seed_hi,
        window
    })]
}

pub fn variants() -> Vec<KernelKey> {
    vec![kernel_key(WG), kernel_key(WG_WIDE)]
}

/// Buffers the sampler binds.
pub struct SampleBuffers<'a> {
    pub step: &'a wgpu::Buffer,
    /// `(n_vocab)` f32.
    pub logits: &'a wgpu::Buffer,
    /// `(max(window, 1))` u32 ring of recent ids.
    pub recent: &'a wgpu::Buffer,
    /// `(n_draws, n_vocab)` f32 scratch.
    pub work: &'a wgpu::Buffer,
    /// `(n_draws, n_vocab)` f32 scratch.
    pub prob: &'a wgpu::Buffer,
    /// `(n_draws)` u32 sampled ids.
    pub token_out: &'a wgpu::Buffer,
}

pub struct Sample {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    params: wgpu::Buffer,
}

impl Sample {
    pub async fn new(
        ctx: &GpuContext,
        b: &SampleBuffers<'_>,
        params: &SampleParams,
    ) -> Result<Self, KernelError> {
        Self::with_workgroup_size(ctx, b, params, workgroup_size(ctx)).await
    }

    /// [`Sample::new`] with `wg` invocations ([`WG`] or [`WG_WIDE`]; for tests of both).
    pub async fn with_workgroup_size(
        ctx: &GpuContext,
        b: &SampleBuffers<'_>,
        params: &SampleParams,
        wg: u32,
    ) -> Result<Self, KernelError> {
        if wg != WG && wg != WG_WIDE {
            return Err(KernelError::InvalidArgument(format!(
                "sampler workgroup size {wg} is neither {WG} nor {WG_WIDE}"
            )));
        }
        let pipeline = pipeline(ctx, &kernel_key(wg)).await?;
        let pbuf = uniform(ctx, "sample params", params)?;
        let bind_group = bind_group(
            ctx,
            "sample",
            &pipeline,
            &[
                Some(b.step),
                Some(&pbuf),
                Some(b.logits),
                Some(b.recent),
                Some(b.work),
                Some(b.prob),
                Some(b.token_out),
            ],
        );
        Ok(Sample {
            pipeline,
            bind_group,
            params: pbuf,
        })
    }

    /// Replaces the sampling parameters (takes effect at the next submit).
    pub fn set_params(&self, ctx: &GpuContext, params: &SampleParams) {
        ctx.queue()
            .write_buffer(&self.params, 0, bytemuck::bytes_of(params));
    }

    /// Records `n_draws` independent draws (RNG streams `rng_step + d`).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_draws: u32) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(n_draws, 1, 1);
    }
}
