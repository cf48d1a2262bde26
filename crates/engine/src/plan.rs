//! The fit check: how much GPU memory a model needs for a chosen context, and
//! whether every buffer respects the adapter's limits. Pure arithmetic on the
//! GGUF header, so it runs before a single weight byte is uploaded (and in CPU
//! tests).

use ahma_gguf::{Gguf, LlamaConfig};

use crate::{EngineError, LoadOptions};

/// Upper bound on key splits per (token, head): long contexts get longer splits
/// instead of more partial results, which bounds the partial buffers.
pub const ATTN_MAX_SPLITS: usize = 32;

/// Key splits per token in a batch of more than `ATTN_MAX_SPLITS / ATTN_BATCH_SPLITS` tokens:
/// the tokens and heads already fill the GPU, so more splits would only grow the partials.
pub const ATTN_BATCH_SPLITS: usize = 4;

/// Most logits rows evaluated per submit by [`crate::Model::logits`] (every row is read back),
/// so the logits buffer does not grow with the prefill batch.
pub const LOGITS_ROWS: usize = 64;

/// Fewest prompt tokens per prefill submit that [`plan_fitting`] falls back to.
pub const MIN_FALLBACK_BATCH: usize = 64;

/// Key splits per (token, head) for a batch of `n_tokens`: `ATTN_MAX_SPLITS` shared out over
/// the tokens, at least `ATTN_BATCH_SPLITS`.
pub fn attn_splits(n_tokens: usize) -> usize {
    (ATTN_MAX_SPLITS / n_tokens.max(1)).clamp(ATTN_BATCH_SPLITS, ATTN_MAX_SPLITS)
}

/// Partial-result rows per head the attention of any batch of up to `batch` tokens needs.
pub fn attn_partial_rows(batch: usize) -> usize {
    (1..=batch.max(1))
        .map(|n| n * attn_splits(n))
        .max()
        .unwrap_or(ATTN_MAX_SPLITS)
}

/// What the loader may use, from the adapter's limits and an optional budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceBudget {
    /// `maxBufferSize`.
    pub max_buffer_size: u64,
    /// `maxStorageBufferBindingSize`; weight matrices larger than this are split
    /// by rows, every other buffer must fit in one binding.
    pub max_binding_size: u64,
    /// Total bytes the model may occupy (weights + KV cache + scratch). WebGPU
    /// exposes no memory size, so the app supplies one when it knows it (for
    /// example from the platform's reported memory); `None` checks only limits.
    pub memory_budget: Option<u64>,
}

/// Byte counts of everything the engine allocates on the GPU for one model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Raw GGUF bytes of all tensors (each padded to 4 bytes).
    pub weight_bytes: u64,
    /// K and V caches of all layers for `n_ctx` positions.
    pub kv_bytes: u64,
    /// Activations, attention partials, logits, sampler and RoPE tables.
    pub scratch_bytes: u64,
    /// The largest single non-weight buffer.
    pub largest_buffer: (String, u64),
    /// Most prompt tokens per prefill submit the scratch is sized for.
    pub max_batch: usize,
}

impl MemoryPlan {
    pub fn total(&self) -> u64 {
        self.weight_bytes + self.kv_bytes + self.scratch_bytes
    }
}

/// Sizes of the scratch buffers for a prefill batch of `batch` tokens with the options'
/// context, penalty window and integer mat-muls.
pub(crate) fn scratch_sizes(
    cfg: &LlamaConfig,
    opts: &LoadOptions,
    batch: usize,
) -> Vec<(&'static str, u64)> {
    let (n_ctx, window) = (opts.n_ctx, opts.penalty_window);
    let b = batch as u64;
    let f32s = |n: u64| n * 4;
    let d = cfg.n_embd as u64;
    let kv = cfg.kv_dim() as u64;
    let q = (cfg.n_head * cfg.head_dim) as u64;
    let rows = attn_partial_rows(batch) as u64;
    let heads = cfg.n_head as u64;
    let x8 = x8_scratch_bytes(cfg, opts, batch);
    let mut sizes = vec![
        ("hidden", f32s(b * d)),
        ("normed", f32s(b * d)),
        ("q", f32s(b * q)),
        ("k", f32s(b * kv)),
        ("v", f32s(b * kv)),
        ("attn", f32s(b * q)),
        ("gate", f32s(b * cfg.n_ff as u64)),
        ("up", f32s(b * cfg.n_ff as u64)),
        ("attn_partial_o", f32s(rows * heads * cfg.head_dim as u64)),
        ("attn_partial_ml", f32s(rows * heads * 2)),
        (
            "logits",
            f32s(b.min(LOGITS_ROWS as u64) * cfg.n_vocab as u64),
        ),
        ("sample_work", f32s(cfg.n_vocab as u64)),
        ("sample_prob", f32s(cfg.n_vocab as u64)),
        ("rope_table", f32s(n_ctx as u64 * cfg.rope_dim as u64)),
        ("tokens", 4 * b),
        ("recent", 4 * window.max(1) as u64),
    ];
    if x8 > 0 {
        sizes.push(("x8", x8));
    }
    sizes
}

/// Bytes of the integer mat-muls' quantized input (`LoadOptions::matmul_int_dot`): room for a
/// batch of the widest mat-mul input (n_embd, the attention output or n_ff); 0 without the
/// option or without batches.
pub(crate) fn x8_scratch_bytes(cfg: &LlamaConfig, opts: &LoadOptions, batch: usize) -> u64 {
    if !opts.matmul_int_dot || batch <= 1 {
        return 0;
    }
    let widest = cfg.n_embd.max(cfg.n_head * cfg.head_dim).max(cfg.n_ff);
    ahma_kernels::quantize::x8_bytes(widest as u64, batch as u32)
}

/// Computes the memory plan of `gguf` with the options (context `n_ctx`, penalty window,
/// integer mat-muls) and prefill batch `batch`, and refuses with [`EngineError::DoesNotFit`]
/// when a buffer exceeds the adapter's limits or the total exceeds the budget.
pub fn plan(
    gguf: &Gguf,
    cfg: &LlamaConfig,
    opts: &LoadOptions,
    batch: usize,
    kv_f16: bool,
    budget: &DeviceBudget,
) -> Result<MemoryPlan, EngineError> {
    let n_ctx = opts.n_ctx;
    let weight_bytes: u64 = gguf
        .tensors
        .iter()
        .map(|t| t.n_bytes.next_multiple_of(4))
        .sum();
    let kv_elem = if kv_f16 { 2 } else { 4 };
    let kv_layer = n_ctx as u64 * cfg.kv_dim() as u64 * kv_elem;
    let kv_bytes = 2 * cfg.n_layer as u64 * kv_layer;
    let mut buffers = scratch_sizes(cfg, opts, batch);
    buffers.push(("kv_cache_layer", kv_layer));
    let scratch_bytes = buffers
        .iter()
        .filter(|(n, _)| *n != "kv_cache_layer")
        .map(|(_, b)| b)
        .sum();
    let largest = buffers
        .iter()
        .max_by_key(|(_, b)| *b)
        .map(|(n, b)| (n.to_string(), *b))
        .unwrap_or_default();
    let limit = budget.max_binding_size.min(budget.max_buffer_size);
    if largest.1 > limit {
        let hint = if largest.0 == "kv_cache_layer" {
            " (choose a shorter context)"
        } else {
            " (choose a smaller batch)"
        };
        return Err(EngineError::DoesNotFit {
            reason: format!(
                "buffer {} needs {} but the adapter binds at most {}{hint}",
                largest.0,
                size(largest.1),
                size(limit)
            ),
        });
    }
    for t in &gguf.tensors {
        let row_bytes = t.n_bytes / t.n_rows().max(1);
        if row_bytes > limit {
            return Err(EngineError::DoesNotFit {
                reason: format!(
                    "one row of tensor {:?} ({}) exceeds the binding limit {}",
                    t.name,
                    size(row_bytes),
                    size(limit)
                ),
            });
        }
    }
    let plan = MemoryPlan {
        weight_bytes,
        kv_bytes,
        scratch_bytes,
        largest_buffer: largest,
        max_batch: batch,
    };
    if let Some(max) = budget.memory_budget {
        if plan.total() > max {
            return Err(EngineError::DoesNotFit {
                reason: format!(
                    "needs {} MiB (weights {} MiB + KV cache {} MiB for {n_ctx} positions + scratch {} MiB) but the budget is {} MiB",
                    mib(plan.total()),
                    mib(plan.weight_bytes),
                    mib(plan.kv_bytes),
                    mib(plan.scratch_bytes),
                    mib(max)
                ),
            });
        }
    }
    Ok(plan)
}

/// [`plan`] with the largest prefill batch that fits: the options' `max_batch`, else halved
/// down to [`MIN_FALLBACK_BATCH`] (or `max_batch` if smaller), so a big default batch costs
/// speed, never the model. The error is that of the smallest batch tried.
pub fn plan_fitting(
    gguf: &Gguf,
    cfg: &LlamaConfig,
    opts: &LoadOptions,
    kv_f16: bool,
    budget: &DeviceBudget,
) -> Result<MemoryPlan, EngineError> {
    let max_batch = opts.max_batch;
    let floor = MIN_FALLBACK_BATCH.min(max_batch);
    let mut batch = max_batch;
    loop {
        match plan(gguf, cfg, opts, batch, kv_f16, budget) {
            Err(EngineError::DoesNotFit { .. }) if batch > floor => {
                batch = (batch / 2).max(floor);
            }
            r => return r,
        }
    }
}

/// `b` bytes as MiB with the exact count (limits are often a few bytes apart).
fn size(b: u64) -> String {
    format!("{:.1} MiB ({b} bytes)", b as f64 / (1u64 << 20) as f64)
}

fn mib(b: u64) -> u64 {
    b.div_ceil(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_partials_cover_every_batch() {
        assert_eq!(attn_splits(1), ATTN_MAX_SPLITS);
        assert_eq!(attn_splits(3), 10);
        assert_eq!(attn_splits(512), ATTN_BATCH_SPLITS);
        for b in [1usize, 2, 7, 8, 9, 64, 512] {
            let rows = attn_partial_rows(b);
            for n in 1..=b {
                assert!(n * attn_splits(n) <= rows, "batch {b}: {n} tokens");
            }
            assert_eq!(
                rows,
                ATTN_MAX_SPLITS.max(b * ATTN_BATCH_SPLITS),
                "batch {b}"
            );
        }
    }

    /// The integer mat-muls' quantized input is planned for the widest input (the FFN's, 8640
    /// on the 3B shape) at the batch, and only where batches exist.
    #[test]
    fn integer_matmul_input_is_planned() {
        let cfg = LlamaConfig {
            n_embd: 3200,
            n_layer: 26,
            n_ff: 8640,
            n_head: 32,
            n_head_kv: 32,
            head_dim: 100,
            rms_eps: 1e-6,
            rope_base: 10000.0,
            rope_dim: 100,
            n_ctx_train: 2048,
            n_vocab: 64256,
        };
        let total = |int8: bool, batch: usize| -> u64 {
            let opts = LoadOptions {
                matmul_int_dot: int8,
                ..Default::default()
            };
            scratch_sizes(&cfg, &opts, batch)
                .iter()
                .map(|(_, b)| b)
                .sum()
        };
        assert_eq!(total(true, 512) - total(false, 512), 270 * 512 * 48);
        assert_eq!(total(true, 64) - total(false, 64), 270 * 64 * 48);
        assert_eq!(total(true, 1), total(false, 1));
    }

    #[test]
    fn splits_cover_the_keys_and_stay_bounded() {
        for kv_len in [1usize, 63, 64, 65, 1000, 2048, 4096, 100_000] {
            let (n, per) = ahma_kernels::attention::splits(kv_len as u32, ATTN_MAX_SPLITS as u32);
            let (n, per, chunk) = (
                n as usize,
                per as usize,
                ahma_kernels::attention::CHUNK as usize,
            );
            assert!(n <= ATTN_MAX_SPLITS, "{kv_len}: {n} splits");
            assert!(n * per * chunk >= kv_len, "{kv_len}: does not cover");
            assert!((n - 1) * per * chunk < kv_len, "{kv_len}: empty last split");
        }
    }
}
