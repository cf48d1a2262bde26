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
    pub eps_bits: u32,
    pub seg1: u32,
    pub seg2: u32,
    pub y2_offset: u32,
    pub y3_offset: u32,
    pub head_dim: u32,
    pub rope_dim: u32,
    pub kv_pairs: u32,
    pub row_bytes_v: u32,
}

/// Default rows per workgroup (the `ROWS` define); x is loaded once per unit for this many rows.
pub const ROWS: u32 = 4;
/// Rows per workgroup the op can be built with.
pub const ROW_COUNTS: [u32; 6] = [1, 2, 4, 8, 16, 32];
/// Workgroup sizes the op can be built with.
pub const WORKGROUP_SIZES: [u32; 5] = [16, 32, 64, 128, 256];

/// A mat-vec workgroup's shape: its threads and the rows it owns (4 or 8 rows: the unrolled
/// variants; 16 or 32: the whole-unit walk, [`MatVecOptions::blocks`], where it applies, else
/// 8). Written `THREADSxROWS`, as in `64x8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatVecShape {
    pub threads: u32,
    pub rows: u32,
}

impl MatVecShape {
    /// GPUs: 128 threads over 4 rows (the shape the H100 sweep chose: enough workgroups for
    /// every compute unit, four threads per 32-element block, x read once per four rows).
    pub const GPU: MatVecShape = MatVecShape {
        threads: 128,
        rows: 4,
    };
    /// CPU adapters (lavapipe, SwiftShader natively and in Chromium): 16 threads over 32 rows.
    /// Their drivers run a workgroup's invocations as SIMD lanes on one core, and SwiftShader
    /// runs every branch of a SIMD group, taken or not, so the end of the kernel (the
    /// reduction, the stores of the rows) costs every SIMD group of the workgroup: fewer
    /// threads, each walking more of the row, share those costs (with whole-unit walks,
    /// `MatVecOptions::blocks`, lavapipe decodes 1.5x and SwiftShader 1.6x faster than with
    /// 64 x 8 quarter walks). The whole-unit walk's rows are a loop, so 32 rows cost no more
    /// code than 8, and x is loaded once per 32 rows: SwiftShader decodes 1.3x faster than
    /// with 16 x 8, lavapipe 1.1-1.2x. Types without a unit product take 8 rows.
    pub const CPU: MatVecShape = MatVecShape {
        threads: 16,
        rows: 32,
    };

    /// The default shape for an adapter of this type.
    pub fn for_device(device_type: wgpu::DeviceType) -> MatVecShape {
        if device_type == wgpu::DeviceType::Cpu {
            MatVecShape::CPU
        } else {
            MatVecShape::GPU
        }
    }
}

impl std::fmt::Display for MatVecShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.threads, self.rows)
    }
}

impl std::str::FromStr for MatVecShape {
    type Err = KernelError;

    /// `THREADSxROWS`, threads one of [`WORKGROUP_SIZES`] and rows 4, 8, 16 or 32.
    fn from_str(s: &str) -> Result<MatVecShape, KernelError> {
        let bad = || {
            KernelError::InvalidArgument(format!(
                "matvec shape `{s}`: expected THREADSxROWS with threads one of \
                 {WORKGROUP_SIZES:?} and rows 4, 8, 16 or 32 (for example 128x4 or 16x32)"
            ))
        };
        let (t, r) = s.split_once('x').ok_or_else(bad)?;
        let shape = MatVecShape {
            threads: t.trim().parse().map_err(|_| bad())?,
            rows: r.trim().parse().map_err(|_| bad())?,
        };
        if WORKGROUP_SIZES.contains(&shape.threads) && matches!(shape.rows, 4 | 8 | 16 | 32) {
            Ok(shape)
        } else {
            Err(bad())
        }
    }
}

/// How to build a [`MatVec`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatVecOptions {
    /// Add into y instead of overwriting it (fuses the residual add).
    pub accumulate: bool,
    /// Threads per workgroup, one of [`WORKGROUP_SIZES`]. Four threads share each 32-element
    /// unit, so 128 threads walk 32 units (1024 elements) of ROWS rows per step.
    pub workgroup_size: u32,
    /// Rows per workgroup, one of [`ROW_COUNTS`].
    pub rows: u32,
    /// First element of x to use.
    pub x_offset: u32,
    /// Element of y receiving row 0 (for [`MatVec::new`]; [`MatVec::new_fused`] takes each
    /// output's offset from its [`MatVecOutput`]).
    pub y_offset: u32,
    /// Fused feed-forward gate: the matrix holds n_ff gate rows followed by n_ff up rows (one
    /// [`QuantMatrix`] of 2·n_ff rows, written by the loader at row offsets 0 and n_ff) and
    /// y\[r\] = silu(gate_r·x)·(up_r·x) for r < n_ff. Saves two dispatches per layer and the
    /// gate/up round trip through memory. The stacked matrix must fit one part; cannot be
    /// combined with `accumulate` or several outputs.
    pub swiglu: bool,
    /// With `rows` 4 or 8, keep the rows' sums in vectors rather than arrays indexed inside
    /// the loop (the `UNROLL` variant); ignored for other row counts.
    pub unroll: bool,
    /// With `unroll`: walk two 32-element units per loop step, issuing both units' loads
    /// before their products (the `PAIRS` variant): twice the bytes in flight per thread.
    pub pairs: bool,
    /// With `unroll`: quantize x to 8-bit integers (one scale per thread's eight elements) and
    /// take the products of Q4_0, Q5_0, Q8_0 and Q4_K rows as packed integer dot products (the
    /// `INT_DOT` variant; other types keep the float product). Not bit-exact: x carries about
    /// 1/254 of its eight elements' largest magnitude as rounding error, as llama.cpp's
    /// quantized-activation dot products do.
    pub int_dot: bool,
    /// Without subgroups: reduce the threads' sums in one round through workgroup memory (one
    /// barrier, then each output row summed by one thread) instead of a tree of log2(threads)
    /// barriers (the `FLAT_REDUCE` variant). For CPU adapters, whose drivers switch every SIMD
    /// group of the workgroup at each barrier (lavapipe without subgroups: 1.3-1.4x decode);
    /// GPUs keep the tree. No effect with subgroups.
    pub flat_reduce: bool,
    /// With `unroll`: each thread of a Q4_0, Q5_0, Q8_0, Q4_K or Q6_K product walks whole 32-element
    /// units instead of a quarter of one (the `BLOCKS` variant), so the words of a block are
    /// loaded once rather than once per quarter. Other types, and `int_dot`, keep the quarter
    /// walk (see [`walks_units`]). For CPU adapters, whose drivers turn each load with a
    /// per-lane offset into a gather; GPUs keep the quarter walk, whose loads coalesce.
    /// Replaces `pairs` where it applies. The quants are then also read without shifts
    /// (masked in place, converted and scaled back: exact), which SwiftShader runs faster.
    pub blocks: bool,
}

impl MatVecOptions {
    /// The workgroup shape of these options.
    pub fn shape(&self) -> MatVecShape {
        MatVecShape {
            threads: self.workgroup_size,
            rows: self.rows,
        }
    }

    /// These options as a product of `ty` rows (and of `v_ty` rows: the mixed q/k/v) is built
    /// with them: more than 8 rows per workgroup only where every type walks whole units
    /// (whose rows are a loop, [`walks_units`]), else 8 (the unrolled walk's most), so that
    /// the CPU adapters' 32-row shape serves every type.
    pub fn for_types(self, ty: GgmlType, v_ty: Option<GgmlType>) -> MatVecOptions {
        let units = walks_units(ty, &self) && v_ty.is_none_or(|v| walks_units(v, &self));
        if self.rows > 8 && !units {
            MatVecOptions { rows: 8, ..self }
        } else {
            self
        }
    }

    /// These options with the workgroup shape `shape`.
    pub fn with_shape(self, shape: MatVecShape) -> MatVecOptions {
        MatVecOptions {
            workgroup_size: shape.threads,
            rows: shape.rows,
            ..self
        }
    }
}

impl Default for MatVecOptions {
    fn default() -> Self {
        MatVecOptions {
            accumulate: false,
            workgroup_size: 128,
            rows: ROWS,
            x_offset: 0,
            y_offset: 0,
            swiglu: false,
            unroll: true,
            pairs: false,
            int_dot: false,
            flat_reduce: false,
            blocks: false,
        }
    }
}

/// RMSNorm fused in front of the product: x is the raw residual stream and
/// y = W·(x / sqrt(mean(x²) + eps) ⊙ weight).
#[derive(Clone, Copy, Debug)]
pub struct MatVecNorm<'a> {
    /// The norm weight, `n_in` f32.
    pub weight: &'a wgpu::Buffer,
    pub eps: f32,
}

/// One output of a [`MatVec`]: the next `rows` rows of the matrix go to `buffer` from element
/// `offset` on.
#[derive(Clone, Copy, Debug)]
pub struct MatVecOutput<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: u32,
    pub rows: u64,
}

/// Decode's RoPE and KV-cache store fused into the q/k/v product (the `ROPE` variant; see
/// [`MatVec::new_qkv_rope`]). The caches and the cos/sin table are laid out as
/// `crate::rope` has them.
#[derive(Clone, Copy, Debug)]
pub struct MatVecRope<'a> {
    /// Receives q, rotated, from element 0.
    pub q: &'a wgpu::Buffer,
    /// q, k and v rows of the matrix, in this order (0 for a tensor the stack lacks; each
    /// present one is the whole tensor).
    pub rows: [u64; 3],
    /// The step uniform: the token's position is its `pos0`.
    pub step: &'a wgpu::Buffer,
    /// `(n_ctx, rope_dim / 2)` (cos, sin) pairs from [`crate::rope::cos_sin_table`].
    pub cos_sin: &'a wgpu::Buffer,
    /// `(n_ctx, n_head_kv * head_dim)`, f16 when the context uses f16, else f32.
    pub k_cache: &'a wgpu::Buffer,
    pub v_cache: &'a wgpu::Buffer,
    pub head_dim: u32,
    pub rope_dim: u32,
    pub n_head_kv: u32,
    /// The v rows as a matrix of their own, typically of another type than q and k (llama.cpp's
    /// Q4_K_M files give attn_v Q8_0 in half the layers): the product then still takes one
    /// dispatch, the main matrix holding only the q and k rows (`rows[0] + rows[1]`, a multiple
    /// of the rows per workgroup). Both matrices must be one part each.
    pub v: Option<&'a QuantMatrix>,
}

/// Whether a product of `ty` rows with these options walks whole units per thread (the `BLOCKS`
/// variant): `blocks` asked for, `unroll`, 4, 8, 16 or 32 rows, the float product, and a type
/// with a unit product (Q4_0, Q5_0, Q8_0, Q4_K, Q6_K).
pub fn walks_units(ty: GgmlType, opts: &MatVecOptions) -> bool {
    opts.blocks
        && opts.unroll
        && !opts.int_dot
        && matches!(opts.rows, 4 | 8 | 16 | 32)
        && matches!(
            ty,
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4K | GgmlType::Q6K
        )
}

/// The key of one variant; `accumulate` and `swiglu` exclude each other. `outputs` is 1, 2 or 3.
pub fn key(
    ty: GgmlType,
    f16: bool,
    subgroups: bool,
    opts: &MatVecOptions,
    norm: bool,
    outputs: usize,
) -> KernelKey {
    KernelKey::new("matvec", "main")
        .define(&type_define(ty), 1)
        .flag("F16", f16 && ty != GgmlType::F32)
        .flag("SUBGROUPS", subgroups)
        .flag("ACCUMULATE", opts.accumulate)
        .flag("SWIGLU", opts.swiglu)
        .flag("NORM", norm)
        .flag("Y2", outputs >= 2)
        .flag("Y3", outputs >= 3)
        .define("WG", opts.workgroup_size)
        .define("ROWS", opts.rows)
        .flag("UNROLL", opts.unroll && (opts.rows == 4 || opts.rows == 8))
        .flag("ROWS8", opts.unroll && opts.rows == 8)
        .flag(
            "PAIRS",
            opts.pairs
                && !walks_units(ty, opts)
                && opts.unroll
                && (opts.rows == 4 || opts.rows == 8),
        )
        .flag(
            "INT_DOT",
            opts.int_dot && opts.unroll && (opts.rows == 4 || opts.rows == 8),
        )
        .flag("FLAT_REDUCE", opts.flat_reduce && !subgroups)
        .flag("BLOCKS", walks_units(ty, opts))
        .flag("MASKED_BYTES", walks_units(ty, opts))
}

/// The key of the fused q/k/v + RoPE + KV-store variant (three outputs; the caches are f16
/// pairs when `f16`).
pub fn rope_key(
    ty: GgmlType,
    f16: bool,
    subgroups: bool,
    opts: &MatVecOptions,
    norm: bool,
) -> KernelKey {
    key(ty, f16, subgroups, opts, norm, 3)
        .flag("ROPE", true)
        .flag("KV_F16", f16)
}

/// The key of the fused q/k/v + RoPE variant whose v rows come from a second matrix of type
/// `v_ty` (see [`MatVecRope::v`]).
pub fn rope_key_mixed(
    ty: GgmlType,
    v_ty: GgmlType,
    f16: bool,
    subgroups: bool,
    opts: &MatVecOptions,
    norm: bool,
) -> KernelKey {
    // Both matrices walk the same way: whole units only where both types have a unit product.
    let opts = MatVecOptions {
        blocks: opts.blocks && walks_units(v_ty, opts),
        ..*opts
    };
    rope_key(ty, f16, subgroups, &opts, norm)
        .define("V_TYPE", v_ty.name())
        .define("V_FRAGMENT", "matvec_walk")
}

/// The (q/k, v) type pairs of the published Ahma files' q/k/v stacks (Q4_K_M and Q5_K_M of the
/// 3B, Q4_K_M of the 7B) and their neighbours, for which the mixed variant is prebuilt and
/// checked; others work the same way.
pub const MIXED_PAIRS: [(GgmlType, GgmlType); 5] = [
    (GgmlType::Q5_0, GgmlType::Q8_0),
    (GgmlType::Q5_1, GgmlType::Q8_0),
    (GgmlType::Q4_0, GgmlType::Q5_0),
    (GgmlType::Q4K, GgmlType::Q6K),
    (GgmlType::Q4K, GgmlType::Q5K),
];

/// Every variant the engine and the tests request: (accumulate, swiglu, norm, outputs) for the
/// default workgroup shape and the CPU adapters' (with and without their whole-unit walk), plus
/// the plain product for the other workgroup sizes, all with the vec4 loads of x (`X4`), and
/// the plain product with scalar loads.
pub fn variants() -> Vec<KernelKey> {
    let modes = [
        (false, false, false, 1),
        (true, false, false, 1),
        (false, true, false, 1),
        (false, false, true, 1),
        (false, false, true, 2),
        (false, false, true, 3),
        (false, true, true, 1),
    ];
    let mut out = Vec::new();
    let mut scalar_x = Vec::new();
    for ty in GgmlType::ALL {
        for f16 in [false, true] {
            if f16 && ty == GgmlType::F32 {
                continue;
            }
            for sg in [false, true] {
                // The options, and with the CPU adapters' shape also their whole-unit walk, and
                // without subgroups their one-round reduction.
                let and_cpu = |o: MatVecOptions| {
                    let mut v = vec![o];
                    if o.shape() == MatVecShape::CPU {
                        v.push(MatVecOptions { blocks: true, ..o });
                        if !sg {
                            for blocks in [false, true] {
                                v.push(MatVecOptions {
                                    flat_reduce: true,
                                    blocks,
                                    ..o
                                });
                            }
                        }
                    }
                    v
                };
                for (accumulate, swiglu, norm, outputs) in modes {
                    for (workgroup_size, rows, unroll, pairs, int_dot) in [
                        (128, ROWS, false, false, false),
                        (128, ROWS, true, false, false),
                        (128, ROWS, true, true, false),
                        (128, 8, true, false, false),
                        (128, ROWS, true, false, true),
                        (128, ROWS, true, true, true),
                        (128, 8, true, false, true),
                        (64, 8, true, false, false),
                        (16, 8, true, false, false),
                    ] {
                        let opts = MatVecOptions {
                            accumulate,
                            swiglu,
                            unroll,
                            workgroup_size,
                            rows,
                            pairs,
                            int_dot,
                            ..Default::default()
                        };
                        for o in and_cpu(opts) {
                            out.push(key(ty, f16, sg, &o, norm, outputs));
                        }
                    }
                }
                for (shape, unroll, pairs, int_dot) in [
                    (MatVecShape::GPU, false, false, false),
                    (MatVecShape::GPU, true, false, false),
                    (MatVecShape::GPU, true, true, false),
                    (MatVecShape::GPU, true, false, true),
                    (MatVecShape::GPU, true, true, true),
                    (MatVecShape::CPU, true, false, false),
                ] {
                    for norm in [false, true] {
                        let opts = MatVecOptions {
                            unroll,
                            pairs,
                            int_dot,
                            ..Default::default()
                        }
                        .with_shape(shape);
                        for o in and_cpu(opts) {
                            out.push(rope_key(ty, f16, sg, &o, norm));
                        }
                    }
                }
                for (a, v) in MIXED_PAIRS.into_iter().filter(|&(a, _)| a == ty) {
                    for (shape, pairs, int_dot) in [
                        (MatVecShape::GPU, false, false),
                        (MatVecShape::GPU, true, false),
                        (MatVecShape::GPU, false, true),
                        (MatVecShape::GPU, true, true),
                        (MatVecShape::CPU, false, false),
                    ] {
                        let opts = MatVecOptions {
                            pairs,
                            int_dot,
                            ..Default::default()
                        }
                        .with_shape(shape);
                        for o in and_cpu(opts) {
                            out.push(rope_key_mixed(a, v, f16, sg, &o, true));
                        }
                    }
                }
                for workgroup_size in [64, 256] {
                    let opts = MatVecOptions {
                        workgroup_size,
                        ..Default::default()
                    };
                    out.push(key(ty, f16, sg, &opts, false, 1));
                }
                // Rows whose length is no multiple of 4 (float types only in practice) read x
                // element by element.
                for norm in [false, true] {
                    scalar_x.push(key(ty, f16, sg, &MatVecOptions::default(), norm, 1));
                }
            }
        }
    }
    // Options that do not apply to a type (whole units for Q6_K, say) give keys already listed.
    let mut seen = std::collections::HashSet::new();
    out.into_iter()
        .map(|k| k.flag("X4", true))
        .chain(scalar_x)
        .filter(|k| seen.insert(k.clone()))
        .collect()
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
        eps_bits,
        seg1,
        seg2,
        y2_offset,
        y3_offset,
        head_dim,
        rope_dim,
        kv_pairs,
        row_bytes_v
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

/// Whether [`MatVec::new_qkv_rope`] can take q and k from `m` and v from `v` in one dispatch
/// (see [`MatVecRope::v`]): the unrolled variant (4 or 8 rows per workgroup), one part per
/// matrix, exactly the q and k rows of `rows` (`[q, k, v]`, a multiple of the rows per
/// workgroup) in `m` and the v rows in `v`, of one row length. The engine asks before it
/// chooses that product over one per matrix.
pub fn check_two_types(
    m: &QuantMatrix,
    v: &QuantMatrix,
    rows: [u64; 3],
    opts: &MatVecOptions,
) -> Result<(), KernelError> {
    let opts = opts.for_types(m.ty(), Some(v.ty()));
    let qk = rows[0] + rows[1];
    // 16 or 32 rows remain only where both types walk whole units (`for_types`).
    let vectors = opts.unroll && matches!(opts.rows, 4 | 8 | 16 | 32);
    if !vectors
        || m.parts().len() != 1
        || v.parts().len() != 1
        || v.n_in() != m.n_in()
        || m.n_out() != qk
        || v.n_out() != rows[2]
        || rows[2] == 0
        || !qk.is_multiple_of(opts.rows as u64)
    {
        return Err(KernelError::InvalidArgument(format!(
            "fused RoPE matvec `{}` + `{}`: needs the unrolled variant (4 or 8 rows per \
             workgroup, or 16 or 32 where both types walk whole units; not {}), one part per matrix, the q and k rows ({qk}, a multiple of the \
             rows per workgroup) in the first matrix and the v rows ({}) in the second, of one \
             row length ({} and {})",
            m.label(),
            v.label(),
            opts.rows,
            rows[2],
            m.n_in(),
            v.n_in()
        )));
    }
    Ok(())
}

/// y = W·x (or y += W·x) for one matrix, with pipelines, uniforms and bind groups built once.
pub struct MatVec {
    dispatches: Vec<Dispatch>,
    /// Each dispatch's uniform as last written.
    params: Vec<MatVecParams>,
    /// f32 elements the x buffer holds, and the row length.
    x_elems: u64,
    n_in: u64,
    /// Built with the vec4 loads of x (`X4`): x offsets stay multiples of 4.
    x4: bool,
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
        let rows = if opts.swiglu {
            m.n_out() / 2
        } else {
            m.n_out()
        };
        let out = MatVecOutput {
            buffer: y,
            offset: opts.y_offset,
            rows,
        };
        MatVec::new_fused(ctx, m, x, None, &[out], opts).await
    }

    /// Builds the op with an optional fused RMSNorm in front and the rows split over one to
    /// three outputs (in row order; their `rows` must add up to the matrix's rows, or to half of
    /// them with `swiglu`, which takes exactly one output). `opts.y_offset` is not used.
    pub async fn new_fused(
        ctx: &GpuContext,
        m: &QuantMatrix,
        x: &wgpu::Buffer,
        norm: Option<MatVecNorm<'_>>,
        outputs: &[MatVecOutput<'_>],
        opts: MatVecOptions,
    ) -> Result<MatVec, KernelError> {
        let opts = opts.for_types(m.ty(), None);
        MatVec::build(ctx, m, x, norm, outputs, opts, None).await
    }

    /// Decode's q/k/v product of one token with the rotary embedding and the KV-cache store
    /// fused in (saves the RoPE dispatch of every layer). The matrix holds `rope.rows[0]` q
    /// rows, then `rope.rows[1]` k rows, then `rope.rows[2]` v rows: q lands rotated in
    /// `rope.q`, k rotated and v as they are in the caches' row `step.pos0`. Results are those
    /// of the plain product followed by [`crate::rope::Rope`]. Needs an even `opts.rows`
    /// without `accumulate` or `swiglu`, and parts and segments that start at even rows.
    pub async fn new_qkv_rope(
        ctx: &GpuContext,
        m: &QuantMatrix,
        x: &wgpu::Buffer,
        norm: Option<MatVecNorm<'_>>,
        rope: MatVecRope<'_>,
        opts: MatVecOptions,
    ) -> Result<MatVec, KernelError> {
        let opts = opts.for_types(m.ty(), rope.v.map(|v| v.ty()));
        let rows = rope.rows;
        let kv_row = rope.n_head_kv as u64 * rope.head_dim as u64;
        if let Some(v) = rope.v {
            check_two_types(m, v, rows, &opts)?;
        }
        let odd_part = m
            .parts()
            .iter()
            .any(|p| p.first_row % 2 == 1 || p.n_rows % 2 == 1);
        if opts.accumulate
            || opts.swiglu
            || opts.rows % 2 == 1
            || rope.head_dim % 2 == 1
            || rope.rope_dim % 2 == 1
            || rope.rope_dim > rope.head_dim
            || rows[0] % 2 == 1
            || rows[1] % 2 == 1
            || rows[1].max(rows[2]) > kv_row
            || odd_part
        {
            return Err(KernelError::InvalidArgument(format!(
                "fused RoPE matvec `{}`: needs even rows per workgroup ({}), even parts, q/k/v \
                 rows {rows:?} within a cache row of {kv_row} and an even rope_dim {} <= head_dim \
                 {}, without accumulate or swiglu",
                m.label(),
                opts.rows,
                rope.rope_dim,
                rope.head_dim
            )));
        }
        let elem = crate::rope::kv_elem_bytes(ctx.use_f16());
        for (c, what) in [(rope.k_cache, "key cache"), (rope.v_cache, "value cache")] {
            if c.size() < kv_row * elem || c.size() % (kv_row * elem) != 0 {
                return Err(KernelError::InvalidArgument(format!(
                    "fused RoPE matvec: the {what} holds {} bytes, not whole rows of {}",
                    c.size(),
                    kv_row * elem
                )));
            }
        }
        let outputs = [
            MatVecOutput {
                buffer: rope.q,
                offset: 0,
                rows: rows[0],
            },
            MatVecOutput {
                buffer: rope.k_cache,
                offset: 0,
                rows: rows[1],
            },
            MatVecOutput {
                buffer: rope.v_cache,
                offset: 0,
                rows: rows[2],
            },
        ];
        MatVec::build(ctx, m, x, norm, &outputs, opts, Some(&rope)).await
    }

    async fn build(
        ctx: &GpuContext,
        m: &QuantMatrix,
        x: &wgpu::Buffer,
        norm: Option<MatVecNorm<'_>>,
        outputs: &[MatVecOutput<'_>],
        opts: MatVecOptions,
        rope: Option<&MatVecRope<'_>>,
    ) -> Result<MatVec, KernelError> {
        if !WORKGROUP_SIZES.contains(&opts.workgroup_size) || !ROW_COUNTS.contains(&opts.rows) {
            return Err(KernelError::InvalidArgument(format!(
                "matvec workgroup size {} / rows {} not in {WORKGROUP_SIZES:?} / {ROW_COUNTS:?}",
                opts.workgroup_size, opts.rows
            )));
        }
        let v_matrix = rope.and_then(|r| r.v);
        // With a second matrix (one part each) its rows follow the first's.
        let v_rows = v_matrix.map_or(0, |v| v.n_out());
        let n_out = if opts.swiglu {
            if opts.accumulate
                || m.parts().len() != 1
                || !m.n_out().is_multiple_of(2)
                || outputs.len() != 1
            {
                return Err(KernelError::InvalidArgument(format!(
                    "swiglu matvec needs one part with an even number of rows, one output and no \
                     accumulate (`{}`: {} rows in {} parts)",
                    m.label(),
                    m.n_out(),
                    m.parts().len()
                )));
            }
            m.n_out() / 2
        } else {
            m.n_out() + v_rows
        };
        if outputs.is_empty()
            || outputs.len() > 3
            || outputs.iter().map(|o| o.rows).sum::<u64>() != n_out
        {
            return Err(KernelError::InvalidArgument(format!(
                "matvec `{}`: {} outputs of {:?} rows for {n_out} rows",
                m.label(),
                outputs.len(),
                outputs.iter().map(|o| o.rows).collect::<Vec<_>>()
            )));
        }
        check_len(x, opts.x_offset as u64 + m.n_in(), "matvec input")?;
        // With RoPE, outputs 2 and 3 are the caches (checked by `new_qkv_rope`).
        let direct = if rope.is_some() { 1 } else { outputs.len() };
        for o in &outputs[..direct] {
            check_len(o.buffer, o.offset as u64 + o.rows, "matvec output")?;
        }
        if let Some(n) = &norm {
            check_len(n.weight, m.n_in(), "matvec norm weight")?;
        }
        let nacc = if opts.swiglu { 2 } else { 1 } * opts.rows + u32::from(norm.is_some());
        let scratch = nacc * opts.workgroup_size * 4;
        if scratch > ctx.caps().max_compute_workgroup_storage_size {
            return Err(KernelError::InvalidArgument(format!(
                "matvec: {scratch} bytes of workgroup memory, the device allows {}",
                ctx.caps().max_compute_workgroup_storage_size
            )));
        }
        let k = match rope {
            Some(MatVecRope { v: Some(v), .. }) => rope_key_mixed(
                m.ty(),
                v.ty(),
                ctx.use_f16(),
                ctx.use_subgroups(),
                &opts,
                norm.is_some(),
            ),
            Some(_) => rope_key(
                m.ty(),
                ctx.use_f16(),
                ctx.use_subgroups(),
                &opts,
                norm.is_some(),
            ),
            None => key(
                m.ty(),
                ctx.use_f16(),
                ctx.use_subgroups(),
                &opts,
                norm.is_some(),
                outputs.len(),
            ),
        };
        // Rows of whole groups of four from a group boundary of x: x and the norm weight are
        // read as vec4 (`X4`). Every quantized type's rows qualify.
        let x4 = m.n_in().is_multiple_of(4) && opts.x_offset.is_multiple_of(4);
        let k = k.flag("X4", x4);
        // Whole units two at a time (`UNIT_PAIRS`, see `shaders/matvec_walk.wgsl`) where the
        // variant walks whole units (`BLOCKS`), in every matrix it walks: Q4_K rows, and Q4_0,
        // Q5_0 and Q8_0 rows (blocks 2 bytes past a multiple of 4) of a 4-aligned length.
        // Q6_K walks four at a time regardless.
        let walks = k.defines.contains_key("BLOCKS");
        let pairs_fit = |q: &QuantMatrix| match q.ty() {
            GgmlType::Q4K | GgmlType::Q6K => true,
            GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => q.row_bytes().is_multiple_of(4),
            _ => false,
        };
        let k = k.flag(
            "UNIT_PAIRS",
            walks && pairs_fit(m) && v_matrix.is_none_or(pairs_fit),
        );
        let pipeline = ctx.pipeline(&k).await?;
        // Global first row of each output.
        let mut starts = Vec::with_capacity(outputs.len());
        let mut acc = 0u64;
        for o in outputs {
            starts.push(acc);
            acc += o.rows;
        }
        let eps_bits = norm.map(|n| n.eps.to_bits()).unwrap_or(0);
        let mut dispatches = Vec::new();
        let mut all_params = Vec::new();
        for part in m.parts() {
            let (first, n_rows, up_rows) = if opts.swiglu {
                (0, n_out, n_out as u32)
            } else {
                (part.first_row, part.n_rows + v_rows, 0)
            };
            // Part-local boundaries and the (wrapping) base element of each output.
            let local = |k: usize| -> (u32, u32) {
                match (starts.get(k), outputs.get(k)) {
                    (Some(&s), Some(o)) => {
                        let seg = s.saturating_sub(first).min(n_rows) as u32;
                        let base = (o.offset as u64 + first).wrapping_sub(s) as u32;
                        (seg, base)
                    }
                    _ => (n_rows as u32, 0),
                }
            };
            let (_, y_offset) = local(0);
            let (seg1, y2_offset) = local(1);
            let (seg2, y3_offset) = local(2);
            let groups = grid(ctx, (n_rows as u32).div_ceil(opts.rows));
            let params = MatVecParams {
                n_in: m.n_in() as u32,
                n_rows: n_rows as u32,
                row_bytes: m.row_bytes() as u32,
                x_offset: opts.x_offset,
                y_offset,
                groups_x: groups.0,
                up_rows,
                eps_bits,
                seg1,
                seg2,
                y2_offset,
                y3_offset,
                head_dim: rope.map_or(0, |r| r.head_dim),
                rope_dim: rope.map_or(0, |r| r.rope_dim),
                kv_pairs: rope.map_or(0, |r| r.n_head_kv * r.head_dim / 2),
                row_bytes_v: v_matrix.map_or(0, |v| v.row_bytes() as u32),
            };
            let uniform = ctx.uniform_buffer(&format!("{k} params"), &params)?;
            let bind_group = crate::step::bind_group(
                ctx,
                &k.to_string(),
                &pipeline,
                &[
                    Some(&uniform),
                    Some(&part.buffer),
                    Some(x),
                    Some(outputs[0].buffer),
                    norm.map(|n| n.weight),
                    outputs.get(1).map(|o| o.buffer),
                    outputs.get(2).map(|o| o.buffer),
                    rope.map(|r| r.step),
                    rope.map(|r| r.cos_sin),
                    v_matrix.map(|v| &v.parts()[0].buffer),
                ],
            );
            dispatches.push(Dispatch {
                pipeline: pipeline.clone(),
                bind_group,
                groups,
                _uniform: uniform,
            });
            all_params.push(params);
        }
        Ok(MatVec {
            dispatches,
            params: all_params,
            x_elems: x.size() / 4,
            n_in: m.n_in(),
            x4,
            label: k.to_string(),
        })
    }

    /// Makes the next submit read x from element `x_offset` on (another row of the same buffer,
    /// such as a prompt's last token); writes the uniforms through the queue only when the
    /// offset changes. With rows of a multiple of 4 elements (every quantized type) the offset
    /// must be a multiple of 4, as every row start of a batch of such rows is.
    pub fn set_x_offset(&mut self, ctx: &GpuContext, x_offset: u32) -> Result<(), KernelError> {
        if x_offset as u64 + self.n_in > self.x_elems {
            return Err(KernelError::InvalidArgument(format!(
                "matvec `{}`: x offset {x_offset} + {} elements past the {} of its input",
                self.label, self.n_in, self.x_elems
            )));
        }
        if self.x4 && !x_offset.is_multiple_of(4) {
            return Err(KernelError::InvalidArgument(format!(
                "matvec `{}`: x offset {x_offset} is not a multiple of 4 (the variant reads x \
                 in groups of four)",
                self.label
            )));
        }
        for (d, p) in self.dispatches.iter().zip(&mut self.params) {
            if p.x_offset != x_offset {
                p.x_offset = x_offset;
                ctx.queue()
                    .write_buffer(&d._uniform, 0, bytemuck::bytes_of(p));
            }
        }
        Ok(())
    }

    /// Records the dispatches (one per part of the matrix).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.encode(pass);
        }
    }

    /// Dispatches [`MatVec::encode`] records.
    pub fn dispatch_count(&self) -> u64 {
        self.dispatches.len() as u64
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
