//! Attention laid out for CPU adapters (`shaders/attention_rows.wgsl`): for a batch, one
//! invocation per (query token, head), no workgroup memory, no barrier and no split; for one
//! token, 8 lanes per head with one barrier. Built
//! through [`crate::attention::Attention::new_with`] with `rows`; this module holds its keys.

use crate::key::KernelKey;
use crate::step::key as step_key;

/// Query tokens per workgroup (one per invocation).
pub const WG: u32 = 16;

/// The key of the variant for `head_dim` (even, at most 256), an f16 or f32 cache and
/// `subgroup` (the fewest lanes of a subgroup, 4 or 8, where the lanes share their loads of keys
/// and values; 0: they do not).
pub fn key(head_dim: u32, kv_f16: bool, subgroup: u32) -> KernelKey {
    entry_key("main", head_dim, kv_f16, subgroup)
}

/// The key of the decode entry point (one token: a workgroup of 8 lanes per head, each walking
/// every 8th key, merged through workgroup memory after one barrier; no subgroup operations).
pub fn decode_key(head_dim: u32, kv_f16: bool) -> KernelKey {
    entry_key("decode", head_dim, kv_f16, 0)
}

fn entry_key(entry: &'static str, head_dim: u32, kv_f16: bool, subgroup: u32) -> KernelKey {
    let hp = head_dim / 2;
    let mut d = vec![
        ("WG", WG.to_string()),
        ("HP", hp.to_string()),
        ("HPR", hp.div_ceil(8).max(1).saturating_mul(8).to_string()),
    ];
    if kv_f16 {
        d.push(("F16", "1".into()));
    }
    if subgroup >= 4 {
        d.push(("SUBGROUPS", "1".into()));
    }
    if subgroup >= 8 {
        d.push(("SGW8", "1".into()));
    }
    step_key("attention_rows", entry, &d)
}

/// Variants for a set of head sizes (any even head_dim up to 256 builds; these are the ones
/// validated without a GPU: the Ahma models' 100, the test fixtures', and powers of two).
pub fn variants() -> Vec<KernelKey> {
    let mut v = Vec::new();
    for head_dim in [8, 16, 32, 40, 64, 80, 100, 128, 256] {
        for f16 in [false, true] {
            for sg in [0, 4, 8] {
                v.push(key(head_dim, f16, sg));
            }
            v.push(decode_key(head_dim, f16));
        }
    }
    v
}

/// The same `AttentionParams` as `shaders/attention.wgsl` (checked against this shader's copy).
pub fn params_layouts() -> Vec<crate::ParamsLayout> {
    crate::attention::params_layouts()
}
