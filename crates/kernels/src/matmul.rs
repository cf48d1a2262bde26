//! Prefill matrix-matrix product over a [`QuantMatrix`] (`shaders/matmul.wgsl`):
//! Y (n_tokens, n_out) = X (n_tokens, n_in) · Wᵀ.

use ahma_gguf::GgmlType;

use crate::context::GpuContext;
use crate::error::KernelError;
use crate::key::KernelKey;
use crate::matmul_rows::Lanes;
use crate::matvec::{check_len, Dispatch};
use crate::quant_matrix::{type_define, QuantMatrix};
use crate::quantize::X8;
use crate::registry::ParamsLayout;

/// Uniform of one dispatch (one part of the matrix). Mirrors `MatMulParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatMulParams {
    pub n_in: u32,
    pub n_rows: u32,
    pub row_bytes: u32,
    pub n_tokens: u32,
    pub x_offset: u32,
    pub x_stride: u32,
    pub y_offset: u32,
    pub y_stride: u32,
    pub w_row0: u32,
    /// 1: add into Y (`MatMulOptions::accumulate`), 0: overwrite it. A uniform rather than a
    /// shader variant: one pipeline per type and tile serves both (a prefill layer uses both
    /// modes on the same types), which saves compiling it twice when a model loads.
    pub accumulate: u32,
    /// The integer variant: records per unit in the quantized X ([`X8::tokens`]).
    pub x8_tokens: u32,
    pub _pad2: u32,
}

/// A workgroup's tile of Y: `tokens` x `rows`, each thread a `thread_tokens` x `thread_rows`
/// block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    pub tokens: u32,
    pub rows: u32,
    /// Tokens per thread: 4, or 8 (`TM8` in the shader).
    pub thread_tokens: u32,
    /// Rows per thread: 4, or 8 (`RN8`).
    pub thread_rows: u32,
}

impl Tile {
    pub const fn new(tokens: u32, rows: u32, thread_tokens: u32, thread_rows: u32) -> Tile {
        Tile {
            tokens,
            rows,
            thread_tokens,
            thread_rows,
        }
    }

    /// Invocations per workgroup.
    pub const fn workgroup_size(&self) -> u32 {
        self.tokens * self.rows / (self.thread_tokens * self.thread_rows)
    }

    /// Workgroup memory the shader declares: 32 elements of every token and row, in f32; for
    /// the integer product (`int8`) 32 bytes of integers and 12 (tokens) or 8 (rows) of scales
    /// and sums.
    pub const fn workgroup_bytes(&self, int8: bool) -> u32 {
        if int8 {
            44 * self.tokens + 40 * self.rows
        } else {
            32 * (self.tokens + self.rows) * 4
        }
    }
}

impl std::fmt::Display for Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{}x{}x{}",
            self.tokens, self.rows, self.thread_tokens, self.thread_rows
        )
    }
}

impl std::str::FromStr for Tile {
    type Err = KernelError;

    /// `TOKENSxROWS` (4 x 4 per thread), or `TOKENSxROWSxTHREAD_TOKENS[xTHREAD_ROWS]`, one of
    /// [`TILES`].
    fn from_str(s: &str) -> Result<Tile, KernelError> {
        let bad = || {
            let known: Vec<String> = TILES.iter().map(|t| t.to_string()).collect();
            KernelError::InvalidArgument(format!(
                "matmul tile `{s}`: expected one of {}",
                known.join(", ")
            ))
        };
        let n: Vec<u32> = s
            .split('x')
            .map(|v| v.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let t = match n[..] {
            [tokens, rows] => Tile::new(tokens, rows, 4, 4),
            [tokens, rows, tm] => Tile::new(tokens, rows, tm, 4),
            [tokens, rows, tm, rn] => Tile::new(tokens, rows, tm, rn),
            _ => return Err(bad()),
        };
        if TILES.contains(&t) {
            Ok(t)
        } else {
            Err(bad())
        }
    }
}

/// Every tile the shader supports. Tiles above 16 KiB of workgroup memory (128 tokens or rows)
/// need more than WebGPU guarantees: they are refused where the device has less.
pub const TILES: [Tile; 12] = [
    Tile::new(32, 32, 4, 4),
    Tile::new(32, 64, 4, 4),
    Tile::new(64, 32, 4, 4),
    Tile::new(64, 64, 4, 4),
    Tile::new(64, 32, 8, 4),
    Tile::new(64, 64, 8, 4),
    Tile::new(64, 64, 8, 8),
    Tile::new(128, 32, 8, 4),
    Tile::new(128, 64, 8, 4),
    Tile::new(128, 64, 8, 8),
    Tile::new(64, 128, 8, 8),
    Tile::new(128, 128, 8, 8),
];

/// The largest tile edge of the automatic choice (tokens or rows per workgroup).
pub const TILE: u32 = 64;

/// Workgroups a dispatch should have before the automatic tile choice uses 64 weight rows per
/// tile (256 threads) instead of 32 (128 threads with 64-token tiles): a matrix with few rows
/// would otherwise leave most compute units of a large GPU idle.
pub const AUTO_WIDE_GROUPS: u32 = 256;

/// How to build a [`MatMul`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MatMulOptions {
    /// Add into Y instead of overwriting it (fuses the residual add).
    pub accumulate: bool,
    /// First element of X.
    pub x_offset: u32,
    /// Elements between rows of X; 0 means n_in.
    pub x_stride: u32,
    /// Element of Y receiving (token 0, row 0).
    pub y_offset: u32,
    /// Elements between rows of Y; 0 means the number of rows computed.
    pub y_stride: u32,
    /// First matrix row to compute (row 0 of Y): a row range of a stacked matrix.
    pub first_row: u64,
    /// Rows to compute from `first_row` on; 0 means all the rest.
    pub n_rows: u64,
    /// The workgroup tile, one of [`TILES`]; `None` chooses (see [`MatMulOptions::tile`]).
    pub tile: Option<Tile>,
    /// The float product laid out for CPU adapters instead of in tiles
    /// (`shaders/matmul_rows.wgsl`): each invocation `lanes.rows` weight rows and `lanes.tokens` tokens,
    /// no workgroup memory and no barrier. `tile` then does not apply. With
    /// [`MatMul::new_int8`] it reads the quantized X in this layout too (its `X8` variant:
    /// float products of the dequantized weights and of X's bytes).
    pub lanes: Option<Lanes>,
}

/// Whether the mat-vec's `int_dot` and [`MatMul::new_int8`] take weights of type `ty` in
/// integers.
pub fn has_int_dot(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4K
    )
}

impl MatMulOptions {
    /// The tile for `rows` weight rows and batches of up to `max_tokens`: the chosen one, or
    /// automatically 64 tokens (32 when no batch exceeds 32) and 64 rows when that still gives
    /// at least [`AUTO_WIDE_GROUPS`] workgroups at the largest batch, else 32, with 4 tokens per
    /// thread.
    pub fn tile(&self, rows: u32, max_tokens: u32) -> Tile {
        if let Some(t) = self.tile {
            return t;
        }
        let tokens = if max_tokens <= 32 { 32 } else { TILE };
        let rows = if rows.div_ceil(TILE) * max_tokens.div_ceil(tokens) >= AUTO_WIDE_GROUPS {
            TILE
        } else {
            32
        };
        Tile::new(tokens, rows, 4, 4)
    }
}

/// The key of one variant for a tile of [`TILES`] (both modes: `accumulate` is a uniform);
/// `int_dot` applies where [`has_int_dot`] (the integer variant has no f16 arithmetic).
pub fn key(ty: GgmlType, f16: bool, tile: Tile, int_dot: bool) -> KernelKey {
    let int_dot = int_dot && has_int_dot(ty);
    KernelKey::new("matmul", "main")
        .define(&type_define(ty), 1)
        .flag("F16", f16 && ty != GgmlType::F32 && !int_dot)
        .flag("INT_DOT", int_dot)
        .define("BM", tile.tokens)
        .define("BN", tile.rows)
        .flag("TM8", tile.thread_tokens == 8)
        .flag("RN8", tile.thread_rows == 8)
        .define("WG", tile.workgroup_size())
}

/// Every variant the engine and the tests request: every tile.
pub fn variants() -> Vec<KernelKey> {
    let mut out = Vec::new();
    for ty in GgmlType::ALL {
        for f16 in [false, true] {
            if f16 && ty == GgmlType::F32 {
                continue;
            }
            for tile in TILES {
                out.push(key(ty, f16, tile, false));
                if has_int_dot(ty) && !f16 {
                    out.push(key(ty, false, tile, true));
                }
            }
        }
    }
    out
}

pub fn params_layouts() -> Vec<ParamsLayout> {
    vec![crate::params_layout!(MatMulParams {
        n_in,
        n_rows,
        row_bytes,
        n_tokens,
        x_offset,
        x_stride,
        y_offset,
        y_stride,
        w_row0,
        accumulate,
        x8_tokens,
        _pad2
    })]
}

/// What a [`MatMul`] reads as X.
#[derive(Clone, Copy)]
enum Input<'a> {
    /// f32 rows (`x_offset`, `x_stride` of the options).
    F32(&'a wgpu::Buffer),
    /// Rows quantized by [`crate::quantize::QuantizeX`].
    Int8(X8<'a>),
}

/// Y = X·Wᵀ (or Y += X·Wᵀ) for up to `max_tokens` tokens, with pipelines, uniforms and bind groups
/// built once. [`MatMul::set_n_tokens`] changes the token count between submits.
pub struct MatMul {
    dispatches: Vec<Dispatch>,
    /// Tokens per workgroup tile.
    tile_tokens: u32,
    params: Vec<MatMulParams>,
    max_tokens: u32,
    label: String,
}

impl MatMul {
    /// Builds the op for `max_tokens` tokens (also the initial count). `x` needs
    /// `x_offset + (max_tokens - 1) * x_stride + n_in` f32, `y` likewise with n_out.
    pub async fn new(
        ctx: &GpuContext,
        m: &QuantMatrix,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        max_tokens: u32,
        opts: MatMulOptions,
    ) -> Result<MatMul, KernelError> {
        MatMul::build(ctx, m, Input::F32(x), y, max_tokens, opts).await
    }

    /// The integer product (the `INT_DOT` variant): X from `x8`, the rows a
    /// [`crate::quantize::QuantizeX`] wrote before this op runs, and the weights staged as 8-bit
    /// integers, multiplied in packed integer dot products. For types with one
    /// ([`has_int_dot`]); another type is an error. Every tile, in less workgroup memory than
    /// the float product's ([`Tile::workgroup_bytes`]).
    /// Not bit-exact: each token's 32 elements of a unit share one scale, as in llama.cpp's
    /// q8_1. `opts.x_offset` and `opts.x_stride` do not apply (the quantizer has its own).
    /// With `opts.lanes` (CPU adapters) it is the row-per-invocation product reading the same
    /// quantized X (`shaders/matmul_rows.wgsl`'s X8) against the weights dequantized to floats.
    pub async fn new_int8(
        ctx: &GpuContext,
        m: &QuantMatrix,
        x8: X8<'_>,
        y: &wgpu::Buffer,
        max_tokens: u32,
        opts: MatMulOptions,
    ) -> Result<MatMul, KernelError> {
        MatMul::build(ctx, m, Input::Int8(x8), y, max_tokens, opts).await
    }

    async fn build(
        ctx: &GpuContext,
        m: &QuantMatrix,
        x: Input<'_>,
        y: &wgpu::Buffer,
        max_tokens: u32,
        opts: MatMulOptions,
    ) -> Result<MatMul, KernelError> {
        if max_tokens == 0 {
            return Err(KernelError::InvalidArgument("matmul with 0 tokens".into()));
        }
        let first = opts.first_row;
        let n_out = if opts.n_rows == 0 {
            m.n_out().saturating_sub(first)
        } else {
            opts.n_rows
        };
        if n_out == 0 || first + n_out > m.n_out() {
            return Err(KernelError::InvalidArgument(format!(
                "matmul rows {first}..{} of `{}` ({} rows)",
                first + n_out,
                m.label(),
                m.n_out()
            )));
        }
        let x_stride = if opts.x_stride == 0 {
            m.n_in() as u32
        } else {
            opts.x_stride
        };
        let y_stride = if opts.y_stride == 0 {
            n_out as u32
        } else {
            opts.y_stride
        };
        if (x_stride as u64) < m.n_in() || (y_stride as u64) < n_out {
            return Err(KernelError::InvalidArgument(
                "matmul row stride shorter than a row".into(),
            ));
        }
        let last = max_tokens as u64 - 1;
        let int_dot = matches!(x, Input::Int8(_));
        let (x, x8_tokens) = match x {
            Input::F32(x) => {
                check_len(
                    x,
                    opts.x_offset as u64 + last * x_stride as u64 + m.n_in(),
                    "matmul input",
                )?;
                (x, 0)
            }
            Input::Int8(x8) => {
                x8.check(m.n_in(), max_tokens, "matmul")?;
                (x8.buffer, x8.tokens)
            }
        };
        check_len(
            y,
            opts.y_offset as u64 + last * y_stride as u64 + n_out,
            "matmul output",
        )?;
        let caps = ctx.caps();
        if int_dot && !has_int_dot(m.ty()) {
            return Err(KernelError::InvalidArgument(format!(
                "matmul of `{}`: {} weights have no integer product",
                m.label(),
                m.ty().name()
            )));
        }
        // The workgroup's (rows, tokens) and the variant.
        let (block, k) = match opts.lanes {
            Some(lanes) => {
                if !crate::matmul_rows::LANES.contains(&lanes)
                    || lanes.threads > caps.max_compute_invocations_per_workgroup
                {
                    return Err(KernelError::InvalidArgument(format!(
                        "matmul lanes {lanes}: not one of the shader's shapes, or more \
                         invocations than the device's {}",
                        caps.max_compute_invocations_per_workgroup
                    )));
                }
                let read = if int_dot {
                    crate::matmul_rows::XRead::Int8
                } else {
                    crate::matmul_rows::XRead::F32 {
                        x4: m.n_in().is_multiple_of(4)
                            && opts.x_offset.is_multiple_of(4)
                            && x_stride.is_multiple_of(4),
                        subgroup: crate::matmul_rows::subgroup_width(ctx),
                    }
                };
                (
                    (lanes.block_rows(), lanes.tokens),
                    crate::matmul_rows::key(m.ty(), lanes, read),
                )
            }
            _ => {
                let tile = opts.tile(n_out.min(u32::MAX as u64) as u32, max_tokens);
                if !TILES.contains(&tile) {
                    return Err(KernelError::InvalidArgument(format!(
                        "matmul tile {tile}: not one of the shader's tiles"
                    )));
                }
                if tile.workgroup_bytes(int_dot) > caps.max_compute_workgroup_storage_size
                    || tile.workgroup_size() > caps.max_compute_invocations_per_workgroup
                {
                    return Err(KernelError::InvalidArgument(format!(
                        "matmul tile {tile}: needs {} bytes of workgroup memory and {} \
                         invocations, the device allows {} and {}",
                        tile.workgroup_bytes(int_dot),
                        tile.workgroup_size(),
                        caps.max_compute_workgroup_storage_size,
                        caps.max_compute_invocations_per_workgroup
                    )));
                }
                (
                    (tile.rows, tile.tokens),
                    key(m.ty(), ctx.use_f16(), tile, int_dot),
                )
            }
        };
        let pipeline = ctx.pipeline(&k).await?;
        let mut dispatches = Vec::new();
        let mut params = Vec::new();
        for part in m.parts() {
            // The rows of this part inside [first, first + n_out).
            let lo = first.max(part.first_row);
            let hi = (first + n_out).min(part.first_row + part.n_rows);
            if lo >= hi {
                continue;
            }
            let rows = (hi - lo) as u32;
            let row_tiles = rows.div_ceil(block.0);
            if row_tiles > ctx.caps().max_compute_workgroups_per_dimension {
                return Err(KernelError::InvalidArgument(format!(
                    "matmul: {rows} rows in one part"
                )));
            }
            let p = MatMulParams {
                n_in: m.n_in() as u32,
                n_rows: rows,
                row_bytes: m.row_bytes() as u32,
                n_tokens: max_tokens,
                x_offset: opts.x_offset,
                x_stride,
                y_offset: opts.y_offset + (lo - first) as u32,
                y_stride,
                w_row0: (lo - part.first_row) as u32,
                accumulate: u32::from(opts.accumulate),
                x8_tokens,
                ..Default::default()
            };
            let uniform = ctx.uniform_buffer(&format!("{k} params"), &p)?;
            let bind_group = crate::step::bind_group(
                ctx,
                &k.to_string(),
                &pipeline,
                &[Some(&uniform), Some(&part.buffer), Some(x), Some(y)],
            );
            let groups = (row_tiles, max_tokens.div_ceil(block.1));
            dispatches.push(Dispatch {
                pipeline: pipeline.clone(),
                bind_group,
                groups,
                _uniform: uniform,
            });
            params.push(p);
        }
        Ok(MatMul {
            dispatches,
            tile_tokens: block.1,
            params,
            max_tokens,
            label: k.to_string(),
        })
    }

    /// Sets the token count for the next submit (1..=max_tokens); writes the uniforms through the
    /// queue, so it takes effect for command buffers submitted afterwards.
    pub fn set_n_tokens(&mut self, ctx: &GpuContext, n_tokens: u32) -> Result<(), KernelError> {
        if n_tokens == 0 || n_tokens > self.max_tokens {
            return Err(KernelError::InvalidArgument(format!(
                "matmul: {n_tokens} tokens, built for 1..={}",
                self.max_tokens
            )));
        }
        for (d, p) in self.dispatches.iter_mut().zip(&mut self.params) {
            p.n_tokens = n_tokens;
            d.groups.1 = n_tokens.div_ceil(self.tile_tokens);
            ctx.queue()
                .write_buffer(&d._uniform, 0, bytemuck::bytes_of(p));
        }
        Ok(())
    }

    /// Records the dispatches (one per part of the matrix).
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.encode(pass);
        }
    }

    /// Dispatches [`MatMul::encode`] records.
    pub fn dispatch_count(&self) -> u64 {
        self.dispatches.len() as u64
    }

    /// The pipeline label of the variant in use.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// One-off Y = X·Wᵀ for `x` holding n_tokens rows of n_in (plus `y_init` when given, in
/// accumulate mode): uploads, runs and reads back. For tests and tools.
pub async fn matmul_once(
    ctx: &GpuContext,
    m: &QuantMatrix,
    x: &[f32],
    y_init: Option<&[f32]>,
) -> Result<Vec<f32>, KernelError> {
    let n_in = m.n_in() as usize;
    if x.is_empty() || !x.len().is_multiple_of(n_in) {
        return Err(KernelError::InvalidArgument(format!(
            "matmul input of {} values, rows of {n_in}",
            x.len()
        )));
    }
    let n_tokens = (x.len() / n_in) as u32;
    let n_y = n_tokens as usize * m.n_out() as usize;
    let xb = ctx.storage_buffer_init("matmul x", x)?;
    let yb = match y_init {
        Some(init) => ctx.storage_buffer_init("matmul y", init)?,
        None => ctx.storage_buffer("matmul y", n_y as u64 * 4)?,
    };
    let opts = MatMulOptions {
        accumulate: y_init.is_some(),
        ..Default::default()
    };
    let op = MatMul::new(ctx, m, &xb, &yb, n_tokens, opts).await?;
    ctx.run_pass(op.label(), |pass| op.encode(pass))?;
    ctx.read_f32(&yb, 0, n_y).await
}
