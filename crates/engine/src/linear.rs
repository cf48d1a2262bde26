//! Adapters over the quantized-matrix kernels of `ahma-kernels`: a weight
//! matrix ([`Matrix`]), a projection that picks the matrix-vector kernel for
//! one token and the tiled matrix-matrix kernel for a batch ([`Linear`]), and
//! the token-embedding lookup ([`Embedding`]).

use ahma_gguf::TensorInfo;
use ahma_kernels::embed::{Embed, EmbedOptions};
use ahma_kernels::matmul::{MatMul, MatMulOptions};
use ahma_kernels::matvec::{MatVec, MatVecOptions};
use ahma_kernels::quant_matrix::QuantMatrix;
use ahma_kernels::GpuContext;

use crate::EngineError;

/// A weight matrix as raw GGUF blocks on the GPU, filled while streaming.
pub(crate) struct Matrix(pub QuantMatrix);

impl Matrix {
    /// An empty matrix for tensor `t` (dims `[n_in, n_out]`).
    pub fn new(ctx: &GpuContext, t: &TensorInfo) -> Result<Self, EngineError> {
        Ok(Matrix(QuantMatrix::new(
            ctx, &t.name, t.ty, t.dims[0], t.dims[1],
        )?))
    }

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

/// `y = W x` (or `y += W x`, fusing a residual add) for the rows of a batch:
/// matrix-vector for one token (decode), tiled matrix-matrix for more
/// (prefill).
pub(crate) struct Linear {
    single: MatVec,
    batch: Option<MatMul>,
    /// Token count the matrix-matrix uniforms currently hold.
    batch_n: u32,
    /// Dispatches per product: one per buffer the matrix is split across.
    parts: u64,
}

impl Linear {
    /// `x` holds `(max_tokens, n_in)` f32 and `y` `(max_tokens, n_out)` f32.
    pub async fn new(
        ctx: &GpuContext,
        w: &Matrix,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        max_tokens: u32,
        accumulate: bool,
    ) -> Result<Self, EngineError> {
        let single = MatVec::new(
            ctx,
            &w.0,
            x,
            y,
            MatVecOptions {
                accumulate,
                ..Default::default()
            },
        )
        .await?;
        let batch = if max_tokens > 1 {
            let opts = MatMulOptions {
                accumulate,
                ..Default::default()
            };
            Some(MatMul::new(ctx, &w.0, x, y, max_tokens, opts).await?)
        } else {
            None
        };
        Ok(Linear {
            single,
            batch,
            batch_n: max_tokens,
            parts: w.0.parts().len() as u64,
        })
    }

    /// Makes the next submit's matrix-matrix product cover `n_tokens` rows
    /// (writes its uniforms only when the count changes).
    pub fn prepare(&mut self, ctx: &GpuContext, n_tokens: u32) -> Result<(), EngineError> {
        if let Some(b) = &mut self.batch {
            if n_tokens > 1 && n_tokens != self.batch_n {
                b.set_n_tokens(ctx, n_tokens)?;
                self.batch_n = n_tokens;
            }
        }
        Ok(())
    }

    /// Records the product for `n_tokens` rows (after [`Linear::prepare`]);
    /// returns the number of dispatches.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>, n_tokens: u32) -> u64 {
        match &self.batch {
            Some(b) if n_tokens > 1 => b.encode(pass),
            _ => self.single.encode(pass),
        }
        self.parts
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
