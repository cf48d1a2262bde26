//! Decode-time matrix-vector product over a [`QuantMatrix`] (`shaders/matvec.wgsl`).

use std::sync::Arc;

use ahma_gguf::GgmlType;

use crate::context::GpuContext;
use crate::error::KernelError;
use crate::key::KernelKey;
use crate::quant_matrix::{type_define, QuantMatrix};
use crate::registry::ParamsLayout;

/// Uniform of one dispatch (one part of the matrix). Mirrors `MatVecParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatVecParams {
    pub n_in: u32,
    pub n_rows: u32,
    pub row_bytes: u32,
    pub x_offset: u32,
    pub y_offset: u32,
    pub groups_x: u32,
    pub up_rows: u32,
    pub _pad: u32,
}

/// Rows per workgroup (the `ROWS` define); x is loaded once per unit for this many rows.
pub const ROWS: u32 = 4;
/// Workgroup sizes the op can be built with.
pub const WORKGROUP_SIZES: [u32; 2] = [64, 256];

/// How to build a [`MatVec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatVecOptions {
    /// Add into y instead of overwriting it (fuses the residual add).
    pub accumulate: bool,
    /// Threads per workgroup, one of [`WORKGROUP_SIZES`]. 64 keeps most threads busy on Ahma's
    /// 3200-wide rows (100 units of 32); 256 suits rows of 8192 and more.
    pub workgroup_size: u32,
    /// First element of x to use.
    pub x_offset: u32,
    /// Element of y receiving row 0.
    pub y_offset: u32,
    /// Fused feed-forward gate: the matrix holds n_ff gate rows followed by n_ff up rows (one
    /// [`QuantMatrix`] of 2·n_ff rows, written by the loader at row offsets 0 and n_ff) and
    /// y[r] = silu(gate_r·x)·(up_r·x) for r < n_ff. Saves two dispatches per layer and the
    /// gate/up round trip through memory. The stacked matrix must fit one part; cannot be
    /// combined with `accumulate`.
    pub swiglu: bool,
}

impl Default for MatVecOptions {
    fn default() -> Self {
        MatVecOptions {
            accumulate: false,
            workgroup_size: 64,
            x_offset: 0,
            y_offset: 0,
            swiglu: false,
        }
    }
}

/// The key of one variant; `accumulate` and `swiglu` exclude each other.
pub fn key(ty: GgmlType, f16: bool, subgroups: bool, opts: &MatVecOptions) -> KernelKey {
    KernelKey::new("matvec", "main")
        .define(&type_define(ty), 1)
        .flag("F16", f16 && ty != GgmlType::F32)
        .flag("SUBGROUPS", subgroups)
        .flag("ACCUMULATE", opts.accumulate)
        .flag("SWIGLU", opts.swiglu)
        .define("WG", opts.workgroup_size)
}

/// Every variant the op can request.
pub fn variants() -> Vec<KernelKey> {
    let mut out = Vec::new();
    for ty in GgmlType::ALL {
        for f16 in [false, true] {
            if f16 && ty == GgmlType::F32 {
                continue;
            }
            for sg in [false, true] {
                for (accumulate, swiglu) in [(false, false), (true, false), (false, true)] {
                    for workgroup_size in WORKGROUP_SIZES {
                        let opts = MatVecOptions {
                            accumulate,
                            swiglu,
                            workgroup_size,
                            ..Default::default()
                        };
                        out.push(key(ty, f16, sg, &opts));
                    }
                }
            }
        }
    }
    out
}

pub fn params_layouts() -> Vec<ParamsLayout> {
    vec![crate::params_layout!(MatVecParams {
        n_in,
        n_rows,
        row_bytes,
        x_offset,
        y_offset,
        groups_x,
        up_rows,
        _pad
    })]
}

/// Splits `groups` workgroups into a 2D grid within the per-dimension limit.
pub(crate) fn grid(ctx: &GpuContext, groups: u32) -> (u32, u32) {
    let max = ctx.caps().max_compute_workgroups_per_dimension.max(1);
    let gx = groups.clamp(1, max);
    (gx, groups.div_ceil(gx))
}

pub(crate) struct Dispatch {
    pub pipeline: Arc<wgpu::ComputePipeline>,
    pub bind_group: wgpu::BindGroup,
    pub groups: (u32, u32),
    pub _uniform: wgpu::Buffer,
}

impl Dispatch {
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups.0, self.groups.1, 1);
    }
}

/// Checks that `buffer` holds at least `elems` f32 values.
pub(crate) fn check_len(buffer: &wgpu::Buffer, elems: u64, what: &str) -> Result<(), KernelError> {
    if buffer.size() < elems * 4 {
        return Err(KernelError::InvalidArgument(format!(
            "{what} holds {} bytes, needs {}",
            buffer.size(),
            elems * 4
        )));
    }
    Ok(())
}

/// y = W·x (or y += W·x) for one matrix, with pipelines, uniforms and bind groups built once.
pub struct MatVec {
    dispatches: Vec<Dispatch>,
    label: String,
}

impl MatVec {
    /// Builds the op. `x` needs `x_offset + n_in` f32, `y` needs `y_offset + n_out` f32
    /// (`y_offset + n_out / 2` with `swiglu`).
    pub async fn new(
        ctx: &GpuContext,
        m: &QuantMatrix,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        opts: MatVecOptions,
    ) -> Result<MatVec, KernelError> {
        if !WORKGROUP_SIZES.contains(&opts.workgroup_size) {
            return Err(KernelError::InvalidArgument(format!(
                "matvec workgroup size {} not in {WORKGROUP_SIZES:?}",
                opts.workgroup_size
            )));
        }
        let n_out = if opts.swiglu {
            if opts.accumulate || m.parts().len() != 1 || !m.n_out().is_multiple_of(2) {
                return Err(KernelError::InvalidArgument(format!(
                    "swiglu matvec needs one part with an even number of rows and no accumulate \
                     (`{}`: {} rows in {} parts)",
                    m.label(),
                    m.n_out(),
                    m.parts().len()
                )));
            }
            m.n_out() / 2
        } else {
            m.n_out()
        };
        check_len(x, opts.x_offset as u64 + m.n_in(), "matvec input")?;
        check_len(y, opts.y_offset as u64 + n_out, "matvec output")?;
        let k = key(m.ty(), ctx.use_f16(), ctx.use_subgroups(), &opts);
        let pipeline = ctx.pipeline(&k).await?;
        let mut dispatches = Vec::new();
        for part in m.parts() {
            let (n_rows, up_rows) = if opts.swiglu {
                (n_out as u32, n_out as u32)
            } else {
                (part.n_rows as u32, 0)
            };
            let groups = grid(ctx, n_rows.div_ceil(ROWS));
            let params = MatVecParams {
                n_in: m.n_in() as u32,
                n_rows,
                up_rows,
                row_bytes: m.row_bytes() as u32,
                x_offset: opts.x_offset,
                y_offset: opts.y_offset + part.first_row as u32,
                groups_x: groups.0,
                ..Default::default()
            };
            let uniform = ctx.uniform_buffer(&format!("{k} params"), &params)?;
            let bind_group = crate::step::bind_group(
                ctx,
                &k.to_string(),
                &pipeline,
                &[Some(&uniform), Some(&part.buffer), Some(x), Some(y)],
            );
            dispatches.push(Dispatch {
                pipeline: pipeline.clone(),
                bind_group,
                groups,
                _uniform: uniform,
            });
        }
        Ok(MatVec {
            dispatches,
            label: k.to_string(),
        })
    }

    /// Records the dispatches (one per part of the matrix).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.encode(pass);
        }
    }

    /// The pipeline label of the variant in use.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// One-off y = W·x (plus `y_init` when given, using the accumulate variant): uploads, runs and
/// reads back. For tests and tools, not for the decode loop.
pub async fn matvec_once(
    ctx: &GpuContext,
    m: &QuantMatrix,
    x: &[f32],
    y_init: Option<&[f32]>,
) -> Result<Vec<f32>, KernelError> {
    let xb = ctx.storage_buffer_init("matvec x", x)?;
    let n_out = m.n_out() as usize;
    let yb = match y_init {
        Some(init) => ctx.storage_buffer_init("matvec y", init)?,
        None => ctx.storage_buffer("matvec y", n_out as u64 * 4)?,
    };
    let opts = MatVecOptions {
        accumulate: y_init.is_some(),
        ..Default::default()
    };
    let op = MatVec::new(ctx, m, &xb, &yb, opts).await?;
    ctx.run_pass(op.label(), |pass| op.encode(pass))?;
    ctx.read_f32(&yb, 0, n_out).await
}
