//! The CPU reference turns bad input into typed errors, never panics.

use ahma_reference::{Model, ReferenceError};
use ahma_tests::fixture;

fn small_model() -> Model {
    Model::load(fixture("models/kquant_gqa.gguf")).unwrap()
}

/// A scratch file under the system temp dir, unique to this process and test.
fn scratch(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("ahma-reference-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn token_out_of_range() {
    let mut m = small_model();
    let n = m.config.n_vocab as u32;
    assert!(
        matches!(m.forward(n, 0), Err(ReferenceError::TokenOutOfRange { token, n_vocab }) if token == n && n_vocab == n as usize)
    );
}

#[test]
fn positions_must_not_skip_ahead() {
    let mut m = small_model();
    assert!(matches!(
        m.forward(1, 1),
        Err(ReferenceError::PositionGap { pos: 1, cached: 0 })
    ));
    m.forward(1, 0).unwrap();
    m.forward(5, 1).unwrap();
    assert_eq!(m.n_cached(), 2);
    assert!(matches!(
        m.forward(5, 3),
        Err(ReferenceError::PositionGap { pos: 3, cached: 2 })
    ));
    let n_ctx = m.config.n_ctx_train;
    assert!(matches!(
        m.forward(1, n_ctx),
        Err(ReferenceError::ContextFull { .. })
    ));
}

#[test]
fn rewinding_recomputes_the_same_logits() {
    let mut m = small_model();
    m.forward(1, 0).unwrap();
    let first = m.forward(300, 1).unwrap().to_vec();
    m.forward(301, 2).unwrap();
    // Going back to position 1 forgets position 2 and reproduces the logits exactly.
    assert_eq!(m.forward(300, 1).unwrap(), &first[..]);
    assert_eq!(m.n_cached(), 2);
    m.reset();
    assert_eq!(m.n_cached(), 0);
}

#[test]
fn empty_prompt_is_an_error() {
    let mut m = small_model();
    assert!(matches!(
        m.generate_greedy(&[], 4),
        Err(ReferenceError::EmptyPrompt)
    ));
}

#[test]
fn truncated_and_garbage_files_are_errors() {
    let bytes = std::fs::read(fixture("models/kquant_gqa.gguf")).unwrap();
    let cut = scratch("truncated.gguf", &bytes[..bytes.len() / 2]);
    let err = Model::load(&cut).unwrap_err();
    assert!(matches!(err, ReferenceError::Gguf(_)), "{err}");
    let garbage = scratch("garbage.gguf", b"this is not a model file at all");
    let err = Model::load(&garbage).unwrap_err();
    assert!(matches!(err, ReferenceError::Gguf(_)), "{err}");
    for p in [cut, garbage] {
        std::fs::remove_file(p).unwrap();
    }
}
