//! The Llama model on the GPU: streaming weights loader, KV cache, forward,
//! sampling, generation loop.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ahma_engine::EngineError> {
//! use ahma_engine::{load_file, LoadOptions, SamplingParams};
//! let ctx = std::sync::Arc::new(ahma_kernels::GpuContext::new(Default::default()).await?);
//! let mut model = load_file(ctx, "ahma-3b.Q4_K_M.gguf", LoadOptions::default()).await?;
//! model.set_sampling(SamplingParams { temperature: 0.7, top_p: 0.9, ..SamplingParams::greedy() })?;
//! let mut token = model.prefill(&[1, 3, 4]).await?;
//! for _ in 0..16 {
//!     println!("{token}");
//!     token = model.decode().await?;
//! }
//! # Ok(()) }
//! ```
//!
//! The API is async on every target; natively drive it with `pollster::block_on`.
//!
//! Layout: [`plan`] is the fit check (pure arithmetic), [`loader`] streams a
//! GGUF into GPU buffers, [`model`] owns the buffers and prebuilt kernels and
//! runs the forward pass; `linear` adapts the quantized matrix kernels of
//! `ahma-kernels` and `readback` maps buffers on native and web alike.

mod error;
mod linear;
pub mod loader;
pub mod model;
mod options;
pub mod plan;
mod profile;
mod readback;

pub use error::EngineError;
#[cfg(not(target_arch = "wasm32"))]
pub use loader::load_file;
pub use loader::{LoadProgress, ModelLoader};
pub use model::{Clock, Model, StepStats};
pub use options::{LoadOptions, SamplingParams};
pub use plan::{DeviceBudget, MemoryPlan};
pub use profile::{OpTime, Profiler};
