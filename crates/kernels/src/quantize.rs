//! A prefill batch's input in 8-bit integers (`shaders/quantize.wgsl`), for the integer mat-mul
//! ([`MatMul::new_int8`](crate::matmul::MatMul::new_int8)): one pass over X that every product
//! of the same input reads, instead of each mat-mul workgroup quantizing its tokens again.

use crate::context::GpuContext;
use crate::error::KernelError;
use crate::key::KernelKey;
use crate::matvec::{check_len, Dispatch};
use crate::registry::ParamsLayout;
use crate::step::key;

/// Invocations per workgroup (one per 32-element unit of a token).
pub const WG: u32 = 64;

/// Bytes of one quantized unit: 32 integers in eight words, then scale, integer sum and exact
/// sum (three `vec4<u32>`).
pub const RECORD_BYTES: u64 = 48;

/// Mirror of `QuantizeParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct QuantizeParams {
    pub n_in: u32,
    pub n_tokens: u32,
    pub x_offset: u32,
    pub x_stride: u32,
    pub tokens: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

pub fn kernel_key() -> KernelKey {
    key("quantize", "main", &[("WG", WG.to_string())]).flag("INT_DOT", true)
}

pub fn variants() -> Vec<KernelKey> {
    vec![kernel_key()]
}

pub fn params_layouts() -> Vec<ParamsLayout> {
    vec![crate::params_layout!(QuantizeParams {
        n_in,
        n_tokens,
        x_offset,
        x_stride,
        tokens,
        _pad0,
        _pad1,
        _pad2
    })]
}

/// Bytes a quantized X of rows of `n_in` elements takes for `tokens` tokens.
pub fn x8_bytes(n_in: u64, tokens: u32) -> u64 {
    n_in.div_ceil(32) * tokens as u64 * RECORD_BYTES
}

/// A buffer holding X quantized by [`QuantizeX`], with its token capacity: unit u of token t
/// is record `u * tokens + t` (see `shaders/quantize.wgsl`). Several inputs of different
/// widths can share one buffer in turn, as long as each is read before the next is written.
#[derive(Clone, Copy, Debug)]
pub struct X8<'a> {
    pub buffer: &'a wgpu::Buffer,
    /// Records per unit: the most tokens it holds.
    pub tokens: u32,
}

impl X8<'_> {
    /// Checks that it has room for `max_tokens` tokens and that the buffer holds rows of `n_in`
    /// elements for its token capacity.
    pub fn check(&self, n_in: u64, max_tokens: u32, what: &str) -> Result<(), KernelError> {
        if self.tokens < max_tokens {
            return Err(KernelError::InvalidArgument(format!(
                "{what}: {max_tokens} tokens over a quantized input of {}",
                self.tokens
            )));
        }
        let need = x8_bytes(n_in, self.tokens);
        if self.buffer.size() < need {
            return Err(KernelError::InvalidArgument(format!(
                "{what}: quantized input holds {} bytes, needs {need}",
                self.buffer.size()
            )));
        }
        Ok(())
    }
}

/// Where the f32 rows to quantize are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuantizeOptions {
    /// First element of X.
    pub x_offset: u32,
    /// Elements between rows of X; 0 means n_in.
    pub x_stride: u32,
}

/// Quantizes up to `max_tokens` rows of `n_in` f32 into an [`X8`], with its pipeline, uniform
/// and bind group built once; [`QuantizeX::set_n_tokens`] changes the count between submits.
pub struct QuantizeX {
    dispatch: Dispatch,
    params: QuantizeParams,
    max_tokens: u32,
}

impl QuantizeX {
    pub async fn new(
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        out: X8<'_>,
        n_in: u32,
        max_tokens: u32,
        opts: QuantizeOptions,
    ) -> Result<QuantizeX, KernelError> {
        if max_tokens == 0 || n_in == 0 {
            return Err(KernelError::InvalidArgument(format!(
                "quantize {max_tokens} tokens of {n_in} elements"
            )));
        }
        let x_stride = if opts.x_stride == 0 {
            n_in
        } else {
            opts.x_stride
        };
        if x_stride < n_in {
            return Err(KernelError::InvalidArgument(
                "quantize row stride shorter than a row".into(),
            ));
        }
        check_len(
            x,
            opts.x_offset as u64 + (max_tokens as u64 - 1) * x_stride as u64 + n_in as u64,
            "quantize input",
        )?;
        out.check(n_in as u64, max_tokens, "quantize")?;
        let k = kernel_key();
        let pipeline = ctx.pipeline(&k).await?;
        let params = QuantizeParams {
            n_in,
            n_tokens: max_tokens,
            x_offset: opts.x_offset,
            x_stride,
            tokens: out.tokens,
            ..Default::default()
        };
        let uniform = ctx.uniform_buffer("quantize params", &params)?;
        let bind_group = crate::step::bind_group(
            ctx,
            &k.to_string(),
            &pipeline,
            &[Some(&uniform), Some(x), Some(out.buffer)],
        );
        Ok(QuantizeX {
            dispatch: Dispatch {
                pipeline,
                bind_group,
                groups: (n_in.div_ceil(32).div_ceil(WG), max_tokens),
                _uniform: uniform,
            },
            params,
            max_tokens,
        })
    }

    /// Sets the token count for the next submit (1..=max_tokens).
    pub fn set_n_tokens(&mut self, ctx: &GpuContext, n_tokens: u32) -> Result<(), KernelError> {
        if n_tokens == 0 || n_tokens > self.max_tokens {
            return Err(KernelError::InvalidArgument(format!(
                "quantize: {n_tokens} tokens, built for 1..={}",
                self.max_tokens
            )));
        }
        if n_tokens != self.params.n_tokens {
            self.params.n_tokens = n_tokens;
            self.dispatch.groups.1 = n_tokens;
            ctx.queue()
                .write_buffer(&self.dispatch._uniform, 0, bytemuck::bytes_of(&self.params));
        }
        Ok(())
    }

    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.dispatch.encode(pass);
    }
}
