//! `ahma logits MODEL --tokens 1,2,3 [--backend cpu] [--all] [--json]`: the logits a
//! backend computes for a token sequence, for comparing backends and against llama.cpp.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};

/// Which implementation computes the logits.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The plain f32 CPU reference forward (crate `ahma-reference`).
    Cpu,
    /// The GPU engine (crate `ahma-engine`), f16 KV cache where the adapter has shader-f16.
    Gpu,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Path of the GGUF model file.
    pub model: PathBuf,
    /// Token ids, comma separated, fed from position 0 (no BOS is added).
    #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
    pub tokens: Vec<u32>,
    /// Backend that runs the forward pass.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Output the logits of every position, not only the last.
    #[arg(long)]
    pub all: bool,
    /// Print JSON: `{"logits": [...]}`, or `{"logits": [[...], ...]}` with `--all`.
    #[arg(long)]
    pub json: bool,
}

/// Logits of every position of `tokens` (one vector per position) from the CPU reference.
pub fn cpu_logits(model: &std::path::Path, tokens: &[u32]) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut m = ahma_reference::Model::load(model)
        .with_context(|| format!("cannot load model {}", model.display()))?;
    let mut all = Vec::with_capacity(tokens.len());
    for (pos, &tok) in tokens.iter().enumerate() {
        all.push(
            m.forward(tok, pos)
                .with_context(|| format!("forward of token {tok} at position {pos}"))?
                .to_vec(),
        );
    }
    Ok(all)
}

/// Logits of every position of `tokens` from the GPU engine (one batched prefill).
pub fn gpu_logits(model: &std::path::Path, tokens: &[u32]) -> anyhow::Result<Vec<Vec<f32>>> {
    let ctx = pollster::block_on(ahma_kernels::GpuContext::new(Default::default()))
        .context("no usable GPU")?;
    let opts = ahma_engine::LoadOptions {
        n_ctx: tokens.len(),
        ..Default::default()
    };
    let mut m = pollster::block_on(ahma_engine::load_file(
        std::sync::Arc::new(ctx),
        model,
        opts,
    ))
    .with_context(|| format!("cannot load model {}", model.display()))?;
    let n_vocab = m.config().n_vocab;
    let flat = pollster::block_on(m.logits(tokens))?;
    Ok(flat.chunks_exact(n_vocab).map(<[f32]>::to_vec).collect())
}

/// The `k` largest logits as (id, logit), largest first.
fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut ids: Vec<(usize, f32)> = logits.iter().copied().enumerate().collect();
    ids.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ids.truncate(k);
    ids
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.tokens.is_empty() {
        bail!("--tokens needs at least one token id");
    }
    let mut logits = match args.backend {
        Backend::Cpu => cpu_logits(&args.model, &args.tokens)?,
        Backend::Gpu => gpu_logits(&args.model, &args.tokens)?,
    };
    if !args.all {
        logits.drain(..logits.len() - 1);
    }
    if args.json {
        let value = if args.all {
            serde_json::json!({ "logits": logits })
        } else {
            serde_json::json!({ "logits": logits[0] })
        };
        serde_json::to_writer(&mut *out, &value)?;
        writeln!(out)?;
    } else {
        let first = if args.all { 0 } else { args.tokens.len() - 1 };
        for (i, l) in logits.iter().enumerate() {
            let pos = first + i;
            let top: Vec<String> = top_k(l, 5)
                .iter()
                .map(|(id, v)| format!("{id}:{v:.4}"))
                .collect();
            writeln!(
                out,
                "pos {pos} token {}: top-5 {}",
                args.tokens[pos],
                top.join(" ")
            )?;
        }
    }
    Ok(())
}
