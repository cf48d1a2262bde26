//! Plain f32 CPU Llama forward pass: the oracle for the GPU engine.
//!
//! This crate is meant to be read. It follows karpathy/llama2.c: a [`Config`], the
//! [`Weights`] (every field with its shape), a [`RunState`] of scratch buffers, a
//! handful of short primitives in [`ops`], and [`Model::forward`], which reads like the
//! Llama paper. There is no parallelism and no cleverness, so that when the GPU engine
//! and this crate disagree, the bug is almost certainly on the GPU side.
//!
//! Two choices are not llama2.c's:
//!
//! * Weights stay **quantized in memory** (the raw GGUF bytes of each tensor) and are
//!   dequantized one row at a time inside the matrix-vector product, via
//!   [`ahma_gguf::dequantize`]. That makes `--backend cpu` usable on a real Ahma-3B file
//!   (2-4 GB quantized) without 14 GB of f32, at the price of speed.
//! * RoPE is llama.cpp's NORMAL mode, the one `LLM_ARCH_LLAMA` uses: it rotates adjacent
//!   pairs `(x[2i], x[2i+1])` of the first `rope_dim` dimensions of each head. GGUF
//!   converters permute the q/k rows so that this equals Hugging Face's rotate-half.
//!
//! ```no_run
//! let mut model = ahma_reference::Model::load("ahma-3b-instruct.Q4_0.gguf")?;
//! let logits = model.forward(1, 0)?; // <s> at position 0
//! println!("{} logits", logits.len());
//! # Ok::<(), ahma_reference::ReferenceError>(())
//! ```

mod error;
mod model;
pub mod ops;
mod tensor;

pub use error::ReferenceError;
pub use model::{Config, LayerWeights, Model, RunState, Weights};
pub use tensor::QTensor;
