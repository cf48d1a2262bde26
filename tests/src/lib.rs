//! Shared helpers for the workspace integration tests in `tests/tests/`.
//!
//! Fixtures live in `tests/fixtures/`; they are produced by the committed
//! generators in `tests/gen/` from independent oracles and never from our own output.

use std::path::PathBuf;

/// Absolute path of a file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// Normalized mean squared error, `sum((a-b)^2) / sum(b^2)`, as ggml's
/// `test-backend-ops` defines it (`b` is the reference).
pub fn nmse(ours: &[f32], reference: &[f32]) -> f64 {
    assert_eq!(ours.len(), reference.len(), "length mismatch");
    let mut err = 0.0f64;
    let mut norm = 0.0f64;
    for (&a, &b) in ours.iter().zip(reference) {
        let d = a as f64 - b as f64;
        err += d * d;
        norm += (b as f64) * (b as f64);
    }
    if norm == 0.0 {
        err
    } else {
        err / norm
    }
}

/// What llama.cpp computed for one model fixture of `tests/gen/gen_model_fixtures.py`
/// (`tests/fixtures/models/NAME.json` plus its little-endian f32 logits file).
pub struct ModelFixture {
    /// The prompt, fed from position 0.
    pub prompt: Vec<u32>,
    pub n_vocab: usize,
    /// Rows at `positions`: every prompt position, then the last of prompt + greedy.
    pub logits: Vec<Vec<f32>>,
    pub positions: Vec<usize>,
    /// llama.cpp's 32-token greedy continuation of the prompt.
    pub greedy: Vec<u32>,
    /// NMSE of an exact f64 forward against llama.cpp: llama.cpp's own rounding floor.
    pub floor: f64,
}

impl ModelFixture {
    /// Reads the record of fixture `name` (e.g. `"kquant_gqa"`).
    pub fn load(name: &str) -> anyhow::Result<Self> {
        use anyhow::Context;
        let path = fixture(&format!("models/{name}.json"));
        let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let uints = |key: &str| -> anyhow::Result<Vec<u64>> {
            j[key]
                .as_array()
                .with_context(|| format!("{key} is not an array"))?
                .iter()
                .map(|v| v.as_u64().with_context(|| format!("{key} holds {v}")))
                .collect()
        };
        let shape = uints("logits_shape")?;
        anyhow::ensure!(shape.len() == 2, "logits_shape {shape:?}");
        let (rows, n_vocab) = (shape[0] as usize, shape[1] as usize);
        let file = j["logits_file"].as_str().context("logits_file")?;
        let bytes = std::fs::read(fixture(&format!("models/{file}")))?;
        anyhow::ensure!(
            bytes.len() == rows * n_vocab * 4,
            "logits file size {} for shape {shape:?}",
            bytes.len()
        );
        let flat: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(ModelFixture {
            prompt: uints("prompt_ids")?.into_iter().map(|v| v as u32).collect(),
            n_vocab,
            logits: flat.chunks_exact(n_vocab).map(<[f32]>::to_vec).collect(),
            positions: uints("logits_positions")?
                .into_iter()
                .map(|v| v as usize)
                .collect(),
            greedy: uints("greedy_ids")?.into_iter().map(|v| v as u32).collect(),
            floor: j["exact_f64_vs_llama_cpp_nmse"]
                .as_f64()
                .context("exact_f64_vs_llama_cpp_nmse")?,
        })
    }
}
