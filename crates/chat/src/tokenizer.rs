//! The tokenizer: one type, three ways to load it, all producing `AutoTokenizer`'s ids.
//!
//! * [`Tokenizer::from_json`]: a Hugging Face `tokenizer.json` (what the Ahma-Instruct
//!   repositories ship) via the `tokenizers` crate, i.e. exactly what transformers'
//!   `AutoTokenizer` runs.
//! * [`Tokenizer::from_gguf`]: the `tokenizer.ggml.*` vocabulary of a lone GGUF file. It
//!   is rebuilt as the same `tokenizers` pipeline transformers' `LlamaConverter` writes
//!   (see [`crate::gguf_vocab`]), including when the converter left every score at -1000.
//!
//! Decoding follows the `tokenizer.json` decoder (`▁`→space, byte fallback, fuse, strip
//! one leading space), so `decode` equals `tokenizer.decode` in Python; [`StreamDecoder`]
//! emits the same text piece by piece.

use crate::error::{ChatError, Result};
use crate::gguf_vocab::{GgufVocab, MergeOrder};

/// Where a [`Tokenizer`] came from; reported by the CLI and the browser app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenizerSource {
    /// A Hugging Face `tokenizer.json`.
    Json,
    /// A GGUF vocabulary, with the merge order that was used to rebuild it.
    Gguf(MergeOrder),
}

/// A text ⇄ token-id converter plus the special tokens the chat layer needs.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<(u32, String)>,
    eos: Option<(u32, String)>,
    chat_template: Option<String>,
    source: TokenizerSource,
    nfkc: bool,
    /// Cached: `tokenizers` rebuilds the whole vocabulary map to count it.
    vocab_size: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("has_chat_template", &self.chat_template.is_some())
            .field("source", &self.source)
            .field("nfkc", &self.nfkc)
            .finish()
    }
}

fn tk_err(e: tokenizers::Error) -> ChatError {
    ChatError::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// Load a `tokenizer.json`, optionally with its `tokenizer_config.json` (which names
    /// the BOS/EOS tokens and carries the `chat_template`).
    ///
    /// Without a config, `<s>` and `</s>` are used when the vocabulary has them, as in
    /// every Llama-family tokenizer.
    pub fn from_json(tokenizer_json: &[u8], tokenizer_config: Option<&[u8]>) -> Result<Tokenizer> {
        let inner = tokenizers::Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| ChatError::TokenizerFile(e.to_string()))?;
        let mut bos_name = Some("<s>".to_string());
        let mut eos_name = Some("</s>".to_string());
        let mut chat_template = None;
        if let Some(cfg) = tokenizer_config {
            let cfg: serde_json::Value = serde_json::from_slice(cfg)
                .map_err(|e| ChatError::TokenizerFile(format!("tokenizer_config.json: {e}")))?;
            if let Some(v) = cfg.get("bos_token") {
                bos_name = token_name(v);
            }
            if let Some(v) = cfg.get("eos_token") {
                eos_name = token_name(v);
            }
            chat_template = template_from_config(&cfg)?;
        }
        let lookup =
            |name: Option<String>| name.and_then(|n| inner.token_to_id(&n).map(|id| (id, n)));
        let bos = lookup(bos_name);
        let eos = lookup(eos_name);
        let vocab_size = inner.get_vocab_size(true);
        Ok(Tokenizer {
            inner,
            bos,
            eos,
            chat_template,
            source: TokenizerSource::Json,
            nfkc: false,
            vocab_size,
        })
    }

    /// Load `tokenizer.json` (and, when present next to it, `tokenizer_config.json`)
    /// from disk.
    pub fn from_json_file(path: impl AsRef<std::path::Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        let json = std::fs::read(path)?;
        let cfg_path = path.with_file_name("tokenizer_config.json");
        let cfg = if cfg_path.is_file() {
            Some(std::fs::read(cfg_path)?)
        } else {
            None
        };
        Tokenizer::from_json(&json, cfg.as_deref())
    }

    /// Rebuild the tokenizer from a GGUF header's `tokenizer.ggml.*` keys.
    pub fn from_gguf(gguf: &ahma_gguf::Gguf) -> Result<Tokenizer> {
        Tokenizer::from_gguf_vocab(&GgufVocab::from_gguf(gguf)?)
    }

    /// Rebuild the tokenizer from an already extracted GGUF vocabulary.
    pub fn from_gguf_vocab(vocab: &GgufVocab) -> Result<Tokenizer> {
        let (inner, order) = vocab.build()?;
        let vocab_size = inner.get_vocab_size(true);
        let named = |id: Option<u32>| {
            id.and_then(|id| vocab.tokens.get(id as usize).map(|t| (id, t.clone())))
        };
        Ok(Tokenizer {
            inner,
            bos: named(vocab.bos_id),
            eos: named(vocab.eos_id),
            chat_template: vocab.chat_template.clone(),
            source: TokenizerSource::Gguf(order),
            nfkc: false,
            vocab_size,
        })
    }

    /// Replace the chat template (e.g. a GGUF's `tokenizer.chat_template` for a
    /// tokenizer loaded from `tokenizer.json` without its config).
    pub fn set_chat_template(&mut self, template: Option<String>) {
        self.chat_template = template;
    }

    /// The Jinja chat template, if the files carried one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// How this tokenizer was loaded.
    pub fn source(&self) -> &TokenizerSource {
        &self.source
    }

    /// Apply Unicode NFKC to the text before tokenizing (off by default).
    ///
    /// Ahma's SentencePiece trainer normalized its pretraining text with NFKC, but the
    /// `tokenizer.json` the Instruct models were fine-tuned and are served with does not
    /// normalize, so `AutoTokenizer` turns e.g. `ﬁ`, a no-break space or full-width
    /// letters into byte-fallback tokens. Off keeps `AutoTokenizer`'s ids; on gives the
    /// ids SentencePiece would give for such characters (tested against sentencepiece).
    pub fn set_nfkc(&mut self, on: bool) {
        self.nfkc = on;
    }

    /// Whether [`Tokenizer::set_nfkc`] is on.
    pub fn nfkc(&self) -> bool {
        self.nfkc
    }

    /// Tokenize `text` as `AutoTokenizer(text)` does: special and user-defined tokens
    /// written in the text (`<s>`, `[INST]`, …) become their ids, and with
    /// `add_special_tokens` the BOS (and EOS, if the tokenizer adds one) is added.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = if self.nfkc {
            use tokenizers::Normalizer;
            let mut n = tokenizers::NormalizedString::from(text);
            tokenizers::normalizers::unicode::NFKC
                .normalize(&mut n)
                .map_err(tk_err)?;
            self.inner.encode(n.get(), add_special_tokens)
        } else {
            self.inner.encode(text, add_special_tokens)
        }
        .map_err(tk_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// The token strings (SentencePiece pieces such as `▁talo` or `<0xC3>`) of `ids`.
    pub fn pieces(&self, ids: &[u32]) -> Result<Vec<String>> {
        ids.iter()
            .map(|&id| {
                self.inner.id_to_token(id).ok_or(ChatError::UnknownTokenId {
                    id,
                    vocab_size: self.vocab_size(),
                })
            })
            .collect()
    }

    /// Decode `ids` to text as `tokenizer.decode(ids, skip_special_tokens=…)` does.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.check_ids(ids)?;
        self.inner.decode(ids, skip_special_tokens).map_err(tk_err)
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        let n = self.vocab_size();
        match ids.iter().find(|&&id| id as usize >= n) {
            Some(&id) => Err(ChatError::UnknownTokenId { id, vocab_size: n }),
            None => Ok(()),
        }
    }

    /// Number of token ids (model vocabulary plus added tokens).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The id of a token string, if it exists.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The BOS id (`<s>`, 1 in Ahma).
    pub fn bos_id(&self) -> Option<u32> {
        self.bos.as_ref().map(|b| b.0)
    }

    /// The EOS id (`</s>`, 2 in Ahma): generation stops on it.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos.as_ref().map(|e| e.0)
    }

    /// The BOS token text the chat template receives as `bos_token`.
    pub fn bos_token(&self) -> &str {
        self.bos.as_ref().map_or("", |b| b.1.as_str())
    }

    /// The EOS token text the chat template receives as `eos_token`.
    pub fn eos_token(&self) -> &str {
        self.eos.as_ref().map_or("", |e| e.1.as_str())
    }

    /// The underlying `tokenizers` object, for callers that need offsets or batching.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// A byte-fallback piece as the `ByteFallback` decoder recognizes it: `<0x` two hex
/// digits `>`.
fn is_byte_piece(piece: &str) -> bool {
    piece.len() == 6
        && piece.starts_with("<0x")
        && piece.ends_with('>')
        && piece
            .get(3..5)
            .is_some_and(|h| u8::from_str_radix(h, 16).is_ok())
}

/// `bos_token` in tokenizer_config.json is either a string or an AddedToken object.
fn token_name(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o
            .get("content")
            .and_then(|c| c.as_str())
            .map(str::to_string),
        _ => None,
    }
}

/// `chat_template` is a string, or (newer transformers) a list of `{name, template}`
/// of which `default` is the one `apply_chat_template` uses.
fn template_from_config(cfg: &serde_json::Value) -> Result<Option<String>> {
    match cfg.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Array(list)) => Ok(list
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|t| t.get("template"))
            .and_then(|t| t.as_str())
            .map(str::to_string)),
        Some(_) => Err(ChatError::TokenizerFile(
            "chat_template is neither a string nor a list".into(),
        )),
    }
}

/// Streaming detokenizer: push ids as the model produces them, get text as soon as it
/// is final.
///
/// Why not decode each token alone: a token's text depends on its neighbours (the
/// decoder strips the leading space of the first token only, and a character split
/// into byte-fallback tokens `<0xC3><0xA4>` is only valid UTF-8 once all bytes are
/// there; a run of byte tokens that is not valid UTF-8 as a whole turns into one U+FFFD
/// per byte, its ASCII bytes included). So the decoder keeps a short window: it decodes
/// the previously emitted tokens together with the new ones and emits only the
/// difference, and holds back text while the window ends in a byte-fallback token or
/// in an incomplete UTF-8 sequence (decoded as U+FFFD). The
/// concatenation of everything emitted plus [`StreamDecoder::finish`] equals
/// [`Tokenizer::decode`] of all ids.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    skip_special_tokens: bool,
    /// Token ids from the start of the previously emitted chunk onward.
    window: Vec<u32>,
    /// Decoded text of `window[..prefix_len]`, already emitted.
    prefix: String,
    prefix_len: usize,
}

impl StreamDecoder {
    /// A decoder for a fresh sequence (the first token's leading space is stripped, as
    /// the full decode does).
    pub fn new(skip_special_tokens: bool) -> StreamDecoder {
        StreamDecoder {
            skip_special_tokens,
            ..StreamDecoder::default()
        }
    }

    /// Add one token; returns the text that became final, if any.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<Option<String>> {
        tok.check_ids(&[id])?;
        self.window.push(id);
        if self.ends_in_byte_token(tok) {
            // The decoder fuses a run of byte-fallback tokens into one string only when
            // the run is valid UTF-8 as a whole, else every byte of it becomes U+FFFD,
            // an ASCII `<0x21>` included: text that ends in a byte token may still change.
            return Ok(None);
        }
        let text = tok
            .inner
            .decode(&self.window, self.skip_special_tokens)
            .map_err(tk_err)?;
        if text.len() <= self.prefix.len() || text.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        let Some(new) = text.strip_prefix(self.prefix.as_str()) else {
            // A decoder rewrote already emitted text; cannot happen with the Llama
            // decoder pipeline, but report it rather than emit garbage.
            return Err(ChatError::Tokenizer(format!(
                "stream decode: {text:?} does not extend the emitted {:?}",
                self.prefix
            )));
        };
        let new = new.to_string();
        // Keep the tokens of this chunk as left context for the next one.
        self.window.drain(..self.prefix_len);
        self.prefix_len = self.window.len();
        self.prefix = tok
            .inner
            .decode(&self.window, self.skip_special_tokens)
            .map_err(tk_err)?;
        Ok(Some(new))
    }

    /// Whether the last token the decoder sees (special tokens are dropped before it when
    /// they are skipped) is a byte-fallback token `<0xNN>`.
    fn ends_in_byte_token(&self, tok: &Tokenizer) -> bool {
        let added = tok.inner.get_added_vocabulary();
        self.window
            .iter()
            .rev()
            .filter_map(|&id| tok.inner.id_to_token(id))
            .find(|piece| !(self.skip_special_tokens && added.is_special_token(piece)))
            .is_some_and(|piece| is_byte_piece(&piece))
    }

    /// Text still held back: a run of byte tokens at the end of the stream (an incomplete
    /// UTF-8 sequence shows as U+FFFD, as the full decode shows it). Resets the decoder.
    pub fn finish(&mut self, tok: &Tokenizer) -> Result<String> {
        let text = tok
            .inner
            .decode(&self.window, self.skip_special_tokens)
            .map_err(tk_err)?;
        let rest = text
            .strip_prefix(self.prefix.as_str())
            .unwrap_or("")
            .to_string();
        *self = StreamDecoder::new(self.skip_special_tokens);
        Ok(rest)
    }
}
