//! The one error type of `ahma-chat`.

/// Everything that can go wrong while loading a tokenizer, rendering a chat template,
/// validating generation settings or sampling.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// `tokenizer.json` (or `tokenizer_config.json`) could not be parsed.
    #[error("invalid tokenizer file: {0}")]
    TokenizerFile(String),

    /// The `tokenizers` library failed while encoding or decoding.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),

    /// A GGUF `tokenizer.ggml.*` key is missing or has the wrong type or length.
    #[error("GGUF vocabulary: {0}")]
    GgufVocab(String),

    /// The GGUF tokenizer is not a SentencePiece (`llama`) vocabulary.
    #[error(
        "unsupported GGUF tokenizer model {0:?} (only \"llama\", SentencePiece BPE, is supported)"
    )]
    UnsupportedTokenizerModel(String),

    /// A token id is not in the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownTokenId { id: u32, vocab_size: usize },

    /// Reading a file failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// Parsing a GGUF header failed.
    #[error(transparent)]
    Gguf(#[from] ahma_gguf::GgufError),

    /// The chat template failed to parse or render, or called `raise_exception`.
    #[error("chat template: {0}")]
    Template(String),

    /// The conversation does not follow the user/assistant alternation the model was
    /// trained on.
    #[error("conversation: {0}")]
    Conversation(String),

    /// Even after dropping every droppable turn the prompt does not fit.
    #[error("the prompt needs {needed} tokens but the context holds {limit} (after dropping all older turns)")]
    ContextOverflow { needed: usize, limit: usize },

    /// A generation setting is out of range.
    #[error("invalid generation setting {name} = {value}: {reason}")]
    InvalidSetting {
        name: &'static str,
        value: String,
        reason: &'static str,
    },

    /// The language model behind a [`crate::Session`] failed.
    #[error("model: {0}")]
    Model(String),

    /// The logits slice given to the sampler does not match the vocabulary.
    #[error("sampler: {0}")]
    Sampler(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ChatError>;
