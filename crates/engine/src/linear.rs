//! Adapters over the quantized-matrix kernels of `ahma-kernels`: a weight
//! matrix ([`Matrix`]), a projection that picks the matrix-vector kernel for
//! one token and the tiled matrix-matrix kernel for a batch ([`Linear`]), and
//! the token-embedding lookup ([`Embedding`]).

use ahma_gguf::TensorInfo;
use ahma_kernels::embed::{Embed, EmbedOptions};
use ahma_kernels::matmul::{has_int_dot, MatMul, MatMulOptions};
use ahma_kernels::matvec::{MatVec, MatVecOptions};
use ahma_kernels::quant_matrix::QuantMatrix;
use ahma_kernels::{GpuContext, X8};

use crate::{EngineError, LoadOptions};

/// A weight matrix as raw GGUF blocks on the GPU, filled while streaming.
pub(crate) struct Matrix(pub QuantMatrix);

/// One tensor's rows inside a [`Stack`].
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub name: String,
    pub first_row: u64,
    pub rows: u64,
}

/// The rows of one or more tensors of the same type and row length in one matrix (q/k/v,
/// gate/up), in order, so that one decode dispatch computes all of them. A stack of several
/// members always fits one buffer.
pub(crate) struct Stack {
    pub m: Matrix,
    pub members: Vec<Member>,
}

impl Stack {
    /// An empty stack of the tensors `ts` (all of one type and row length).
    pub fn new(ctx: &GpuContext, ts: &[&TensorInfo]) -> Result<Self, EngineError> {
        let t0 = ts[0];
        let mut members = Vec::with_capacity(ts.len());
        let mut rows = 0;
        for t in ts {
            if t.ty != t0.ty || t.dims[0] != t0.dims[0] {
                return Err(EngineError::BadTensor {
                    name: t.name.clone(),
                    reason: format!("cannot stack with {}", t0.name),
                });
            }
            members.push(Member {
                name: t.name.clone(),
                first_row: rows,
                rows: t.dims[1],
            });
            rows += t.dims[1];
        }
        let label = ts
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join("+");
        let m = QuantMatrix::new(ctx, &label, t0.ty, t0.dims[0], rows)?;
        if ts.len() > 1 && m.parts().len() != 1 {
            return Err(EngineError::BadTensor {
                name: label,
                reason: "stacked matrix does not fit one buffer".into(),
            });
        }
        Ok(Stack {
            m: Matrix(m),
            members,
        })
    }

    /// Byte offset of member `i` in the matrix.
    pub fn offset(&self, i: usize) -> u64 {
        self.members[i].first_row * self.m.0.row_bytes()
    }
}

impl Matrix {
    pub fn write(
        &mut self,
        ctx: &GpuContext,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), EngineError> {
        Ok(self.0.write(ctx, offset, bytes)?)
    }

    pub fn finish(&mut self, ctx: &GpuContext) -> Result<(), EngineError> {
        Ok(self.0.finish(ctx)?)
    }
}

/// The tiled matrix-matrix product of a batch over rows `first_row .. first_row + rows` of a
/// matrix (all of it, or one member of a [`Stack`]), for prefill.
pub(crate) struct Batch {
    op: MatMul,
    /// Token count the uniforms currently hold.
    n: u32,
    /// Whether it reads X from the quantized input (the caller quantizes X first).
    int8: bool,
}

impl Batch {
    /// `x` holds `(max_tokens, n_in)` f32 and `y` `(max_tokens, rows)` f32. With `x8` (the
    /// engine passes it under `LoadOptions::matmul_int_dot`) a matrix of a type with an
    /// integer product reads X from there instead, in 8-bit integers.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        ctx: &GpuContext,
        w: &Matrix,
        first_row: u64,
        rows: u64,
        x: &wgpu::Buffer,
        x8: Option<X8<'_>>,
        y: &wgpu::Buffer,
        max_tokens: u32,
        accumulate: bool,
        load: &LoadOptions,
    ) -> Result<Self, EngineError> {
        let opts = MatMulOptions {
            accumulate,
            first_row,
            n_rows: rows,
            tile: load.matmul_tile,
            lanes: load.matmul_lanes_on(ctx),
            ..Default::default()
        };
        let (op, int8) = match x8 {
            Some(x8) if has_int_dot(w.0.ty()) => (
                MatMul::new_int8(ctx, &w.0, x8, y, max_tokens, opts).await?,
                true,
            ),
            _ => (MatMul::new(ctx, &w.0, x, y, max_tokens, opts).await?, false),
        };
        Ok(Batch {
            op,
            n: max_tokens,
            int8,
        })
    }

    /// Whether the product reads the quantized input (see [`Batch::new`]).
    pub fn int8(&self) -> bool {
        self.int8
    }

    /// Makes the next submit cover `n_tokens` rows (writes the uniforms only when the count
    /// changes).
    pub fn prepare(&mut self, ctx: &GpuContext, n_tokens: u32) -> Result<(), EngineError> {
        if n_tokens != self.n {
            self.op.set_n_tokens(ctx, n_tokens)?;
            self.n = n_tokens;
        }
        Ok(())
    }

    /// Records the product; returns the number of dispatches.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) -> u64 {
        self.op.encode(pass);
        self.op.dispatch_count()
    }
}

/// `y = W x` (or `y += W x`, fusing a residual add) for the rows of a batch:
/// matrix-vector for one token (decode), tiled matrix-matrix for more
/// (prefill).
pub(crate) struct Linear {
    single: MatVec,
    batch: Option<Batch>,
}

impl Linear {
    /// `x` holds `(max_tokens, n_in)` f32 and `y` `(max_tokens, n_out)` f32; `x8` as for
    /// [`Batch::new`].
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        ctx: &GpuContext,
        w: &Matrix,
        x: &wgpu::Buffer,
        x8: Option<X8<'_>>,
        y: &wgpu::Buffer,
        max_tokens: u32,
        accumulate: bool,
        opts: &LoadOptions,
    ) -> Result<Self, EngineError> {
        let single = MatVec::new(
            ctx,
            &w.0,
            x,
            y,
            MatVecOptions {
                accumulate,
                ..opts.matvec_options(ctx)
            },
        )
        .await?;
        let batch = if max_tokens > 1 {
            let rows = w.0.n_out();
            Some(Batch::new(ctx, w, 0, rows, x, x8, y, max_tokens, accumulate, opts).await?)
        } else {
            None
        };
        Ok(Linear { single, batch })
    }

    /// Makes the next submit's matrix-matrix product cover `n_tokens` rows
    /// (writes its uniforms only when the count changes).
    pub fn prepare(&mut self, ctx: &GpuContext, n_tokens: u32) -> Result<(), EngineError> {
        match &mut self.batch {
            Some(b) if n_tokens > 1 => b.prepare(ctx, n_tokens),
            _ => Ok(()),
        }
    }

    /// Whether a batch's product reads the quantized input (see [`Batch::new`]).
    pub fn int8(&self) -> bool {
        self.batch.as_ref().is_some_and(Batch::int8)
    }

    /// Records the product for `n_tokens` rows (after [`Linear::prepare`]);
    /// returns the number of dispatches.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) -> u64 {
        match &self.batch {
            Some(b) if n_tokens > 1 => b.encode(pass),
            _ => {
                self.single.encode(pass);
                self.single.dispatch_count()
            }
        }
    }
}

/// Token-embedding rows for the ids in a GPU buffer.
pub(crate) struct Embedding {
    op: Embed,
    /// Token count the uniforms currently hold.
    n: u32,
    /// Dispatches per lookup (one per buffer of the split matrix).
    parts: u64,
}

impl Embedding {
    /// `ids` holds `(max_tokens)` u32, `out` `(max_tokens, n_embd)` f32.
    pub async fn new(
        ctx: &GpuContext,
        w: &Matrix,
        ids: &wgpu::Buffer,
        out: &wgpu::Buffer,
        max_tokens: u32,
    ) -> Result<Self, EngineError> {
        let op = Embed::new(ctx, &w.0, ids, out, max_tokens, EmbedOptions::default()).await?;
        Ok(Embedding {
            op,
            n: max_tokens,
            parts: w.0.parts().len() as u64,
        })
    }

    /// Makes the next submit look up `n_tokens` ids.
    pub fn prepare(&mut self, ctx: &GpuContext, n_tokens: u32) -> Result<(), EngineError> {
        if n_tokens != self.n {
            self.op.set_n_tokens(ctx, n_tokens)?;
            self.n = n_tokens;
        }
        Ok(())
    }

    /// Records the lookup; returns the number of dispatches.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) -> u64 {
        self.op.encode(pass);
        self.parts
    }
}
