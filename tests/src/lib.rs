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
