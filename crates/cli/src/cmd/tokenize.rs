//! `ahma tokenize MODEL [--tokenizer tokenizer.json] TEXT [--json]`: the token ids of a
//! text, as transformers' `AutoTokenizer` gives them (BOS included by default).
//!
//! Without `--tokenizer` the GGUF's own `tokenizer.ggml.*` vocabulary is used (rebuilt
//! so it matches `AutoTokenizer` even when the converter wrote constant scores).

use std::io::Write;
use std::path::{Path, PathBuf};

use ahma_chat::{MergeOrder, Tokenizer, TokenizerSource};
use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Path of the GGUF model file (its vocabulary is used unless --tokenizer is given).
    pub model: PathBuf,
    /// The text to tokenize.
    pub text: String,
    /// A Hugging Face tokenizer.json to use instead of the GGUF vocabulary (a
    /// tokenizer_config.json next to it is read too).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Do not add BOS (or EOS); special tokens written in the text are still parsed.
    #[arg(long)]
    pub no_special: bool,
    /// Apply Unicode NFKC first, as Ahma's SentencePiece trainer did (AutoTokenizer does not).
    #[arg(long)]
    pub nfkc: bool,
    /// Print JSON: `{"ids": [...]}`.
    #[arg(long)]
    pub json: bool,
}

/// The tokenizer for `model`: `tokenizer.json` if given, else the GGUF's vocabulary.
/// Either way the GGUF's `tokenizer.chat_template` fills in a missing template.
pub fn load_tokenizer(model: &Path, tokenizer_json: Option<&Path>) -> anyhow::Result<Tokenizer> {
    let (g, _file) = ahma_gguf::Gguf::open(model)
        .with_context(|| format!("cannot read GGUF {}", model.display()))?;
    match tokenizer_json {
        Some(path) => {
            let mut tok = Tokenizer::from_json_file(path)
                .with_context(|| format!("cannot load {}", path.display()))?;
            if tok.chat_template().is_none() {
                if let Some(t) = g.get("tokenizer.chat_template").and_then(|v| v.as_str()) {
                    tok.set_chat_template(Some(t.to_string()));
                }
            }
            Ok(tok)
        }
        None => Tokenizer::from_gguf(&g)
            .with_context(|| format!("cannot build a tokenizer from {}", model.display())),
    }
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut tok = load_tokenizer(&args.model, args.tokenizer.as_deref())?;
    tok.set_nfkc(args.nfkc);
    let ids = tok.encode(&args.text, !args.no_special)?;
    if args.json {
        writeln!(out, "{}", serde_json::json!({ "ids": ids }))?;
        return Ok(());
    }
    let source = match tok.source() {
        TokenizerSource::Json => "tokenizer.json",
        TokenizerSource::Gguf(MergeOrder::Scores) => "GGUF vocabulary (merge order from scores)",
        TokenizerSource::Gguf(MergeOrder::TokenId) => {
            "GGUF vocabulary (constant scores: merge order from token ids)"
        }
    };
    writeln!(out, "tokenizer: {source}, {} tokens", tok.vocab_size())?;
    writeln!(out, "{} ids", ids.len())?;
    for (id, piece) in ids.iter().zip(tok.pieces(&ids)?) {
        writeln!(out, "{id:>8}  {piece:?}")?;
    }
    Ok(())
}
