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

/// The variant for the context: subgroups when available, `last_row` for the
/// output head (normalize only the batch's last token into row 0).
pub fn kernel_key(subgroups: bool, last_row: bool) -> KernelKey {
    let mut d = vec![("WG", WG.to_string())];
    if subgroups {
        d.push(("SUBGROUPS", "1".into()));
    }
    if last_row {
        d.push(("LAST_ROW", "1".into()));
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
    let mut v = Vec::new();
    for sg in [false, true] {
        for last in [false, true] {
            v.push(kernel_key(sg, last));
        }
    }
    v
}

/// A prebuilt `y = rmsnorm(x) * w` over fixed buffers.
pub struct RmsNorm {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    last_row: bool,
    _params: wgpu::Buffer,
}

impl RmsNorm {
    /// `x` and `y` hold `(n_tokens, n_embd)` f32 (`y` one row with `last_row`),
    /// `w` holds `n_embd` f32; `step` is the shared [`crate::step::StepParams`] uniform.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        ctx: &GpuContext,
        step: &wgpu::Buffer,
        x: &wgpu::Buffer,
        w: &wgpu::Buffer,
        y: &wgpu::Buffer,
        n_embd: u32,
        eps: f32,
        last_row: bool,
    ) -> Result<Self, KernelError> {
        let pipeline = pipeline(ctx, &kernel_key(ctx.use_subgroups(), last_row)).await?;
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
        // Only the LAST_ROW variant reads the step uniform; the derived layout
        // of the other one has no binding 0.
        let step = if last_row { Some(step) } else { None };
        let bind_group = bind_group(
            ctx,
            "rms_norm",
            &pipeline,
            &[step, Some(&params), Some(x), Some(w), Some(y)],
        );
        Ok(RmsNorm {
            pipeline,
            bind_group,
            last_row,
            _params: params,
        })
    }

    /// Records the dispatch for a batch of `n_tokens` rows.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(if self.last_row { 1 } else { n_tokens }, 1, 1);
    }
}
