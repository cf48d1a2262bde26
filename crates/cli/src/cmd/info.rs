//! `ahma info MODEL [--json]`: what is in a GGUF model file and how much memory it needs.

use std::io::Write;
use std::path::PathBuf;

use ahma_gguf::{GgmlType, Gguf, LlamaConfig};
use anyhow::Context;
use serde::Serialize;

/// Context length the memory estimate is made for (Ahma's training context).
const ESTIMATE_CONTEXT: usize = 2048;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Path of the GGUF model file.
    pub model: PathBuf,
    /// Print machine-readable JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Tensors of one ggml type.
#[derive(Serialize, Debug, Default)]
pub struct TypeCount {
    pub tensors: usize,
    pub elements: u64,
    pub bytes: u64,
}

/// Memory needed to run the model at `context` tokens.
#[derive(Serialize, Debug)]
pub struct Memory {
    pub context: usize,
    /// Tensor data as stored in the file (the engines keep weights quantized).
    pub weights_bytes: u64,
    /// Keys and values of every layer and position: `2 * n_layer * context * kv_dim * 2`.
    pub kv_cache_f16_bytes: u64,
    /// The same in f32 (`* 4`), as the CPU reference keeps it.
    pub kv_cache_f32_bytes: u64,
    /// Per-token activations in f32: residual and sublayer buffers, FFN hidden,
    /// q/k/v, attention scores of one head over the context, one weight row, logits.
    pub scratch_bytes: u64,
    pub total_f16_kv_bytes: u64,
    pub total_f32_kv_bytes: u64,
}

/// Everything `info --json` prints.
#[derive(Serialize, Debug)]
pub struct Info {
    pub file: String,
    pub file_bytes: u64,
    pub gguf_version: u32,
    pub alignment: u64,
    pub n_metadata: usize,
    pub n_tensors: usize,
    pub architecture: Option<String>,
    pub name: Option<String>,
    /// Llama hyper-parameters; `None` when the file is not a valid Llama model.
    pub config: Option<LlamaConfigJson>,
    /// Why `config` is `None`.
    pub config_error: Option<String>,
    pub n_params: u64,
    pub tensor_types: std::collections::BTreeMap<String, TypeCount>,
    pub tokenizer_model: Option<String>,
    pub n_tokens: Option<usize>,
    pub memory: Option<Memory>,
}

/// [`LlamaConfig`] with stable JSON keys.
#[derive(Serialize, Debug)]
pub struct LlamaConfigJson {
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub rope_dim: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub n_ctx_train: usize,
    pub n_vocab: usize,
}

impl From<&LlamaConfig> for LlamaConfigJson {
    fn from(c: &LlamaConfig) -> Self {
        LlamaConfigJson {
            n_embd: c.n_embd,
            n_layer: c.n_layer,
            n_ff: c.n_ff,
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            rope_dim: c.rope_dim,
            rope_base: c.rope_base,
            rms_eps: c.rms_eps,
            n_ctx_train: c.n_ctx_train,
            n_vocab: c.n_vocab,
        }
    }
}

/// The memory estimate for `c` at `context` tokens with `weights_bytes` of weights.
pub fn memory(c: &LlamaConfig, weights_bytes: u64, context: usize) -> Memory {
    let kv_elems = 2 * (c.n_layer * context * c.kv_dim()) as u64;
    let scratch_elems =
        4 * c.n_embd + 2 * c.n_ff + 2 * c.kv_dim() + context + c.n_embd.max(c.n_ff) + c.n_vocab;
    let scratch_bytes = 4 * scratch_elems as u64;
    Memory {
        context,
        weights_bytes,
        kv_cache_f16_bytes: 2 * kv_elems,
        kv_cache_f32_bytes: 4 * kv_elems,
        scratch_bytes,
        total_f16_kv_bytes: weights_bytes + 2 * kv_elems + scratch_bytes,
        total_f32_kv_bytes: weights_bytes + 4 * kv_elems + scratch_bytes,
    }
}

/// Collects the [`Info`] of the GGUF file at `path`.
pub fn inspect(path: &std::path::Path) -> anyhow::Result<Info> {
    let (g, file) =
        Gguf::open(path).with_context(|| format!("cannot read GGUF file {}", path.display()))?;
    let file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut tensor_types = std::collections::BTreeMap::new();
    let mut n_params = 0;
    for t in &g.tensors {
        let e: &mut TypeCount = tensor_types.entry(t.ty.name().to_string()).or_default();
        e.tensors += 1;
        e.elements += t.n_elements();
        e.bytes += t.n_bytes;
        n_params += t.n_elements();
    }
    let weights_bytes = g.tensors.iter().map(|t| t.n_bytes).sum();
    let string = |key: &str| g.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let (config, config_error) = match LlamaConfig::from_gguf(&g) {
        Ok(c) => (Some(c), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(Info {
        file: path.display().to_string(),
        file_bytes,
        gguf_version: g.version,
        alignment: g.alignment,
        n_metadata: g.metadata.len(),
        n_tensors: g.tensors.len(),
        architecture: string("general.architecture"),
        name: string("general.name"),
        memory: config
            .as_ref()
            .map(|c| memory(c, weights_bytes, ESTIMATE_CONTEXT)),
        config: config.as_ref().map(LlamaConfigJson::from),
        config_error,
        n_params,
        tensor_types,
        tokenizer_model: string("tokenizer.ggml.model"),
        n_tokens: g
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .map(|a| a.len()),
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn print_text(i: &Info, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "file:         {} ({} bytes)", i.file, i.file_bytes)?;
    writeln!(
        out,
        "format:       GGUF v{}, alignment {}, {} metadata keys, {} tensors",
        i.gguf_version, i.alignment, i.n_metadata, i.n_tensors
    )?;
    let or_none = |s: &Option<String>| s.clone().unwrap_or_else(|| "(none)".into());
    writeln!(out, "architecture: {}", or_none(&i.architecture))?;
    writeln!(out, "name:         {}", or_none(&i.name))?;
    match (&i.config, &i.config_error) {
        (Some(c), _) => {
            writeln!(out, "shape:        n_embd {}, n_layer {}, n_ff {}, n_head {}, n_head_kv {}, head_dim {}", c.n_embd, c.n_layer, c.n_ff, c.n_head, c.n_head_kv, c.head_dim)?;
            writeln!(
                out,
                "              rope_dim {}, rope_base {}, rms_eps {:e}, n_ctx_train {}, n_vocab {}",
                c.rope_dim, c.rope_base, c.rms_eps, c.n_ctx_train, c.n_vocab
            )?;
        }
        (None, Some(e)) => writeln!(out, "shape:        not a usable Llama model: {e}")?,
        (None, None) => {}
    }
    if let Some(t) = &i.tokenizer_model {
        writeln!(out, "tokenizer:    {t}, {} tokens", i.n_tokens.unwrap_or(0))?;
    }
    writeln!(out, "parameters:   {}", i.n_params)?;
    writeln!(
        out,
        "tensor types:{}",
        if i.tensor_types.is_empty() {
            " (no tensors)"
        } else {
            ""
        }
    )?;
    // Histogram in ggml type-id order, like llama.cpp's loader prints it.
    for ty in GgmlType::ALL {
        if let Some(t) = i.tensor_types.get(ty.name()) {
            writeln!(
                out,
                "  {:<7} {:>4} tensors {:>14} elements {:>12}",
                ty.name(),
                t.tensors,
                t.elements,
                mib(t.bytes)
            )?;
        }
    }
    if let Some(m) = &i.memory {
        writeln!(out, "memory at context {}:", m.context)?;
        writeln!(out, "  weights            {}", mib(m.weights_bytes))?;
        writeln!(
            out,
            "  KV cache f16 / f32 {} / {}",
            mib(m.kv_cache_f16_bytes),
            mib(m.kv_cache_f32_bytes)
        )?;
        writeln!(out, "  scratch            {}", mib(m.scratch_bytes))?;
        writeln!(
            out,
            "  total f16 / f32 KV {} / {}",
            mib(m.total_f16_kv_bytes),
            mib(m.total_f32_kv_bytes)
        )?;
    }
    Ok(())
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let info = inspect(&args.model)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &info)?;
        writeln!(out)?;
    } else {
        print_text(&info, out)?;
    }
    Ok(())
}
