//! The per-submit uniform shared by the position-dependent kernels
//! (`shaders/step.wgsl`), plus small helpers for building their pipelines.
//!
//! Why one shared uniform: every other parameter of a forward pass is static,
//! so the engine builds all bind groups once at load time and writes just
//! these 32 bytes before each queue submit.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{GpuContext, KernelError, KernelKey};

/// Mirror of `struct StepParams` in `shaders/step.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepParams {
    /// Tokens in this batch.
    pub n_tokens: u32,
    /// Position of the batch's first token.
    pub pos0: u32,
    /// Attention: CHUNK-sized key blocks per split.
    pub chunks_per_split: u32,
    /// Attention: number of splits of the longest row of the batch.
    pub n_splits: u32,
    /// Sampler: RNG stream index of draw 0.
    pub rng_step: u32,
    /// Sampler: valid entries of the recent-token ring.
    pub n_recent: u32,
    /// Sampler: ring slot the sampled token is written to.
    pub recent_head: u32,
    /// Sampler: 1 + the id of a token whose logit is -inf for this draw
    /// (0 = none): an end-of-sequence id before the minimum length.
    pub suppress: u32,
}

/// A `KernelKey` from a shader stem, an entry point and `(name, value)` defines.
pub(crate) fn key(
    shader: &'static str,
    entry: &'static str,
    defines: &[(&str, String)],
) -> KernelKey {
    let defines: BTreeMap<String, String> = defines
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    KernelKey {
        shader,
        entry,
        defines,
    }
}

/// A uniform buffer holding `value`.
pub(crate) fn uniform<T: bytemuck::Pod>(
    ctx: &GpuContext,
    label: &str,
    value: &T,
) -> Result<wgpu::Buffer, KernelError> {
    ctx.uniform_buffer(label, value)
}

/// A bind group for group 0 of `pipeline` with `buffers[i]` at binding `i`.
/// Bindings the entry point does not use must be passed as `None` (the
/// pipeline's derived layout omits them).
pub(crate) fn bind_group(
    ctx: &GpuContext,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    buffers: &[Option<&wgpu::Buffer>],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            b.map(|b| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
        })
        .collect();
    ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}

/// The pipeline of `key`, from the context's cache.
pub(crate) async fn pipeline(
    ctx: &GpuContext,
    key: &KernelKey,
) -> Result<Arc<wgpu::ComputePipeline>, KernelError> {
    ctx.pipeline(key).await
}

/// The `step` fragment declares no op of its own; its struct is checked here.
pub fn params_layouts() -> Vec<crate::ParamsLayout> {
    vec![crate::params_layout!(StepParams {
        n_tokens,
        pos0,
        chunks_per_split,
        n_splits,
        rng_step,
        n_recent,
        recent_head,
        suppress
    })]
}

/// The `step` fragment has no variants of its own.
pub fn variants() -> Vec<KernelKey> {
    Vec::new()
}
