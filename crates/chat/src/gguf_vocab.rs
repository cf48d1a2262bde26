//! Rebuilding the Hugging Face tokenizer from a GGUF `tokenizer.ggml.*` vocabulary.
//!
//! A SentencePiece BPE model is a list of pieces with scores; the trainer gives every
//! learned piece a score equal to minus its merge step, so a higher score means an
//! earlier merge. transformers' `LlamaConverter` turns such a model into a `tokenizers`
//! BPE model by *deriving* the merge list from the vocabulary: every way of splitting a
//! piece into two vocabulary pieces is a merge, ranked by the piece's score. We do the
//! same from the GGUF's tokens and scores and wire up the same normalizer (prepend `▁`,
//! spaces → `▁`), decoder (`▁` → space, byte fallback, fuse, strip one leading space),
//! BOS post-processor and atomic special tokens, so the result is the tokenizer the
//! Ahma repositories ship in `tokenizer.json`.
//!
//! The broken-converter case: when a GGUF was converted from a repository with only
//! `tokenizer.json` (all Ahma-Instruct GGUFs), gguf-py's `LlamaHfVocab` writes every
//! score as -1000 and marks `[INST]`-style user-defined symbols as NORMAL. The scores
//! then carry no merge order; but SentencePiece emits learned pieces in merge order, so
//! ranking by *token id* (`score = -id`) reproduces it exactly ([`MergeOrder::TokenId`]).
//! Likewise SentencePiece puts all meta pieces (unknown, control, user-defined) before
//! the 256 byte pieces, so a NORMAL token with an id below `<0x00>` is a user-defined
//! symbol and is matched atomically.

use std::collections::HashMap;

use ahma_gguf::{Gguf, Value};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{
    NormalizerWrapper, Prepend, Replace, Sequence as NormalizerSequence,
};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, ModelWrapper};

use crate::error::{ChatError, Result};

/// GGUF token types (`tokenizer.ggml.token_type`), as llama.cpp and gguf-py number them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// An ordinary learned piece.
    Normal,
    /// `<unk>`.
    Unknown,
    /// `<s>`, `</s>` and other control tokens: never produced from text by BPE.
    Control,
    /// Symbols the trainer was told to keep whole (`[INST]`, `<<SYS>>`, …).
    UserDefined,
    /// Reserved, never produced.
    Unused,
    /// Byte-fallback pieces `<0x00>`..`<0xFF>`.
    Byte,
}

impl TokenType {
    /// Map the integer code (1..=6); anything else is treated as `Normal`, as llama.cpp does.
    pub fn from_code(code: i64) -> TokenType {
        match code {
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Normal,
        }
    }
}

/// How the BPE merge ranks were obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeOrder {
    /// From the scores in the file (a GGUF converted from `tokenizer.model`).
    Scores,
    /// Every NORMAL token had the same score (a GGUF converted from `tokenizer.json`
    /// alone, scores -1000): ranks come from token ids, which reproduces SentencePiece.
    TokenId,
}

/// The `tokenizer.ggml.*` keys of a GGUF, typed.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model` (must be `llama`).
    pub model: String,
    /// Token strings in id order.
    pub tokens: Vec<String>,
    /// Per-token scores (`None` if the key is absent).
    pub scores: Option<Vec<f32>>,
    /// Per-token types (all `Normal` if the key is absent).
    pub types: Vec<TokenType>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unk_id: Option<u32>,
    /// Prepend BOS when encoding with special tokens (llama.cpp default for SPM: true).
    pub add_bos: bool,
    /// Append EOS when encoding with special tokens (default false).
    pub add_eos: bool,
    /// Prepend `▁` to the text (default true; the Ahma trainer used `add_dummy_prefix`).
    pub add_space_prefix: bool,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

fn key_u32(g: &Gguf, key: &str) -> Result<Option<u32>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| ChatError::GgufVocab(format!("{key} is not a token id: {v:?}"))),
    }
}

fn key_bool(g: &Gguf, key: &str, default: bool) -> Result<bool> {
    match g.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ChatError::GgufVocab(format!("{key} is not a bool: {v:?}"))),
    }
}

fn key_array<'a>(g: &'a Gguf, key: &str) -> Result<Option<&'a [Value]>> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_array()
            .map(Some)
            .ok_or_else(|| ChatError::GgufVocab(format!("{key} is not an array"))),
    }
}

impl GgufVocab {
    /// Read and check the tokenizer keys of a GGUF header.
    pub fn from_gguf(g: &Gguf) -> Result<GgufVocab> {
        let model = match g.get("tokenizer.ggml.model") {
            Some(v) => v.as_str().ok_or_else(|| {
                ChatError::GgufVocab("tokenizer.ggml.model is not a string".into())
            })?,
            None => {
                return Err(ChatError::GgufVocab(
                    "tokenizer.ggml.model is missing".into(),
                ))
            }
        };
        if model != "llama" {
            return Err(ChatError::UnsupportedTokenizerModel(model.to_string()));
        }
        let tokens = key_array(g, "tokenizer.ggml.tokens")?
            .ok_or_else(|| ChatError::GgufVocab("tokenizer.ggml.tokens is missing".into()))?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ChatError::GgufVocab(format!("token {i} is not a string")))
            })
            .collect::<Result<Vec<_>>>()?;
        let n = tokens.len();
        if n == 0 || u32::try_from(n).is_err() {
            return Err(ChatError::GgufVocab(format!(
                "vocabulary size {n} is out of range"
            )));
        }
        let scores = match key_array(g, "tokenizer.ggml.scores")? {
            None => None,
            Some(a) if a.len() == n => Some(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_f32().ok_or_else(|| {
                            ChatError::GgufVocab(format!("score {i} is not a number"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(a) => {
                return Err(ChatError::GgufVocab(format!(
                    "{} scores for {n} tokens",
                    a.len()
                )))
            }
        };
        let types = match key_array(g, "tokenizer.ggml.token_type")? {
            None => vec![TokenType::Normal; n],
            Some(a) if a.len() == n => a
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_i64().map(TokenType::from_code).ok_or_else(|| {
                        ChatError::GgufVocab(format!("token type {i} is not an integer"))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            Some(a) => {
                return Err(ChatError::GgufVocab(format!(
                    "{} token types for {n} tokens",
                    a.len()
                )))
            }
        };
        let chat_template = match g.get("tokenizer.chat_template") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or_else(|| {
                        ChatError::GgufVocab("tokenizer.chat_template is not a string".into())
                    })?
                    .to_string(),
            ),
        };
        let vocab = GgufVocab {
            model: model.to_string(),
            tokens,
            scores,
            types,
            // llama.cpp's SPM defaults when the keys are absent.
            bos_id: key_u32(g, "tokenizer.ggml.bos_token_id")?.or(Some(1)),
            eos_id: key_u32(g, "tokenizer.ggml.eos_token_id")?.or(Some(2)),
            unk_id: key_u32(g, "tokenizer.ggml.unknown_token_id")?.or(Some(0)),
            add_bos: key_bool(g, "tokenizer.ggml.add_bos_token", true)?,
            add_eos: key_bool(g, "tokenizer.ggml.add_eos_token", false)?,
            add_space_prefix: key_bool(g, "tokenizer.ggml.add_space_prefix", true)?,
            chat_template,
        };
        for (name, id) in [
            ("bos", vocab.bos_id),
            ("eos", vocab.eos_id),
            ("unk", vocab.unk_id),
        ] {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(ChatError::GgufVocab(format!(
                        "{name} id {id} is outside the {n}-token vocabulary"
                    )));
                }
            }
        }
        Ok(vocab)
    }

    /// The merge order [`GgufVocab::build`] will use: scores if they distinguish the
    /// NORMAL tokens, token ids otherwise.
    pub fn merge_order(&self) -> MergeOrder {
        let Some(scores) = &self.scores else {
            return MergeOrder::TokenId;
        };
        let mut normal = scores
            .iter()
            .zip(&self.types)
            .filter(|(_, t)| **t == TokenType::Normal)
            .map(|(s, _)| *s);
        match normal.next() {
            Some(first) if normal.any(|s| s != first) => MergeOrder::Scores,
            _ => MergeOrder::TokenId,
        }
    }

    /// Effective token types: NORMAL tokens placed before the byte pieces are
    /// SentencePiece meta pieces (user-defined symbols) that a converter mistyped.
    pub fn effective_types(&self) -> Vec<TokenType> {
        let first_byte = self
            .types
            .iter()
            .position(|t| *t == TokenType::Byte)
            .unwrap_or(0);
        self.types
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                if t == TokenType::Normal && i < first_byte {
                    TokenType::UserDefined
                } else {
                    t
                }
            })
            .collect()
    }

    /// Build the `tokenizers` pipeline equal to transformers' `LlamaConverter` output.
    pub fn build(&self) -> Result<(tokenizers::Tokenizer, MergeOrder)> {
        let order = self.merge_order();
        let ranks: Vec<f64> = match (order, &self.scores) {
            (MergeOrder::Scores, Some(s)) => s.iter().map(|&x| f64::from(x)).collect(),
            _ => (0..self.tokens.len()).map(|i| -(i as f64)).collect(),
        };
        let mut vocab: HashMap<String, u32> = HashMap::with_capacity(self.tokens.len());
        for (i, t) in self.tokens.iter().enumerate() {
            if vocab.insert(t.clone(), i as u32).is_some() {
                return Err(ChatError::GgufVocab(format!("token {t:?} appears twice")));
            }
        }
        let merges = derive_merges(&self.tokens, &vocab, &ranks);
        let unk = self.unk_id.map(|id| self.tokens[id as usize].clone());
        let vocab: tokenizers::models::bpe::Vocab = vocab.into_iter().collect();
        let mut builder = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .fuse_unk(true)
            .byte_fallback(true);
        if let Some(unk) = unk {
            builder = builder.unk_token(unk);
        }
        let bpe = builder
            .build()
            .map_err(|e| ChatError::GgufVocab(format!("building BPE: {e}")))?;

        let mut tk = tokenizers::Tokenizer::new(ModelWrapper::BPE(bpe));
        let mut norm: Vec<NormalizerWrapper> = Vec::new();
        if self.add_space_prefix {
            norm.push(Prepend::new("▁".to_string()).into());
        }
        norm.push(
            Replace::new(" ", "▁")
                .map_err(|e| ChatError::Tokenizer(e.to_string()))?
                .into(),
        );
        tk.with_normalizer(Some(NormalizerSequence::new(norm)));
        let mut dec: Vec<DecoderWrapper> = vec![
            Replace::new("▁", " ")
                .map_err(|e| ChatError::Tokenizer(e.to_string()))?
                .into(),
            ByteFallback::new().into(),
            Fuse::new().into(),
        ];
        if self.add_space_prefix {
            dec.push(Strip::new(' ', 1, 0).into());
        }
        tk.with_decoder(Some(DecoderSequence::new(dec)));

        // Special (control/unknown) and user-defined tokens are matched atomically in
        // the raw text, before normalization, exactly like tokenizer.json's added_tokens.
        // They are registered in id order and in runs of the same kind, as the converter
        // does, so the added-vocabulary ids line up with the model ids.
        let types = self.effective_types();
        for (i, t) in types.iter().enumerate() {
            let content = self.tokens[i].clone();
            match t {
                TokenType::Control | TokenType::Unknown => {
                    tk.add_special_tokens(&[AddedToken::from(content, true).normalized(false)]);
                }
                TokenType::UserDefined => {
                    tk.add_tokens(&[AddedToken::from(content, false).normalized(false)]);
                }
                _ => {}
            }
        }

        let mut single = String::new();
        let mut specials = Vec::new();
        if let (true, Some(bos)) = (self.add_bos, self.bos_id) {
            let name = self.tokens[bos as usize].clone();
            single.push_str(&name);
            single.push(' ');
            specials.push((name, bos));
        }
        single.push_str("$A");
        if let (true, Some(eos)) = (self.add_eos, self.eos_id) {
            let name = self.tokens[eos as usize].clone();
            single.push(' ');
            single.push_str(&name);
            specials.push((name, eos));
        }
        if !specials.is_empty() {
            let post = TemplateProcessing::builder()
                .try_single(single.as_str())
                .map_err(|e| ChatError::Tokenizer(e.to_string()))?
                .special_tokens(specials)
                .build()
                .map_err(|e| ChatError::Tokenizer(e.to_string()))?;
            tk.with_post_processor(Some(post));
        }
        Ok((tk, order))
    }
}

/// The merge list transformers' `generate_merges` derives from a SentencePiece
/// vocabulary: for every piece, each split into two vocabulary pieces (ordered by the
/// ids of the left, then right part), then all of them stably sorted by the piece's
/// rank (higher first), then by the length in characters of the left and of the right
/// part (longer first).
pub fn derive_merges(
    tokens: &[String],
    vocab: &HashMap<String, u32>,
    ranks: &[f64],
) -> Vec<(String, String)> {
    struct Cand {
        left: u32,
        right: u32,
        rank: f64,
        left_chars: usize,
        right_chars: usize,
    }
    let mut all: Vec<Cand> = Vec::new();
    for (i, piece) in tokens.iter().enumerate() {
        let mut local: Vec<Cand> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (l, r) = piece.split_at(at);
                Some(Cand {
                    left: *vocab.get(l)?,
                    right: *vocab.get(r)?,
                    rank: ranks[i],
                    left_chars: l.chars().count(),
                    right_chars: r.chars().count(),
                })
            })
            .collect();
        local.sort_by_key(|c| (c.left, c.right));
        all.extend(local);
    }
    all.sort_by(|a, b| {
        // partial_cmp, not total_cmp: Python compares -0.0 (the first learned piece's
        // score) equal to 0.0.
        b.rank
            .partial_cmp(&a.rank)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.left_chars.cmp(&a.left_chars))
            .then(b.right_chars.cmp(&a.right_chars))
    });
    all.into_iter()
        .map(|c| {
            (
                tokens[c.left as usize].clone(),
                tokens[c.right as usize].clone(),
            )
        })
        .collect()
}
