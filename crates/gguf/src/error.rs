//! The one error type of this crate.
//!
//! Every way a GGUF file (or a block buffer) can be wrong has its own variant, so callers
//! and tests can tell the classes apart without parsing messages.

use crate::GgmlType;

/// Everything that can go wrong while reading a GGUF file, validating a Llama model or
/// dequantizing blocks. Bad input always yields one of these, never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// Reading from the underlying file or reader failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: magic bytes are {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },

    /// Only GGUF v2 and v3 are supported (v1 used 32-bit counts and is long obsolete).
    #[error("unsupported GGUF version {version} (only 2 and 3 are supported)")]
    UnsupportedVersion { version: u32 },

    /// The input ended before `what` was complete.
    #[error("truncated input: {what} at byte {offset} needs {needed} more byte(s)")]
    Truncated {
        what: &'static str,
        offset: u64,
        needed: u64,
    },

    /// A count or length in the file is larger than the configured [`crate::Limits`] allow.
    #[error("{what} is {value}, over the limit of {limit}")]
    LimitExceeded {
        what: &'static str,
        value: u64,
        limit: u64,
    },

    /// A string in the header is not valid UTF-8.
    #[error("invalid UTF-8 in {what} at byte {offset}")]
    InvalidUtf8 { what: &'static str, offset: u64 },

    /// A metadata value type id outside 0..=12.
    #[error("unknown metadata value type {type_id} at byte {offset}")]
    UnknownValueType { type_id: u32, offset: u64 },

    /// Two metadata entries share a key.
    #[error("duplicate metadata key {key:?}")]
    DuplicateKey { key: String },

    /// Two tensors share a name.
    #[error("duplicate tensor name {name:?}")]
    DuplicateTensor { name: String },

    /// A tensor has a ggml type id this crate does not know.
    #[error("tensor {tensor:?} has unsupported ggml type id {type_id}")]
    UnknownTensorType { tensor: String, type_id: u32 },

    /// The product of a tensor's dimensions (or its byte size) does not fit in 63 bits.
    #[error("element count of tensor {tensor:?} with dims {dims:?} overflows")]
    ElementCountOverflow { tensor: String, dims: Vec<u64> },

    /// A tensor's row length (`dims[0]`) is not a multiple of its type's block size.
    #[error(
        "tensor {tensor:?}: row length {row_len} is not a multiple of the {ty} block size {block}"
    )]
    RowNotBlockMultiple {
        tensor: String,
        ty: GgmlType,
        row_len: u64,
        block: u64,
    },

    /// A tensor's data offset is not a multiple of the file alignment.
    #[error("tensor {tensor:?}: offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedOffset {
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    /// Two tensors' byte ranges in the data section overlap.
    #[error("tensors {first:?} and {second:?} overlap in the data section")]
    OverlappingTensors { first: String, second: String },

    /// A tensor's bytes end beyond the end of the file (or the addressable range).
    #[error(
        "tensor {tensor:?} ends at file byte {end}, beyond the end of the input ({len} bytes)"
    )]
    TensorOutOfRange { tensor: String, end: u64, len: u64 },

    /// `general.alignment` is 0, not a power of two, or not an integer.
    #[error("invalid general.alignment {value}: must be a non-zero power of two")]
    BadAlignment { value: u64 },

    /// A metadata key has a value of the wrong type.
    #[error("metadata key {key:?} has the wrong type: expected {expected}")]
    WrongValueType { key: String, expected: &'static str },

    /// A required metadata key is absent.
    #[error("required metadata key {key:?} is missing")]
    MissingKey { key: String },

    /// `general.architecture` is not the one asked for.
    #[error("architecture is {found:?}, expected {expected:?}")]
    WrongArchitecture {
        found: String,
        expected: &'static str,
    },

    /// The hyper-parameters contradict each other (e.g. heads do not divide the width).
    #[error("inconsistent model configuration: {reason}")]
    InvalidConfig { reason: String },

    /// A tensor the model needs is absent.
    #[error("required tensor {name:?} is missing")]
    MissingTensor { name: String },

    /// A tensor has the wrong shape for the configuration.
    #[error("tensor {name:?} has dims {found:?}, expected {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },

    /// A tensor has a type the model cannot use there (norms must be F32).
    #[error("tensor {name:?} has type {found}, expected {expected}")]
    TensorType {
        name: String,
        expected: GgmlType,
        found: GgmlType,
    },

    /// `tokenizer.ggml.tokens` and `token_embd.weight` disagree about the vocabulary size.
    #[error("vocabulary size mismatch: {tokens} tokens but token_embd.weight has {embd} rows")]
    VocabMismatch { tokens: u64, embd: u64 },

    /// An element count that is not a whole number of blocks.
    #[error("{n_elems} elements is not a whole number of {ty} blocks of {block}")]
    NotBlockMultiple {
        ty: GgmlType,
        n_elems: u64,
        block: u64,
    },

    /// A byte buffer that is not a whole number of blocks.
    #[error("{len} bytes is not a whole number of {ty} blocks of {block} bytes")]
    NotWholeBlocks {
        ty: GgmlType,
        len: usize,
        block: usize,
    },

    /// The output slice of a dequantization has the wrong length.
    #[error("output has {found} elements, the input holds {expected}")]
    OutputLength { expected: usize, found: usize },

    /// A byte size computation overflowed.
    #[error("size of {n_elems} {ty} elements overflows")]
    SizeOverflow { ty: GgmlType, n_elems: u64 },

    /// A tensor index past the end of the tensor table.
    #[error("tensor index {index} out of range ({count} tensors)")]
    TensorIndex { index: usize, count: usize },

    /// A tensor too large to hold in memory on this target.
    #[error("tensor {tensor:?} has {n_bytes} bytes, too large for this target")]
    TensorTooLarge { tensor: String, n_bytes: u64 },

    /// The [`crate::StreamParser`] was fed again after it had failed.
    #[error("the stream parser already failed and cannot continue")]
    StreamFailed,
}
