//! `ahma tokenize` and `ahma chat` run in-process on the committed fixtures.

use std::path::PathBuf;

use ahma_chat::{ChatTemplate, Conversation, Tokenizer};
use anyhow::Result;

fn fixture(area: &str, name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(area)
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn run(args: &[&str]) -> Result<String> {
    let mut out = Vec::new();
    ahma_cli::run(
        std::iter::once("ahma").chain(args.iter().copied()),
        &mut out,
    )?;
    Ok(String::from_utf8(out)?)
}

#[test]
fn tokenize_json_equals_autotokenizer() -> Result<()> {
    // The model fixture carries the tokenizer fixture's vocabulary (real scores).
    let model = fixture("models", "ahma_like_legacy.gguf");
    let tj = fixture("tokenizer", "tokenizer.json");
    let cases = std::fs::read_to_string(fixture("tokenizer", "expected_ids.jsonl"))?;
    for line in cases.lines().step_by(97) {
        let case: serde_json::Value = serde_json::from_str(line)?;
        let text = case["text"].as_str().unwrap_or_default();
        let expected = serde_json::json!({ "ids": case["hf"] });
        for extra in [&[][..], &["--tokenizer", tj.as_str()][..]] {
            // `--` so that texts starting with a dash stay positional.
            let mut args = vec!["tokenize", model.as_str(), "--json"];
            args.extend_from_slice(extra);
            args.extend(["--", text]);
            let got: serde_json::Value = serde_json::from_str(&run(&args)?)?;
            assert_eq!(got, expected, "{text:?} {extra:?}");
        }
    }
    let human = run(&["tokenize", &model, "Hei", "--no-special"])?;
    assert!(
        human.contains("merge order from scores") && !human.contains("\"<s>\""),
        "{human}"
    );
    Ok(())
}

#[test]
fn chat_streams_the_greedy_answer_of_the_reference() -> Result<()> {
    chat_greedy_answer_equals_reference("cpu")
}

#[test]
fn chat_on_the_gpu_engine_streams_the_greedy_answer_of_the_reference() -> Result<()> {
    chat_greedy_answer_equals_reference("gpu")
}

/// `ahma chat --backend BACKEND`, greedy, against the CPU reference's own greedy loop.
fn chat_greedy_answer_equals_reference(backend: &str) -> Result<()> {
    let model = fixture("models", "ahma_like_legacy.gguf");
    let tok = Tokenizer::from_json_file(fixture("tokenizer", "tokenizer.json"))?;
    let question = "Mikä on Suomen pääkaupunki?";
    let mut conv = Conversation::new(None);
    conv.push_user(question)?;
    let prompt = conv.prompt_ids(&ChatTemplate::for_tokenizer(&tok)?, &tok)?;
    let n_new = 6;
    // The reference's own greedy loop is the oracle for the chat loop.
    let mut reference = ahma_reference::Model::load(&model)?;
    let mut expected_ids = reference.generate_greedy(&prompt, n_new)?;
    if let Some(eos) = expected_ids.iter().position(|&t| t == 2) {
        expected_ids.truncate(eos);
    }
    let expected = tok.decode(&expected_ids, true)?;

    let max_length = (prompt.len() + n_new).to_string();
    let cli = <ahma_cli::Cli as clap::Parser>::try_parse_from([
        "ahma",
        "chat",
        &model,
        "--backend",
        backend,
        "--no-system",
        "--temperature",
        "0",
        "--repetition-penalty",
        "1",
        "--min-length",
        "0",
        "--max-length",
        &max_length,
        "--reserve",
        "1",
    ])?;
    let ahma_cli::Command::Chat(args) = cli.command else {
        panic!("not chat")
    };
    let mut input = std::io::Cursor::new(format!("{question}\n/exit\n"));
    let mut out = Vec::new();
    ahma_cli::cmd::chat::run_with_input(args, &mut input, &mut out)?;
    let out = String::from_utf8(out)?;
    let first_line = out.lines().next().unwrap_or_default();
    assert_eq!(
        first_line,
        expected.lines().next().unwrap_or_default(),
        "{out}"
    );
    assert!(out.starts_with(&expected), "{out:?} vs {expected:?}");
    Ok(())
}
