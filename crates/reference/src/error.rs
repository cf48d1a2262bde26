//! The error type of the reference forward.

use ahma_gguf::{GgmlType, GgufError};

/// Everything that can go wrong while loading a model or running the reference forward.
/// Bad input (a broken file, a token outside the vocabulary, a position out of order)
/// yields one of these, never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The GGUF file could not be read, or its header or configuration is invalid.
    #[error(transparent)]
    Gguf(#[from] GgufError),

    /// A tensor the forward needs is absent (the configuration check normally catches this).
    #[error("required tensor {name:?} is missing")]
    MissingTensor { name: String },

    /// A tensor's raw byte count does not match its type and shape.
    #[error("tensor {name:?}: {found} bytes of {ty}, expected {expected} for its shape")]
    TensorBytes {
        name: String,
        ty: GgmlType,
        expected: u64,
        found: u64,
    },

    /// A tensor does not fit in this machine's address space.
    #[error("tensor {name:?} is too large for this target")]
    TooLarge { name: String },

    /// A token id outside the vocabulary.
    #[error("token id {token} is out of range: the vocabulary has {n_vocab} tokens")]
    TokenOutOfRange { token: u32, n_vocab: usize },

    /// Positions must be fed in order: `pos` may repeat or rewind an earlier position
    /// (the cache is truncated there) but may not skip ahead of the cached ones.
    #[error("position {pos} skips ahead: only {cached} position(s) are cached")]
    PositionGap { pos: usize, cached: usize },

    /// The position is beyond the context length the model was trained for.
    #[error("position {pos} is beyond the context length {n_ctx}")]
    ContextFull { pos: usize, n_ctx: usize },

    /// A buffer or index handed to a public primitive does not fit the tensor.
    #[error("{what}: expected {expected}, got {found}")]
    Length {
        what: &'static str,
        expected: usize,
        found: usize,
    },

    /// A row index past the end of a tensor.
    #[error("row {row} of tensor {name:?} is out of range ({rows} rows)")]
    RowOutOfRange {
        name: String,
        row: usize,
        rows: usize,
    },

    /// Generation needs at least one prompt token.
    #[error("the prompt is empty")]
    EmptyPrompt,
}
