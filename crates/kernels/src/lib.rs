//! wgpu device context, WGSL kernels from `shaders/`, variant preprocessor and pipeline cache.
//!
//! # How the pieces fit
//!
//! - [`GpuContext`] owns the `wgpu::Device`/`Queue`. [`GpuContext::new`] asks for the adapter's
//!   maximum limits plus `shader-f16` and subgroups when present; [`GpuContext::from_parts`]
//!   wraps a device made elsewhere (tests, the browser). [`Caps`] is what the device was granted;
//!   [`ContextOptions`] can force the f32 kernels (`force_f32`) or the workgroup-memory
//!   reductions (`disable_subgroups`). Kernels ask [`GpuContext::use_f16`] and
//!   [`GpuContext::use_subgroups`] to pick variants.
//! - Shaders live in the workspace's `shaders/` directory, one file per op plus shared fragments,
//!   and are compiled into the crate ([`registry::OPS`]). The [`preprocess`] module turns one
//!   file into variants with `#include`, `#define`, `#ifdef`/`#ifndef`/`#if`/`#else`/`#endif`
//!   and identifier substitution.
//! - A [`KernelKey`] (shader stem, entry point, defines) names one variant; its `Display` is the
//!   pipeline label (`matvec_f16_subgroups_type_q4_0_wg256`). [`GpuContext::pipeline`] compiles
//!   and caches it, returning compile errors as [`KernelError::ShaderCompile`].
//! - Every op is `shaders/<op>.wgsl` + `src/<op>.rs` holding its `#[repr(C)]` params struct
//!   (same name and field names as the WGSL struct), `variants()`, `params_layouts()`, and a
//!   struct that builds pipeline, uniforms and bind groups once (`new`) and records its dispatch
//!   into a caller's compute pass (`encode`). Register it with one `op!(name)` line in
//!   [`registry::OPS`]; the CPU tests then validate every variant with naga and check the params
//!   layout against naga's layouter.
//!
//! # Weights and the weight kernels
//!
//! - [`QuantMatrix`]: a GGUF matrix (`dims = [n_in, n_out]`, n_out rows of n_in elements) stored
//!   as its raw block bytes, split by whole rows into parts no larger than the storage-binding
//!   limit, filled by [`QuantMatrix::write`] in chunks of any size and alignment (then
//!   [`QuantMatrix::finish`]). Matrices of the same type and row length can be *stacked*: create
//!   one matrix with the rows of several tensors and write each tensor at its row offset
//!   (`first_row * row_bytes()`). A plain [`MatVec`] over stacked q/k(/v) then computes all of
//!   them in one dispatch into consecutive outputs; stacked gate/up feed the fused SwiGLU matvec.
//! - [`MatVec`] (decode, one token): `y = W·x`, `y += W·x` (`accumulate`: the residual add), or
//!   `y = silu(W_gate·x)·(W_up·x)` (`swiglu`); [`MatVec::new_fused`] adds an RMSNorm in front
//!   (`x` is then the raw residual stream) and splits the rows of a stacked matrix over up to
//!   three outputs (q, k, v). Every GGML type the Ahma files use: F32, F16,
//!   BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS.
//! - [`MatMul`] (prefill, n tokens): `Y = X·Wᵀ` (or `+=`), X and Y with row strides and offsets,
//!   over all rows or a row range (one member of a stacked matrix);
//!   [`MatMul::set_n_tokens`] changes the count between submits. [`MatMul::new_int8`] reads X
//!   in 8-bit integers from an [`X8`] buffer that [`QuantizeX`] fills once per input.
//!   [`MatMulOptions::lanes`] lays the float product out for CPU adapters ([`Lanes`]: 1, 2,
//!   4 or 8 weight rows per invocation, no workgroup memory), as `Attention::new_with` does attention.
//! - [`Embed`]: rows of `token_embd` for ids read from a GPU buffer.
//!
//! Each op is built once (`new(ctx, &matrix, &in, &out, ...)`, async because pipeline compile
//! errors are collected through an error scope) and recorded with `encode(&mut pass)`; each has
//! a `*_once` helper (`matvec::matvec_once`, ...) that uploads, runs and reads back, for tests
//! and tools. `examples/kernel_bench.rs` times them.
//!
//! # Conventions for shaders
//!
//! - Flag `F16`: the variant uses f16 arithmetic (`enable f16;` is prepended automatically).
//! - Flag `SUBGROUPS`: the variant uses subgroup builtins (`enable subgroups;` is prepended for
//!   browsers).
//! - `WG`: workgroup size when an op makes it tunable.
//! - Each binding carries a shape comment; params structs are uniforms at `@binding(0)` unless the
//!   op says otherwise.
//!
//! # Errors
//!
//! [`KernelError`] covers adapter/device failures, device loss ([`KernelError::is_device_lost`]:
//! recreate the context), out-of-memory, shader compile and preprocessing errors, and limits.
//! [`GpuContext::check`] reports device loss and errors wgpu raised outside an error scope.

pub mod context;
pub mod embed;
pub mod error;
pub mod key;
pub mod matmul;
pub mod matmul_rows;
pub mod matvec;
pub mod pipeline;
pub mod preprocess;
pub mod quant_matrix;
pub mod quantize;
pub mod read_probe;
pub mod registry;
// Helper E: norm, rope, attention, element-wise, sampling and the shared step uniform.
pub mod attention;
pub mod attention_rows;
pub mod elementwise;
pub mod rms_norm;
pub mod rope;
pub mod sample;
pub mod step;

pub use context::{
    cooperative_matrix_name, AdapterSummary, Caps, ContextOptions, GpuContext, ShaderChecks,
};
pub use embed::{Embed, EmbedOptions};
pub use error::KernelError;
pub use key::KernelKey;
pub use matmul::{MatMul, MatMulOptions};
pub use matmul_rows::Lanes;
pub use matvec::{MatVec, MatVecNorm, MatVecOptions, MatVecOutput, MatVecRope, MatVecShape};
pub use quant_matrix::{MatrixPart, QuantMatrix};
pub use quantize::{QuantizeX, X8};
pub use registry::ParamsLayout;
