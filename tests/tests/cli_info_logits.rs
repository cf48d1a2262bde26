//! The `ahma info` and `ahma logits` commands, run in-process through `ahma_cli::run`,
//! checked against the generator's records and llama.cpp's logits.

use ahma_tests::{fixture, nmse};
use serde_json::Value;

fn model(name: &str) -> String {
    fixture(&format!("models/{name}.gguf"))
        .display()
        .to_string()
}

/// Runs `ahma ARGS...` and returns its standard output.
fn ahma(args: &[&str]) -> anyhow::Result<String> {
    let mut out = Vec::new();
    ahma_cli::run(
        std::iter::once("ahma").chain(args.iter().copied()),
        &mut out,
    )?;
    Ok(String::from_utf8(out)?)
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(&format!("models/{name}.json"))).unwrap())
        .unwrap()
}

/// llama.cpp's logits row `row` of a fixture.
fn llama_cpp_logits(name: &str, row: usize) -> Vec<f32> {
    ahma_tests::ModelFixture::load(name).unwrap().logits[row].clone()
}

fn prompt(name: &str) -> Vec<u64> {
    fixture_json(name)["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn info_json_describes_the_kquant_fixture() {
    let out = ahma(&["info", &model("kquant_gqa"), "--json"]).unwrap();
    let info: Value = serde_json::from_str(&out).unwrap();
    let expected = fixture_json("kquant_gqa");
    assert_eq!(info["architecture"], "llama");
    assert_eq!(info["gguf_version"], 3);
    let c = &info["config"];
    for key in [
        "n_embd",
        "n_layer",
        "n_ff",
        "n_head",
        "n_head_kv",
        "head_dim",
        "n_vocab",
        "n_ctx_train",
    ] {
        assert_eq!(c[key], expected["config"][key], "config.{key}");
    }
    assert_eq!(c["rope_dim"], 64);
    // The histogram as the generator wrote it (tensor counts per type).
    let hist = expected["type_histogram"].as_object().unwrap();
    let types = info["tensor_types"].as_object().unwrap();
    assert_eq!(types.len(), hist.len());
    for (ty, count) in hist {
        assert_eq!(&types[ty]["tensors"], count, "tensors of type {ty}");
    }
    // KV cache at 2048 tokens: K and V, 2 layers, 2 KV heads of 64.
    let kv = 2 * 2 * 2048 * 128;
    assert_eq!(info["memory"]["context"], 2048);
    assert_eq!(info["memory"]["kv_cache_f16_bytes"], kv * 2);
    assert_eq!(info["memory"]["kv_cache_f32_bytes"], kv * 4);
    let weights = info["memory"]["weights_bytes"].as_u64().unwrap();
    let file = info["file_bytes"].as_u64().unwrap();
    assert!(
        weights < file && file - weights < 200_000,
        "weights {weights} of a {file}-byte file"
    );
    assert_eq!(info["tokenizer_model"], "llama");
    assert_eq!(info["n_tokens"], 4000);
}

#[test]
fn info_text_shows_ahma_shapes() {
    let out = ahma(&["info", &model("ahma_like_legacy")]).unwrap();
    assert!(out.contains("head_dim 100"), "{out}");
    assert!(out.contains("n_head 8, n_head_kv 8"), "{out}");
    for ty in [
        "F32", "F16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL",
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(&format!("{ty} "))),
            "{ty} missing:\n{out}"
        );
    }
    assert!(out.contains("KV cache f16 / f32"), "{out}");
}

#[test]
fn logits_json_of_the_last_position_match_llama_cpp() {
    let ids = prompt("kquant_gqa");
    let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let out = ahma(&[
        "logits",
        &model("kquant_gqa"),
        "--tokens",
        &list,
        "--backend",
        "cpu",
        "--json",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let ours = floats(&v["logits"]);
    let e = nmse(&ours, &llama_cpp_logits("kquant_gqa", ids.len() - 1));
    println!("ahma logits kquant_gqa last position: NMSE {e:.3e}");
    assert!(e <= 1e-5, "NMSE {e:e}");
}

#[test]
fn logits_all_json_has_one_row_per_position() {
    let ids = &prompt("ahma_like_legacy")[..4];
    let list = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let out = ahma(&[
        "logits",
        &model("ahma_like_legacy"),
        "--tokens",
        &list,
        "--all",
        "--json",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    let rows = v["logits"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for (pos, row) in rows.iter().enumerate() {
        let e = nmse(&floats(row), &llama_cpp_logits("ahma_like_legacy", pos));
        assert!(e <= 1e-5, "position {pos}: NMSE {e:e}");
    }
}

#[test]
fn logits_text_lists_top_tokens() {
    let out = ahma(&["logits", &model("kquant_gqa"), "--tokens", "1,300"]).unwrap();
    assert!(out.starts_with("pos 1 token 300: top-5 "), "{out}");
}

#[test]
fn garbage_and_truncated_files_are_clear_errors() {
    let dir = std::env::temp_dir();
    let garbage = dir.join(format!("ahma-cli-{}-garbage.gguf", std::process::id()));
    std::fs::write(&garbage, b"definitely not GGUF").unwrap();
    let bytes = std::fs::read(fixture("models/kquant_gqa.gguf")).unwrap();
    let cut = dir.join(format!("ahma-cli-{}-cut.gguf", std::process::id()));
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();

    let err = format!(
        "{:#}",
        ahma(&["info", garbage.to_str().unwrap()]).unwrap_err()
    );
    assert!(
        err.contains("cannot read GGUF file") && err.contains("not a GGUF file"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        ahma(&["info", cut.to_str().unwrap(), "--json"]).unwrap_err()
    );
    assert!(err.contains("beyond the end"), "{err}");
    let err = format!(
        "{:#}",
        ahma(&["logits", cut.to_str().unwrap(), "--tokens", "1"]).unwrap_err()
    );
    assert!(err.contains("cannot load model"), "{err}");
    let err = format!(
        "{:#}",
        ahma(&["info", "/nonexistent/model.gguf"]).unwrap_err()
    );
    assert!(err.contains("cannot read GGUF file"), "{err}");
    std::fs::remove_file(garbage).unwrap();
    std::fs::remove_file(cut).unwrap();
}

#[test]
fn bad_arguments_are_errors() {
    let m = model("kquant_gqa");
    let err = format!(
        "{:#}",
        ahma(&["logits", &m, "--tokens", "1,99999"]).unwrap_err()
    );
    assert!(err.contains("token id 99999 is out of range"), "{err}");
    // Backends are `cpu` and `gpu`; anything else is a usage error.
    assert!(ahma(&["logits", &m, "--tokens", "1", "--backend", "tpu"]).is_err());
    assert!(ahma(&["logits", &m, "--tokens", "x"]).is_err());
    assert!(ahma(&["logits", &m]).is_err());
}

/// `ahma bench --read-probe` reports what a shader reads per second for every way of reading
/// and order, the best of them, and decode's weight bandwidth as a share of it.
#[test]
fn bench_read_probe() {
    let m = model("kquant_gqa");
    let args = ["bench", &m, "--prompt-tokens", "4", "--gen-tokens", "4"];
    let out = ahma(&[&args[..], &["--ctx", "32", "--read-probe", "--json"]].concat()).unwrap();
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let each = v["read_probe"].as_object().unwrap();
    let mut names: Vec<&str> = each.keys().map(String::as_str).collect();
    names.sort_unstable();
    let want = [
        "texels_chunks",
        "texels_interleaved",
        "u32_chunks",
        "u32_interleaved",
        "vec4_chunks",
        "vec4_interleaved",
    ];
    assert_eq!(names, want, "{v}");
    let rates: Vec<f64> = each.values().map(|r| r.as_f64().unwrap()).collect();
    assert!(rates.iter().all(|&r| r > 0.0), "{v}");
    let best = v["read_probe_gb_per_s"].as_f64().unwrap();
    assert_eq!(best, rates.iter().cloned().fold(0.0, f64::max));
    let implied = v["weight_bytes_per_token"].as_f64().unwrap()
        * v["decode_tokens_per_s"].as_f64().unwrap()
        / 1e9;
    assert!((v["implied_gb_per_s"].as_f64().unwrap() - implied).abs() <= 1e-12 * implied);
    let ratio = v["decode_read_ratio"].as_f64().unwrap();
    assert!((ratio - implied / best).abs() <= 1e-9 * ratio, "{v}");
    // Without the flag there is no probe, but the implied bandwidth is always there.
    let out = ahma(&[&args[..], &["--ctx", "32", "--json"]].concat()).unwrap();
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v.get("read_probe").is_none() && v["implied_gb_per_s"].as_f64().is_some());
}

/// `ahma bench --json` keeps the keys other tools read, and with `--profile` times every
/// operation of the prefill and of the decode steps (the fixture's one layer, on whatever
/// adapter runs the tests); `--sampled` names the sampling, a bad `--unchecked` is an error.
#[test]
fn bench_json_keys_and_profile() {
    let m = model("kquant_gqa");
    let out = ahma(&[
        "bench",
        &m,
        "--prompt-tokens",
        "12",
        "--gen-tokens",
        "5",
        "--ctx",
        "64",
        "--profile",
        "--sampled",
        "--json",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    for key in [
        "adapter",
        "backend",
        "f16",
        "subgroups",
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "dispatches_per_token",
        "submits_per_token",
        "readback_bytes_per_token",
        "weight_bytes_per_token",
        "cpu_record_ms_per_token",
        "max_batch",
        "pipeline_decode",
        "fused_rope",
        "unchecked",
        "sampling",
    ] {
        assert!(v.get(key).is_some(), "no {key} in {v}");
    }
    assert_eq!(v["submits_per_token"], 1.0);
    assert_eq!(v["readback_bytes_per_token"], 4.0);
    assert!(v["sampling"].as_str().unwrap().starts_with("chat default"));
    // The adapter's cooperative-matrix shapes, by name (none on the CPU adapters).
    let coop = v["cooperative_matrix"].as_array().unwrap();
    assert!(
        coop.iter()
            .all(|s| s.as_str().is_some_and(|s| s.contains("->"))),
        "{v}"
    );
    let info: Value = serde_json::from_str(&ahma(&["info", &m, "--json"]).unwrap()).unwrap();
    let n_layer = info["config"]["n_layer"].as_f64().unwrap();
    let p = &v["profile"];
    assert_eq!(p["decode"]["passes"], 5);
    assert_eq!(p["prefill"]["passes"], 1);
    for (phase, ops) in [
        (
            "prefill",
            &["embed", "qkv", "attention", "gate_up", "down"][..],
        ),
        (
            "decode",
            &[
                "norm+qkv+rope+kv",
                "attention",
                "norm+gate_up",
                "down",
                "sample",
            ][..],
        ),
    ] {
        for op in ops {
            let o = &p[phase]["ops"][op];
            assert!(
                o["ms_per_pass"].as_f64().unwrap() >= 0.0,
                "{phase} {op}: {o}"
            );
            let runs = if ["embed", "sample"].contains(op) {
                1.0
            } else {
                n_layer
            };
            assert_eq!(o["runs_per_pass"].as_f64(), Some(runs), "{phase} {op}");
        }
        assert!(p[phase]["gpu_ms_per_pass"].as_f64().unwrap() > 0.0);
    }
    let err = ahma(&["bench", &m, "--unchecked", "speed", "--json"]).unwrap_err();
    assert!(err.to_string().contains("unknown shader check"), "{err}");
}
