//! The CPU reference forward against llama.cpp on the random model fixtures of
//! `tests/gen/gen_model_fixtures.py` (logits of every prompt position, the 32-token greedy
//! continuation, and the logits after it through the KV cache).
//!
//! Run with `--nocapture` to see the NMSE per fixture.

use ahma_reference::Model;
use ahma_tests::{fixture, nmse};

/// The gate from the project plan: NMSE of the reference logits against llama.cpp's.
/// llama.cpp itself rounds activations before quantized matmuls; the generator keeps
/// that floor near 2e-6 for these fixtures (recorded in their JSON).
const MAX_NMSE: f64 = 1e-5;

use ahma_tests::ModelFixture as Expected;

fn load_expected(name: &str) -> Expected {
    Expected::load(name).unwrap()
}

fn check_fixture(name: &str) {
    let start = std::time::Instant::now();
    let e = load_expected(name);
    let mut model = Model::load(fixture(&format!("models/{name}.gguf"))).unwrap();
    assert_eq!(model.config.n_vocab, e.n_vocab);
    let n_prompt = e.prompt.len();

    // 1. Logits of every prompt position, fed one token at a time through the KV cache.
    let mut ours = Vec::new();
    let mut reference = Vec::new();
    let mut worst = 0.0f64;
    for (pos, &tok) in e.prompt.iter().enumerate() {
        assert_eq!(e.positions[pos], pos);
        let logits = model.forward(tok, pos).unwrap();
        worst = worst.max(nmse(logits, &e.logits[pos]));
        ours.extend_from_slice(logits);
        reference.extend_from_slice(&e.logits[pos]);
    }
    let prompt_nmse = nmse(&ours, &reference);

    // 2. The greedy continuation must be llama.cpp's, token for token.
    let greedy = model.generate_greedy(&e.prompt, e.greedy.len()).unwrap();
    let matching = greedy
        .iter()
        .zip(&e.greedy)
        .take_while(|(a, b)| a == b)
        .count();

    // 3. Logits after feeding the last greedy token too (position n_prompt + 31).
    let last_pos = *e.positions.last().unwrap();
    assert_eq!(last_pos, n_prompt + e.greedy.len() - 1);
    let last = model.forward(*e.greedy.last().unwrap(), last_pos).unwrap();
    let last_nmse = nmse(last, e.logits.last().unwrap());

    println!(
        "{name}: prompt NMSE {prompt_nmse:.3e} (worst position {worst:.3e}), position {last_pos} NMSE {last_nmse:.3e}, \
         llama.cpp floor {:.3e}, greedy {matching}/{} identical, {:.2?}",
        e.floor,
        e.greedy.len(),
        start.elapsed()
    );
    assert!(
        prompt_nmse <= MAX_NMSE,
        "{name}: prompt logits NMSE {prompt_nmse:e} > {MAX_NMSE:e}"
    );
    assert!(
        worst <= MAX_NMSE,
        "{name}: worst position NMSE {worst:e} > {MAX_NMSE:e}"
    );
    assert!(
        last_nmse <= MAX_NMSE,
        "{name}: position {last_pos} NMSE {last_nmse:e} > {MAX_NMSE:e}"
    );
    assert_eq!(
        greedy, e.greedy,
        "{name}: greedy continuation differs from llama.cpp's"
    );
}

/// Ahma-3B's shape family: head_dim 100, rows of 25 and 27 blocks, legacy quants + IQ4_NL.
#[test]
fn ahma_like_legacy_matches_llama_cpp() {
    check_fixture("ahma_like_legacy");
}

/// K-quants, IQ4_XS, F32/F16/BF16 matrices, grouped-query attention, two layers.
#[test]
fn kquant_gqa_matches_llama_cpp() {
    check_fixture("kquant_gqa");
}

/// The published Ahma-3B Q4_K_M layout in small: Q5_0 bulk, Q8_0 attn_v and ffn_down in the
/// second layer (so the engine stacks q/k/v, gate/up, and Q5_0 q/k with a Q8_0 v).
#[test]
fn ahma_q4km_layout_matches_llama_cpp() {
    check_fixture("ahma_q4km_layout");
}

/// The fixtures together hold every tensor type the engine supports, so the two tests
/// above run each dequantizer inside a real forward pass.
#[test]
fn fixtures_cover_every_tensor_type() {
    let mut seen = std::collections::HashSet::new();
    for name in ["ahma_like_legacy", "kquant_gqa"] {
        let (g, _) = ahma_gguf::Gguf::open(fixture(&format!("models/{name}.gguf"))).unwrap();
        seen.extend(g.tensors.iter().map(|t| t.ty));
    }
    for ty in ahma_gguf::GgmlType::ALL {
        assert!(seen.contains(&ty), "no fixture tensor has type {ty}");
    }
}
