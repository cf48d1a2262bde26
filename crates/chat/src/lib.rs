//! Tokenizer (tokenizer.json or GGUF vocabulary), chat templates, conversation state,
//! generation settings and the reference CPU sampler for the Ahma (Finnish Llama)
//! models. No GPU; builds for `wasm32-unknown-unknown`.
//!
//! * [`Tokenizer`]: ids equal to transformers' `AutoTokenizer` whether loaded from
//!   `tokenizer.json` or from a lone GGUF (even one whose converter wrote constant
//!   scores); [`StreamDecoder`] for streaming output.
//! * [`ChatTemplate`]: the model's Jinja `chat_template` rendered like
//!   `apply_chat_template`, or the built-in Llama-2 format.
//! * [`Conversation`]: turns plus context-overflow handling.
//! * [`GenerationSettings`], [`Sampler`]: the model card's defaults and exact sampling
//!   semantics; [`Session`] runs them over any [`LanguageModel`].

//!
//! # WebAssembly
//!
//! `cargo build -p ahma-chat --target wasm32-unknown-unknown` works with no extra flags:
//! the workspace's `tokenizers` dependency uses the `unstable_wasm` feature, which swaps
//! onig for fancy-regex and turns on getrandom 0.3's `wasm_js` backend (the only
//! getrandom in the tree; no `--cfg getrandom_backend` is needed with 0.3.4). On that
//! target `strftime_now` reads the clock through `js-sys`, because `std`'s clock panics
//! there. The sampler has its own seeded [`Rng`] and needs no OS randomness.

pub mod conversation;
pub mod error;
pub mod generate;
pub mod gguf_vocab;
pub mod sampler;
pub mod settings;
pub mod template;
pub mod tokenizer;

pub use conversation::{Conversation, Prompt};
pub use error::{ChatError, Result};
pub use generate::{Generation, LanguageModel, Session, StopReason};
pub use gguf_vocab::{GgufVocab, MergeOrder, TokenType};
pub use sampler::{Rng, Sampler};
pub use settings::GenerationSettings;
pub use template::{ChatTemplate, Message, Role, DEFAULT_SYSTEM_PROMPT};
pub use tokenizer::{StreamDecoder, Tokenizer, TokenizerSource};
