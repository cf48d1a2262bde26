//! Token embedding lookup from a [`QuantMatrix`] (`shaders/embed.wgsl`), with the token ids read
//! from a GPU buffer so a sampled token never has to visit the CPU.

use ahma_gguf::GgmlType;

use crate::context::GpuContext;
use crate::error::KernelError;
use crate::key::KernelKey;
use crate::matvec::{check_len, Dispatch};
use crate::quant_matrix::{type_define, QuantMatrix};
use crate::registry::ParamsLayout;

/// Uniform of one dispatch (one part of the matrix). Mirrors `EmbedParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct EmbedParams {
    pub n_in: u32,
    pub n_rows: u32,
    pub row_bytes: u32,
    pub first_row: u32,
    pub n_tokens: u32,
    pub tok_offset: u32,
    pub y_offset: u32,
    pub units: u32,
}

/// Threads per workgroup (one per 32-element unit).
const WG: u32 = 64;

/// The key of one variant.
pub fn key(ty: GgmlType) -> KernelKey {
    KernelKey::new("embed", "main").define(&type_define(ty), 1)
}

/// Every variant the op can request.
pub fn variants() -> Vec<KernelKey> {
    GgmlType::ALL.into_iter().map(key).collect()
}

pub fn params_layouts() -> Vec<ParamsLayout> {
    vec![crate::params_layout!(EmbedParams {
        n_in,
        n_rows,
        row_bytes,
        first_row,
        n_tokens,
        tok_offset,
        y_offset,
        units
    })]
}

/// Where the ids come from and where the rows go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmbedOptions {
    /// First id in the token buffer.
    pub tok_offset: u32,
    /// Element of the output receiving (token 0, element 0); rows are n_in apart.
    pub y_offset: u32,
}

/// Y[t, :] = row `tokens[t]` of the embedding matrix, for up to `max_tokens` ids.
pub struct Embed {
    dispatches: Vec<Dispatch>,
    params: Vec<EmbedParams>,
    max_tokens: u32,
    label: String,
}

impl Embed {
    /// Builds the op. `tokens` needs `tok_offset + max_tokens` u32, `y` needs
    /// `y_offset + max_tokens * n_in` f32.
    pub async fn new(
        ctx: &GpuContext,
        m: &QuantMatrix,
        tokens: &wgpu::Buffer,
        y: &wgpu::Buffer,
        max_tokens: u32,
        opts: EmbedOptions,
    ) -> Result<Embed, KernelError> {
        if max_tokens == 0 {
            return Err(KernelError::InvalidArgument("embed with 0 tokens".into()));
        }
        check_len(
            tokens,
            opts.tok_offset as u64 + max_tokens as u64,
            "embed token ids",
        )?;
        check_len(
            y,
            opts.y_offset as u64 + max_tokens as u64 * m.n_in(),
            "embed output",
        )?;
        let k = key(m.ty());
        let pipeline = ctx.pipeline(&k).await?;
        let units = (m.n_in() as u32).div_ceil(32);
        let mut dispatches = Vec::new();
        let mut params = Vec::new();
        for part in m.parts() {
            let p = EmbedParams {
                n_in: m.n_in() as u32,
                n_rows: part.n_rows as u32,
                row_bytes: m.row_bytes() as u32,
                first_row: part.first_row as u32,
                n_tokens: max_tokens,
                tok_offset: opts.tok_offset,
                y_offset: opts.y_offset,
                units,
            };
            let uniform = ctx.uniform_buffer(&format!("{k} params"), &p)?;
            let bind_group = crate::step::bind_group(
                ctx,
                &k.to_string(),
                &pipeline,
                &[Some(&uniform), Some(&part.buffer), Some(tokens), Some(y)],
            );
            let groups = (units.div_ceil(WG), max_tokens);
            dispatches.push(Dispatch {
                pipeline: pipeline.clone(),
                bind_group,
                groups,
                _uniform: uniform,
            });
            params.push(p);
        }
        Ok(Embed {
            dispatches,
            params,
            max_tokens,
            label: k.to_string(),
        })
    }

    /// Sets the number of ids for the next submit (1..=max_tokens).
    pub fn set_n_tokens(&mut self, ctx: &GpuContext, n_tokens: u32) -> Result<(), KernelError> {
        if n_tokens == 0 || n_tokens > self.max_tokens {
            return Err(KernelError::InvalidArgument(format!(
                "embed: {n_tokens} tokens, built for 1..={}",
                self.max_tokens
            )));
        }
        for (d, p) in self.dispatches.iter_mut().zip(&mut self.params) {
            p.n_tokens = n_tokens;
            d.groups.1 = n_tokens;
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

    pub fn label(&self) -> &str {
        &self.label
    }
}

/// One-off lookup of `ids` (each must be < n_out): uploads, runs and reads back
/// (ids.len(), n_in) values. For tests and tools.
pub async fn embed_once(
    ctx: &GpuContext,
    m: &QuantMatrix,
    ids: &[u32],
) -> Result<Vec<f32>, KernelError> {
    if ids.is_empty() {
        return Err(KernelError::InvalidArgument("embed of no ids".into()));
    }
    if let Some(bad) = ids.iter().find(|&&id| id as u64 >= m.n_out()) {
        return Err(KernelError::InvalidArgument(format!(
            "token id {bad} >= vocabulary {}",
            m.n_out()
        )));
    }
    let n = ids.len() * m.n_in() as usize;
    let tb = ctx.storage_buffer_init("embed ids", ids)?;
    let yb = ctx.storage_buffer("embed y", n as u64 * 4)?;
    let op = Embed::new(ctx, m, &tb, &yb, ids.len() as u32, EmbedOptions::default()).await?;
    ctx.run_pass(op.label(), |pass| op.encode(pass))?;
    ctx.read_f32(&yb, 0, n).await
}
