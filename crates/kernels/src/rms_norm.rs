//! RMSNorm fused with its weight (`shaders/rms_norm.wgsl`): one workgroup per
//! token row, f32 in and out.

use std::sync::Arc;

use crate::step::{bind_group, key, pipeline, uniform};
use crate::{GpuContext, KernelError, KernelKey};

/// Workgroup size: one row of Ahma-3B (3200) is 12.5 elements per invocation.
pub const WG: u32 = 256;

/// Mirror of `Params` in `shaders/rms_norm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RmsNormParams {
    pub n_embd: u32,
    pub eps: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// The variant for the context: subgroups when available.
pub fn kernel_key(subgroups: bool) -> KernelKey {
    let mut d = vec![("WG", WG.to_string())];
    if subgroups {
        d.push(("SUBGROUPS", "1".into()));
    }
    key("rms_norm", "main", &d)
}

/// Every variant, for the naga validation test.
pub fn params_layouts() -> Vec<crate::ParamsLayout> {
    vec![crate::params_layout!(RmsNormParams {
        n_embd,
        eps,
        _pad0,
        _pad1
    })]
}

pub fn variants() -> Vec<KernelKey> {
    vec![kernel_key(false), kernel_key(true)]
}

/// A prebuilt `y = rmsnorm(x) * w` over fixed buffers.
pub struct RmsNorm {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    _params: wgpu::Buffer,
}

impl RmsNorm {
    /// `x` and `y` hold `(n_tokens, n_embd)` f32, `w` holds `n_embd` f32.
    pub async fn new(
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        y: &wgpu::Buffer,
        n_embd: u32,
        eps: f32,
    ) -> Result<Self, KernelError> {
        let pipeline = pipeline(ctx, &kernel_key(ctx.use_subgroups())).await?;
        let params = uniform(
            ctx,
            "rms_norm params",
            &RmsNormParams {
                n_embd,
                eps,
                _pad0: 0,
                _pad1: 0,
            },
        )?;
        let bind_group = bind_group(
            ctx,
            "rms_norm",
            &pipeline,
            &[None, Some(&params), Some(x), Some(w), Some(y)],
        );
        Ok(RmsNorm {
            pipeline,
            bind_group,
            _params: params,
        })
    }

    /// Records the dispatch for a batch of `n_tokens` rows.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(n_tokens, 1, 1);
    }
}
