//! `ahma generate MODEL --tokens ids | --prompt TEXT [sampling flags] [-n N] [--json]`:
//! text generation on the GPU engine. Each decoded token is one queue submit
//! and a 4-byte readback of the id the GPU sampled.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use ahma_engine::{load_file, LoadOptions, SamplingParams};
use ahma_kernels::{ContextOptions, GpuContext};
use anyhow::{bail, Context};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Path of the GGUF model file.
    pub model: PathBuf,
    /// Prompt token ids, comma separated (no BOS is added).
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "prompt")]
    pub tokens: Option<Vec<u32>>,
    /// Prompt text, tokenized with the model's own vocabulary (BOS added as the model says).
    #[arg(long)]
    pub prompt: Option<String>,
    /// Pick the most likely token every step (the default when no sampling flag is given).
    #[arg(long)]
    pub greedy: bool,
    /// Sampling temperature; 0 means greedy.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Keep only the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: u32,
    /// Keep the smallest set of tokens whose probability reaches P (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Repetition penalty over the last 64 tokens (1 = off), as transformers defines it.
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Seed of the sampler's random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 32)]
    pub n: usize,
    /// Context length to allocate (prompt + generated tokens).
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// Keep generating after the end-of-sequence token.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Use the f32 kernels and KV cache even where shader-f16 exists.
    #[arg(long)]
    pub force_f32: bool,
    /// Print one JSON object: ids, text, timings.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.greedy && args.temperature.is_some_and(|t| t > 0.0) {
        bail!("--greedy conflicts with a positive --temperature");
    }
    let (header, _) = ahma_gguf::Gguf::open(&args.model)
        .with_context(|| format!("cannot open model {}", args.model.display()))?;
    let tokenizer = ahma_chat::Tokenizer::from_gguf(&header).ok();
    let prompt: Vec<u32> = match (&args.tokens, &args.prompt) {
        (Some(t), _) => t.clone(),
        (None, Some(text)) => {
            let tok = tokenizer
                .as_ref()
                .context("--prompt needs a tokenizer in the GGUF; pass --tokens")?;
            tok.encode(text, true)
                .context("cannot tokenize the prompt")?
        }
        (None, None) => bail!("give a prompt with --tokens or --prompt"),
    };
    if prompt.is_empty() {
        bail!("the prompt is empty");
    }
    let eos = header
        .get("tokenizer.ggml.eos_token_id")
        .and_then(|v| v.as_u64())
        .map(|v| v as u32);
    let sampling = match args.temperature {
        Some(t) if t > 0.0 && !args.greedy => SamplingParams {
            temperature: t,
            top_k: args.top_k,
            top_p: args.top_p,
            repeat_penalty: args.repeat_penalty,
            seed: args.seed,
        },
        _ => SamplingParams {
            repeat_penalty: args.repeat_penalty,
            ..SamplingParams::greedy()
        },
    };

    let ctx = pollster::block_on(GpuContext::new(ContextOptions {
        force_f32: args.force_f32,
        ..Default::default()
    }))
    .context("no usable GPU")?;
    let adapter = ctx.adapter().clone();
    let opts = LoadOptions {
        n_ctx: args.ctx,
        ..Default::default()
    };
    let mut model = pollster::block_on(load_file(std::sync::Arc::new(ctx), &args.model, opts))
        .with_context(|| format!("cannot load {}", args.model.display()))?;
    model.set_sampling(sampling)?;

    let t0 = Instant::now();
    let mut ids = Vec::with_capacity(args.n);
    if args.n > 0 {
        ids.push(pollster::block_on(model.prefill(&prompt))?);
    }
    let prefill_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    while ids.len() < args.n && (args.ignore_eos || Some(*ids.last().unwrap_or(&u32::MAX)) != eos) {
        if !args.json {
            write_piece(out, tokenizer.as_ref(), &ids)?;
        }
        ids.push(pollster::block_on(model.decode())?);
    }
    let decode_s = t1.elapsed().as_secs_f64();
    let n_decoded = ids.len().saturating_sub(1);
    let text = tokenizer.as_ref().and_then(|t| t.decode(&ids, true).ok());
    let prefill_tps = prompt.len() as f64 / prefill_s.max(1e-9);
    let decode_tps = if n_decoded > 0 {
        n_decoded as f64 / decode_s.max(1e-9)
    } else {
        0.0
    };
    if args.json {
        let v = serde_json::json!({
            "prompt_ids": prompt,
            "ids": ids,
            "text": text,
            "prefill_tokens": prompt.len(),
            "prefill_tokens_per_s": prefill_tps,
            "decode_tokens": n_decoded,
            "decode_tokens_per_s": decode_tps,
            "adapter": adapter.name,
            "backend": format!("{:?}", adapter.backend),
            "f16": model.context().use_f16(),
            "subgroups": model.context().use_subgroups(),
        });
        serde_json::to_writer(&mut *out, &v)?;
        writeln!(out)?;
    } else {
        write_piece(out, tokenizer.as_ref(), &ids)?;
        writeln!(out)?;
        if tokenizer.is_none() {
            writeln!(out, "ids: {ids:?}")?;
        }
        eprintln!(
            "prefill {} tokens at {prefill_tps:.1} tok/s, decode {n_decoded} tokens at {decode_tps:.1} tok/s ({}, {:?})",
            prompt.len(),
            adapter.name,
            adapter.backend
        );
    }
    Ok(())
}

/// Prints the newest token's text as it is generated (nothing without a tokenizer).
fn write_piece(
    out: &mut dyn Write,
    tok: Option<&ahma_chat::Tokenizer>,
    ids: &[u32],
) -> anyhow::Result<()> {
    if let Some(tok) = tok.filter(|_| !ids.is_empty()) {
        // Decoding the whole prefix keeps multi-byte characters and SentencePiece's
        // leading-space rule right; the new text is the difference.
        let before = tok.decode(&ids[..ids.len() - 1], true).unwrap_or_default();
        let after = tok.decode(ids, true).unwrap_or_default();
        if let Some(piece) = after.strip_prefix(before.as_str()) {
            write!(out, "{piece}")?;
            out.flush()?;
        }
    }
    Ok(())
}
