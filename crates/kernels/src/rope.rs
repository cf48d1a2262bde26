//! RoPE (llama.cpp NORMAL mode) fused with the KV-cache store
//! (`shaders/rope.wgsl`): q rotates in place; rotated k and plain v land in
//! the caches at positions `pos0..pos0 + n_tokens`.

use std::sync::Arc;

use crate::step::{bind_group, key, pipeline, uniform};
use crate::{GpuContext, KernelError, KernelKey};

pub const WG: u32 = 64;

/// Mirror of `Params` in `shaders/rope.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RopeParams {
    pub n_head: u32,
    pub n_head_kv: u32,
    pub head_dim: u32,
    pub rope_dim: u32,
}

pub fn kernel_key(kv_f16: bool) -> KernelKey {
    let mut d = vec![("WG", WG.to_string())];
    if kv_f16 {
        d.push(("F16", "1".into()));
    }
    key("rope", "main", &d)
}

pub fn params_layouts() -> Vec<crate::ParamsLayout> {
    vec![crate::params_layout!(RopeParams {
        n_head,
        n_head_kv,
        head_dim,
        rope_dim
    })]
}

pub fn variants() -> Vec<KernelKey> {
    vec![kernel_key(false), kernel_key(true)]
}

/// The `(cos, sin)` table the kernel reads: row `pos` holds the pairs for
/// `theta_i = pos * base^(-2i / rope_dim)`, `i < rope_dim / 2`, computed in f64
/// so that the GPU's sin/cos accuracy at large angles does not matter.
pub fn cos_sin_table(n_ctx: usize, rope_dim: usize, base: f32) -> Vec<f32> {
    let half = rope_dim / 2;
    let mut t = Vec::with_capacity(n_ctx * rope_dim);
    for pos in 0..n_ctx {
        for i in 0..half {
            let freq = (base as f64).powf(-2.0 * i as f64 / rope_dim as f64);
            let theta = pos as f64 * freq;
            t.push(theta.cos() as f32);
            t.push(theta.sin() as f32);
        }
    }
    t
}

/// Bytes per cache element.
pub fn kv_elem_bytes(kv_f16: bool) -> u64 {
    if kv_f16 {
        2
    } else {
        4
    }
}

/// Buffers the rope kernel binds.
pub struct RopeBuffers<'a> {
    pub step: &'a wgpu::Buffer,
    /// `(n_tokens, n_head * head_dim)` f32, rotated in place.
    pub q: &'a wgpu::Buffer,
    /// `(n_tokens, n_head_kv * head_dim)` f32.
    pub k: &'a wgpu::Buffer,
    /// `(n_tokens, n_head_kv * head_dim)` f32.
    pub v: &'a wgpu::Buffer,
    /// `(n_ctx, n_head_kv * head_dim)` f16 or f32.
    pub k_cache: &'a wgpu::Buffer,
    /// `(n_ctx, n_head_kv * head_dim)` f16 or f32.
    pub v_cache: &'a wgpu::Buffer,
    /// `(n_ctx, rope_dim / 2)` pairs of f32 from [`cos_sin_table`].
    pub cos_sin: &'a wgpu::Buffer,
}

pub struct Rope {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    pairs_per_token: u32,
    _params: wgpu::Buffer,
}

impl Rope {
    /// Uses the f16 cache layout when `ctx.use_f16()`.
    pub async fn new(
        ctx: &GpuContext,
        b: &RopeBuffers<'_>,
        params: RopeParams,
    ) -> Result<Self, KernelError> {
        let pipeline = pipeline(ctx, &kernel_key(ctx.use_f16())).await?;
        let pbuf = uniform(ctx, "rope params", &params)?;
        let bind_group = bind_group(
            ctx,
            "rope",
            &pipeline,
            &[
                Some(b.step),
                Some(&pbuf),
                Some(b.q),
                Some(b.k),
                Some(b.v),
                Some(b.k_cache),
                Some(b.v_cache),
                Some(b.cos_sin),
            ],
        );
        let pairs_per_token = (params.n_head + params.n_head_kv) * params.head_dim / 2;
        Ok(Rope {
            pipeline,
            bind_group,
            pairs_per_token,
            _params: pbuf,
        })
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.pairs_per_token.div_ceil(WG), n_tokens, 1);
    }
}
