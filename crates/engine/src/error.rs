//! The engine's error type. Every failure a caller can act on has its own
//! variant: a model that does not fit, a prompt that overflows the context, or
//! a lost device (recover by recreating the [`ahma_kernels::GpuContext`] and
//! reloading).

use ahma_gguf::{GgmlType, GgufError};
use ahma_kernels::KernelError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The GGUF stream or header is malformed.
    #[error(transparent)]
    Gguf(#[from] GgufError),

    /// A GPU-side failure: adapter, device, shader, buffer limits.
    #[error(transparent)]
    Kernel(KernelError),

    /// The device was lost (driver reset, browser reclaimed the GPU). Recreate
    /// the context and reload the model; the old one is unusable.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),

    /// The device ran out of memory. Recreate the context, then load with a
    /// shorter context or a smaller model.
    #[error("GPU out of memory: {0}")]
    OutOfMemory(String),

    /// The model (plus KV cache and scratch for the chosen context) does not fit
    /// the adapter; `reason` says which limit and by how much.
    #[error("model does not fit this GPU: {reason}")]
    DoesNotFit { reason: String },

    /// The file is not a Llama model this engine runs.
    #[error("unsupported model: {0}")]
    Unsupported(String),

    /// A tensor the model needs has the wrong shape or type.
    #[error("tensor {name:?}: {reason}")]
    BadTensor { name: String, reason: String },

    /// A weight type the kernels cannot run.
    #[error("tensor {name:?} has type {ty}, which the GPU kernels do not support")]
    UnsupportedType { name: String, ty: GgmlType },

    /// More tokens than the context has room for. The session is unchanged.
    #[error("context overflow: {requested} token(s) requested but only {room} of {n_ctx} positions are free")]
    ContextOverflow {
        requested: usize,
        room: usize,
        n_ctx: usize,
    },

    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary (n_vocab {n_vocab})")]
    BadToken { id: u32, n_vocab: usize },

    /// Invalid caller input (sampling parameters, empty prompt, options).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The byte stream ended before every tensor arrived, or the loader was
    /// used out of order.
    #[error("incomplete model stream: {0}")]
    Incomplete(String),
}

impl From<KernelError> for EngineError {
    fn from(e: KernelError) -> Self {
        match e {
            KernelError::DeviceLost { reason, message } => {
                EngineError::DeviceLost(format!("{reason}: {message}"))
            }
            KernelError::OutOfMemory(m) => EngineError::OutOfMemory(m),
            e => EngineError::Kernel(e),
        }
    }
}

impl EngineError {
    /// Whether the app must recreate the GPU context (and reload the model)
    /// before trying again.
    pub fn needs_new_device(&self) -> bool {
        matches!(
            self,
            EngineError::DeviceLost(_) | EngineError::OutOfMemory(_)
        )
    }
}
