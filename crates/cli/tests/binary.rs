//! The real `ahma` binary: output on stdout, exit status, and errors on stderr without
//! a panic. (Command behaviour is tested in-process in the workspace `tests/` crate.)

use std::path::PathBuf;
use std::process::Command;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/models")
        .join(rel)
}

#[test]
fn info_json_succeeds() {
    let out = Command::new(env!("CARGO_BIN_EXE_ahma"))
        .args(["info", "--json"])
        .arg(fixture("kquant_gqa.gguf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config"]["n_head_kv"], 2);
}

#[test]
fn garbage_file_fails_with_a_message() {
    let path = std::env::temp_dir().join(format!("ahma-bin-{}-garbage.gguf", std::process::id()));
    std::fs::write(&path, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ahma"))
        .arg("info")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot read GGUF file"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unknown_backend_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ahma"))
        .args(["logits", "m.gguf", "--tokens", "1", "--backend", "tpu"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'tpu'"));
}
