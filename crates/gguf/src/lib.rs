//! GGUF container reading and GGML block formats with CPU dequantizers, for the Ahma
//! (Finnish Llama) models.
//!
//! # What is here
//!
//! * [`Gguf`]: a validated GGUF v2/v3 header (metadata in file order, tensor table,
//!   alignment, data offset). [`Gguf::read_header`] reads one from any reader (exactly the
//!   header bytes, nothing more), [`Gguf::open`] from a file (and checks the file holds
//!   every tensor), [`Gguf::read_tensor_bytes`] reads one tensor's raw bytes.
//! * [`StreamParser`]: the same parse as a push parser for data that arrives in pieces
//!   (a browser `fetch()` body). It buffers only the header, passes tensor data through
//!   as slices of the fed chunk, and reports [`StreamEvent`]s. A 4 GB model never sits
//!   in memory.
//! * [`LlamaConfig::from_gguf`]: typed Llama hyper-parameters, checked against the
//!   tensor table (names in [`names`]).
//! * [`GgmlType`], [`tensor_bytes`], [`dequantize`]: block geometry and bit-exact (to
//!   gguf-py) CPU dequantizers for F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL,
//!   Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS.
//! * [`GgufWriter`]: a minimal writer for synthetic test models.
//!
//! # Untrusted input
//!
//! Every count and length in a file is checked against [`Limits`] (and, when the input
//! length is known, against the bytes that remain) before memory is reserved for it, so
//! hostile or corrupt files produce a typed [`GgufError`], never a panic or a huge
//! allocation. Integer metadata is accepted in any integer width, because writers differ
//! (gguf-py writes most counts as `u32`). GGUF v1 is rejected as unsupported.
//!
//! # Conventions
//!
//! Tensor `dims` are ggml's `ne`: `dims[0]` is the contiguous row length. A weight with
//! dims `[n_in, n_out]` is stored as `n_out` rows of `n_in` elements, and computes
//! `y[r] = dot(row r, x)`.
//!
//! # Testing
//!
//! * Unit tests per error class (`tests/errors.rs`) and property tests over random bytes,
//!   truncations and bit flips, and random chunkings of the stream (`tests/props.rs`).
//! * Oracle tests in the workspace `tests/` crate (`gguf_dequant.rs`, `gguf_parse.rs`)
//!   compare against gguf-py 0.19.0 through fixtures written by
//!   `tests/gen/gen_dequant_fixtures.py`.
//! * A libFuzzer target (`fuzz/`, outside the workspace) runs both parsers, `LlamaConfig`
//!   and the dequantizers: `RUSTC_BOOTSTRAP=1 cargo fuzz run parse` in this directory
//!   (add `-s none` where sanitizers are unavailable).
//!
//! The crate uses only `std` (plus `half` and `thiserror`) and builds for
//! `wasm32-unknown-unknown`; the file helpers simply fail there.

mod dequant;
mod error;
mod gguf;
mod header;
mod llama;
mod stream;
mod types;
mod value;
pub mod write;

pub use dequant::{dequantize, dequantize_to_vec, IQ4NL_VALUES};
pub use error::GgufError;
pub use gguf::{Gguf, TensorInfo};
pub use header::Limits;
pub use llama::{names, LlamaConfig};
pub use stream::{StreamEvent, StreamParser};
pub use types::{tensor_bytes, GgmlType};
pub use value::Value;
pub use write::GgufWriter;
