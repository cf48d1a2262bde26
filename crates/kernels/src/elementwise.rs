//! Residual add and SwiGLU (`shaders/elementwise.wgsl`), in place on f32 rows.

use std::sync::Arc;

use crate::step::{bind_group, key, pipeline, uniform};
use crate::{GpuContext, KernelError, KernelKey};

pub const WG: u32 = 256;

/// Mirror of `Params` in `shaders/elementwise.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ElementwiseParams {
    pub row_len: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// Which element-wise op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElementwiseOp {
    /// `a += b`.
    Add,
    /// `a = silu(a) * b`.
    SwiGlu,
}

impl ElementwiseOp {
    fn entry(self) -> &'static str {
        match self {
            ElementwiseOp::Add => "add",
            ElementwiseOp::SwiGlu => "swiglu",
        }
    }
}

pub fn kernel_key(op: ElementwiseOp) -> KernelKey {
    key("elementwise", op.entry(), &[("WG", WG.to_string())])
}

pub fn params_layouts() -> Vec<crate::ParamsLayout> {
    vec![crate::params_layout!(ElementwiseParams {
        row_len,
        _pad0,
        _pad1,
        _pad2
    })]
}

pub fn variants() -> Vec<KernelKey> {
    vec![
        kernel_key(ElementwiseOp::Add),
        kernel_key(ElementwiseOp::SwiGlu),
    ]
}

pub struct Elementwise {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    row_len: u32,
    _params: wgpu::Buffer,
}

impl Elementwise {
    /// `a` and `b` hold `(n_tokens, row_len)` f32; the result overwrites `a`.
    pub async fn new(
        ctx: &GpuContext,
        op: ElementwiseOp,
        step: &wgpu::Buffer,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        row_len: u32,
    ) -> Result<Self, KernelError> {
        let pipeline = pipeline(ctx, &kernel_key(op)).await?;
        let params = uniform(
            ctx,
            "elementwise params",
            &ElementwiseParams {
                row_len,
                ..Default::default()
            },
        )?;
        let bind_group = bind_group(
            ctx,
            op.entry(),
            &pipeline,
            &[Some(step), Some(&params), Some(a), Some(b)],
        );
        Ok(Elementwise {
            pipeline,
            bind_group,
            row_len,
            _params: params,
        })
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups((n_tokens * self.row_len).div_ceil(WG), 1, 1);
    }
}
