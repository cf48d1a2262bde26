//! The one error type of this crate.
//!
//! Every fallible call returns [`KernelError`]. The variants are grouped so that an app can decide
//! what to do: `AdapterNotFound`/`DeviceRequest` mean "no usable GPU", `DeviceLost` means "drop the
//! [`crate::GpuContext`] and build a new one", `OutOfMemory`/`BufferTooLarge` mean "pick a smaller
//! model or context", and the rest are bugs or bad input that should be reported.

use crate::preprocess::PreprocessError;

/// Errors from the device context, the shader pipeline cache and the ops.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// `request_adapter` found no adapter for the requested backends.
    #[error("no GPU adapter found: {0}")]
    AdapterNotFound(String),
    /// The adapter refused `request_device` (missing features, limits above the adapter's, ...).
    #[error("GPU device request failed: {0}")]
    DeviceRequest(String),
    /// The device was lost (driver reset, tab in the background too long, `destroy`). Recreate the
    /// context; every buffer and pipeline made from the old one is gone.
    #[error("GPU device lost ({reason}): {message}")]
    DeviceLost { reason: String, message: String },
    /// An allocation failed on the GPU (caught by an error scope or the uncaptured-error handler).
    #[error("GPU out of memory: {0}")]
    OutOfMemory(String),
    /// A validation or internal error reported by wgpu outside a shader compilation.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// A WGSL shader variant failed to compile; `label` is the pipeline label of the variant.
    #[error("shader `{label}` failed to compile: {message}")]
    ShaderCompile { label: String, message: String },
    /// A shader source failed to preprocess.
    #[error("shader preprocessing failed: {0}")]
    Preprocess(#[from] PreprocessError),
    /// A buffer or binding would exceed a device limit.
    #[error("buffer `{label}` needs {requested} bytes but the device allows at most {limit}")]
    BufferTooLarge {
        label: String,
        requested: u64,
        limit: u64,
    },
    /// Mapping a buffer for readback failed.
    #[error("buffer mapping failed: {0}")]
    BufferMap(String),
    /// An op was given shapes, buffers or types it cannot work with.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A GGML tensor type this op has no kernel for.
    #[error("tensor type {0} is not supported by {1}")]
    UnsupportedType(ahma_gguf::GgmlType, &'static str),
}

impl KernelError {
    /// Whether the error means the device is gone and the context must be recreated.
    pub fn is_device_lost(&self) -> bool {
        matches!(self, KernelError::DeviceLost { .. })
    }

    /// Converts a wgpu error captured by an error scope or the uncaptured-error handler.
    pub(crate) fn from_wgpu(err: wgpu::Error) -> KernelError {
        match err {
            wgpu::Error::OutOfMemory { source } => KernelError::OutOfMemory(source.to_string()),
            wgpu::Error::Validation { description, .. } => KernelError::Gpu(description),
            wgpu::Error::Internal { description, .. } => KernelError::Gpu(description),
        }
    }
}
