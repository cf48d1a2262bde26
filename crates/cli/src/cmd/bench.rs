//! `ahma bench MODEL [--prompt-tokens N --gen-tokens M] [--batch B] [--json]`: prefill and
//! decode speed of the GPU engine, with the per-token costs that explain it
//! (dispatches, submits, readback bytes, weight bytes read).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use ahma_engine::{load_file, LoadOptions, Model, Profiler, SamplingParams};
use ahma_kernels::{ContextOptions, GpuContext, ShaderChecks};
use anyhow::{bail, Context};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Path of the GGUF model file.
    pub model: PathBuf,
    /// Prompt length for the prefill measurement.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens to decode after the prompt.
    #[arg(long, default_value_t = 32)]
    pub gen_tokens: usize,
    /// Context length to allocate (at least prompt + generated tokens).
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// Most prompt tokens per prefill submit (the engine's `max_batch`; default: the engine's).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Record and submit each decode step only after the previous id is read back (the engine
    /// otherwise submits the next step first, to keep the GPU busy).
    #[arg(long)]
    pub no_pipeline: bool,
    /// Decode with RoPE and the KV-cache write in a dispatch of their own per layer instead of
    /// inside the q/k/v mat-vec (to measure what the fusion saves).
    #[arg(long)]
    pub no_fused_rope: bool,
    /// Decode a layer whose attn_v has another type than attn_q and attn_k (the published
    /// Q4_K_M's "more bits" layers) with one q/k/v dispatch per type instead of one for both.
    #[arg(long)]
    pub no_mixed_qkv: bool,
    /// Fewest keys per split of decode's attention (the engine's `attn_split_keys`, a multiple
    /// of 64; default: the engine's 64). A context of at most this many keys runs its attention
    /// in one dispatch.
    #[arg(long)]
    pub attn_split_keys: Option<usize>,
    /// The prefill mat-mul tile for every product, `TOKENSxROWS[xTMxRN]` with TM and RN the
    /// tokens and rows per thread (for example `64x64`, `128x64x8` or `128x128x8x8`; default:
    /// the kernel's choice per matrix).
    #[arg(long, value_name = "TILE")]
    pub matmul_tile: Option<String>,
    /// Decode mat-vecs walk two 32-element units per loop step (`on`) or one (`off`; the
    /// engine's `matvec_pairs`, default off).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub matvec_pairs: Option<bool>,
    /// Decode mat-vecs of Q4_0/Q5_0/Q8_0/Q4_K weights take x in 8-bit integers and packed
    /// integer dot products (`on`) or floats (`off`; the engine's `matvec_int_dot`, default off).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub matvec_int_dot: Option<bool>,
    /// Prefill mat-muls of Q4_0/Q5_0/Q8_0/Q4_K weights stage X and the weights as 8-bit
    /// integers and multiply them in packed integer dot products (`on`) or in floats (`off`; the
    /// engine's `matmul_int_dot`, default off).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub matmul_int_dot: Option<bool>,
    /// The decode mat-vecs' workgroup shape, `THREADSxROWS` (threads 16, 32, 64, 128 or 256;
    /// rows 4 or 8, or 16 or 32 where the mat-vecs walk whole units; default: the engine's
    /// choice for the adapter, 16x32 on CPU adapters and 128x4 on GPUs).
    #[arg(long, value_name = "SHAPE")]
    pub matvec_shape: Option<String>,
    /// Decode mat-vecs walk whole 32-element units per thread (`on`: each word of a Q4_0, Q5_0
    /// or Q8_0 block loaded once) or quarter-units (`off`: loads that coalesce on GPUs; the
    /// engine's `matvec_blocks`, default on for CPU adapters, off for GPUs).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub matvec_blocks: Option<bool>,
    /// Prefill's float mat-muls give each invocation a few weight rows and tokens, with no
    /// workgroup memory or barrier, the lanes of a subgroup sharing their loads of X (`on`), or
    /// run in tiles staged in workgroup memory (`off`; the engine's `matmul_rows`, default on
    /// for CPU adapters unless `--matmul-tile` is given, off for GPUs).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub matmul_rows: Option<bool>,
    /// The shape of `--matmul-rows`' product, `THREADSxTOKENS[xROWS]`: invocations per
    /// workgroup, tokens per invocation and weight rows per invocation (8x8, 16x4, 16x8, 16x16,
    /// 32x8, 64x8 with one row; 8x16x2, 16x8x2, 16x16x2 with two; 8x16x4, 16x8x4, 16x16x4
    /// with four; 16x16x8; default: the engine's 16x16x4 with subgroups, 16x16x8 without).
    #[arg(long, value_name = "SHAPE")]
    pub matmul_lanes: Option<String>,
    /// Attention laid out for CPU adapters (`on`: prefill gives each invocation one (token, head)
    /// walking its keys alone, the lanes of a subgroup sharing their loads of keys and values;
    /// decode gives each head 8 lanes walking every 8th key, merged after one barrier) or the
    /// split passes (`off`; the engine's `attention_rows`, default on for CPU adapters, off for
    /// GPUs).
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub attention_rows: Option<bool>,
    /// Decode with the chat's default sampling (`GenerationSettings::default()`: the model
    /// card's temperature 0.6, top-k 4, repetition penalty 1.2; seed 1) instead of greedy.
    #[arg(long)]
    pub sampled: bool,
    /// Also time every operation on the GPU (timestamps between dispatches): one profiled
    /// prefill of the prompt and up to 32 profiled decode steps, after the timed runs. Needs an
    /// adapter with timestamp queries inside compute passes.
    #[arg(long)]
    pub profile: bool,
    /// Compile the shaders without these of wgpu's runtime checks, to measure what they cost:
    /// a comma list of `bounds`, `loops`, `divisions`, or `all` or `none` (default: the
    /// engine's choice, `loops` on GPUs).
    #[arg(long, value_name = "CHECKS")]
    pub unchecked: Option<String>,
    /// Repetition-penalty window of the engine (default: the engine's 64; the browser app
    /// uses the whole context).
    #[arg(long)]
    pub penalty_window: Option<usize>,
    /// Use the f32 kernels and KV cache even where shader-f16 exists.
    #[arg(long)]
    pub force_f32: bool,
    /// Use workgroup-memory reductions even where subgroups exist.
    #[arg(long)]
    pub no_subgroups: bool,
    /// Also measure what a shader can read per second on this adapter (the read probe of
    /// `shaders/read_probe.wgsl`, every way of reading and order) after the timed runs, and
    /// report decode's weight bandwidth as a share of the best of them.
    #[arg(long)]
    pub read_probe: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{s}`: expected on or off")),
    }
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.prompt_tokens == 0 || args.gen_tokens == 0 {
        bail!("--prompt-tokens and --gen-tokens must be at least 1");
    }
    let (header, _) = ahma_gguf::Gguf::open(&args.model)
        .with_context(|| format!("cannot open model {}", args.model.display()))?;
    let cfg = ahma_gguf::LlamaConfig::from_gguf(&header)?;
    // A decoded token reads every weight once, except the embedding (one row).
    let embd = header
        .tensor(ahma_gguf::names::TOKEN_EMBD)
        .context("no token_embd.weight")?;
    let weight_bytes: u64 = header.tensors.iter().map(|t| t.n_bytes).sum::<u64>() - embd.n_bytes
        + embd.n_bytes / embd.n_rows().max(1);

    let copts = ContextOptions {
        force_f32: args.force_f32,
        disable_subgroups: args.no_subgroups,
        shader_checks: args
            .unchecked
            .as_deref()
            .map(ShaderChecks::without)
            .transpose()?,
        ..Default::default()
    };
    let ctx = pollster::block_on(GpuContext::new(copts)).context("no usable GPU")?;
    let adapter = ctx.adapter().clone();
    let t_load = Instant::now();
    let mut opts = LoadOptions {
        n_ctx: args.ctx,
        pipeline_decode: !args.no_pipeline,
        fuse_rope: !args.no_fused_rope,
        mixed_qkv: !args.no_mixed_qkv,
        ..Default::default()
    };
    if let Some(b) = args.batch {
        opts.max_batch = b;
    }
    if let Some(w) = args.penalty_window {
        opts.penalty_window = w;
    }
    opts.set_kernel_choices(
        args.matvec_pairs,
        args.matvec_int_dot,
        args.matmul_int_dot,
        args.attn_split_keys,
        args.matmul_tile.as_deref(),
        args.matvec_shape.as_deref(),
        args.matvec_blocks,
        args.matmul_rows,
        args.matmul_lanes.as_deref(),
        args.attention_rows,
    )
    .context("--matmul-tile, --matvec-shape or --matmul-lanes")?;
    let max_batch = opts.max_batch;
    let opts_window = opts.penalty_window;
    let mut model = pollster::block_on(load_file(std::sync::Arc::new(ctx), &args.model, opts))
        .with_context(|| format!("cannot load {}", args.model.display()))?;
    let load_s = t_load.elapsed().as_secs_f64();
    eprintln!("loaded in {load_s:.1} s");
    let (sampling, sampling_name) = if args.sampled {
        let g = ahma_chat::GenerationSettings::default();
        let name = format!(
            "chat default (temperature {}, top-k {}, top-p {}, repetition penalty {})",
            g.temperature, g.top_k, g.top_p, g.repetition_penalty
        );
        let params = SamplingParams {
            temperature: g.temperature,
            top_k: g.top_k,
            top_p: g.top_p,
            repeat_penalty: g.repetition_penalty,
            seed: 1,
        };
        (params, name)
    } else {
        (SamplingParams::greedy(), "greedy".to_string())
    };
    model.set_sampling(sampling)?;

    // A fixed, non-repeating prompt that avoids the special ids 0..=6.
    let n_vocab = cfg.n_vocab as u64;
    let prompt: Vec<u32> = (0..args.prompt_tokens as u64)
        .map(|i| (7 + (i * 7919) % (n_vocab - 7).max(1)) as u32)
        .collect();

    let t0 = Instant::now();
    pollster::block_on(model.prefill(&prompt))?;
    let prefill_s = t0.elapsed().as_secs_f64();
    eprintln!(
        "prefill of {} tokens in {prefill_s:.1} s",
        args.prompt_tokens
    );
    model.reset_stats();
    let t1 = Instant::now();
    for _ in 1..args.gen_tokens {
        pollster::block_on(model.decode())?;
    }
    let decode_s = t1.elapsed().as_secs_f64();
    let n_dec = (args.gen_tokens - 1).max(1) as f64;
    let stats = model.stats();
    let plan = model.memory_plan().clone();
    let profile = if args.profile {
        Some(profile(&mut model, &prompt, args.gen_tokens.min(32))?)
    } else {
        None
    };
    let mut v = serde_json::json!({
        "model": args.model.display().to_string(),
        "adapter": adapter.name,
        "backend": format!("{:?}", adapter.backend),
        "device_type": format!("{:?}", adapter.device_type),
        "f16": model.context().use_f16(),
        "subgroups": model.context().use_subgroups(),
        "subgroup_min_size": model.context().caps().subgroup_min_size,
        "subgroup_max_size": model.context().caps().subgroup_max_size,
        "n_ctx": args.ctx,
        "max_batch": max_batch,
        "pipeline_decode": !args.no_pipeline,
        "fused_rope": !args.no_fused_rope,
        "mixed_qkv": model.options().mixed_qkv,
        "attn_split_keys": model.options().attn_split_keys,
        "matmul_tile": model.options().matmul_tile_name(),
        "matvec_pairs": model.options().matvec_pairs,
        "matvec_int_dot": model.options().matvec_int_dot,
        "matmul_int_dot": model.options().matmul_int_dot,
        "matvec_shape": model.options().matvec_shape_name(),
        "matvec_blocks": model.options().matvec_blocks.unwrap_or(false),
        "matmul_rows": model.options().matmul_rows.unwrap_or(false),
        "matmul_lanes": model.options().matmul_lanes_name(),
        "attention_rows": model.options().attention_rows.unwrap_or(false),
        "penalty_window": opts_window,
        "unchecked": model.context().shader_checks().left_out(),
        "sampling": sampling_name,
        "load_s": load_s,
        "prompt_tokens": args.prompt_tokens,
        "prefill_s": prefill_s,
        "prefill_tokens_per_s": args.prompt_tokens as f64 / prefill_s,
        "gen_tokens": args.gen_tokens,
        "decode_s": decode_s,
        "decode_tokens_per_s": if args.gen_tokens > 1 { (args.gen_tokens - 1) as f64 / decode_s } else { 0.0 },
        "dispatches_per_token": stats.dispatches as f64 / n_dec,
        "submits_per_token": stats.submits as f64 / n_dec,
        "readback_bytes_per_token": stats.readback_bytes as f64 / n_dec,
        "cpu_record_ms_per_token": stats.record_ns as f64 / 1e6 / n_dec,
        "weight_bytes_per_token": weight_bytes,
        "gpu_weight_bytes": plan.weight_bytes,
        "gpu_kv_bytes": plan.kv_bytes,
        "gpu_scratch_bytes": plan.scratch_bytes,
    });
    v["cooperative_matrix"] = serde_json::json!(model.context().caps().cooperative_matrices);
    let decode_tps = v["decode_tokens_per_s"].as_f64().unwrap_or(0.0);
    let implied = weight_bytes as f64 * decode_tps / 1e9;
    v["implied_gb_per_s"] = implied.into();
    if args.read_probe {
        let (each, best) = read_probe(model.context())?;
        v["read_probe"] = each;
        v["read_probe_gb_per_s"] = best.into();
        v["decode_read_ratio"] = (implied / best).into();
    }
    if let Some(p) = profile {
        v["profile"] = p;
    }
    if args.json {
        serde_json::to_writer(&mut *out, &v)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    }
    Ok(())
}

/// GB/s of the read probe for every way of reading and order (`{"u32_interleaved": …}`), and
/// the best of them (`read_probe::measure`).
fn read_probe(ctx: &GpuContext) -> anyhow::Result<(serde_json::Value, f64)> {
    let start = Instant::now();
    let now = || start.elapsed().as_secs_f64();
    let size = ahma_kernels::read_probe::default_size(ctx);
    let rates = pollster::block_on(ahma_kernels::read_probe::measure(ctx, size, &now))?;
    let each = rates
        .named()
        .into_iter()
        .map(|(k, r)| (k, r.into()))
        .collect();
    let best = rates.best();
    Ok((serde_json::Value::Object(each), best))
}

/// GPU time per operation: one profiled prefill of `prompt` (from an empty cache) and `steps`
/// profiled decode steps after it, as `{"prefill": …, "decode": …}` with milliseconds per pass.
fn profile(model: &mut Model, prompt: &[u32], steps: usize) -> anyhow::Result<serde_json::Value> {
    let mut prof = Profiler::new(model.context())?;
    model.reset();
    pollster::block_on(model.profile_prefill(prompt, &mut prof))?;
    let prefill = summary(&prof);
    prof.clear();
    for _ in 0..steps {
        pollster::block_on(model.profile_decode(&mut prof))?;
    }
    Ok(serde_json::json!({ "prefill": prefill, "decode": summary(&prof) }))
}

/// `{"passes", "gpu_ms_per_pass", "ops": {op: {"ms_per_pass", "runs_per_pass", "share"}}}`.
fn summary(prof: &Profiler) -> serde_json::Value {
    let passes = prof.passes().max(1) as f64;
    let total = prof.total_ns().max(1.0);
    let mut ops = serde_json::Map::new();
    for o in prof.ops() {
        ops.insert(
            o.op.to_string(),
            serde_json::json!({
                "ms_per_pass": o.total_ns / 1e6 / passes,
                "runs_per_pass": o.count as f64 / passes,
                "share": o.total_ns / total,
            }),
        );
    }
    serde_json::json!({
        "passes": prof.passes(),
        "gpu_ms_per_pass": prof.total_ns() / 1e6 / passes,
        "ops": ops,
    })
}
