//! The GPU engine against llama.cpp on the random model fixtures of
//! `tests/gen/gen_model_fixtures.py`: logits of every prompt position (NMSE
//! gate 1e-5 on the f32 path, 1e-4 with the f16 KV cache), the 32-token greedy
//! continuation, the logits after it through the KV cache, and batched prefill
//! against token-by-token decode. Both paths run on every adapter (`force_f32`
//! gives the f32 one). Run with `--nocapture` to see the NMSE per fixture.

use std::sync::{Arc, OnceLock};

use ahma_engine::{load_file, EngineError, LoadOptions, Model, ModelLoader, SamplingParams};
use ahma_kernels::{ContextOptions, GpuContext, MatVecShape};
use ahma_tests::{fixture, nmse};

const FIXTURES: [&str; 3] = ["ahma_like_legacy", "kquant_gqa", "ahma_q4km_layout"];

use ahma_tests::ModelFixture as Expected;

fn load_expected(name: &str) -> Expected {
    Expected::load(name).unwrap()
}

/// One context per path for the whole test binary, so compiled pipelines are
/// shared between the models the tests load (compiling is most of the time
/// on lavapipe).
fn context(force_f32: bool) -> Arc<GpuContext> {
    context_with(force_f32, false)
}

/// A context for the f32 or f16 path, with or without the subgroup reductions.
fn context_with(force_f32: bool, disable_subgroups: bool) -> Arc<GpuContext> {
    static CTX: [OnceLock<Arc<GpuContext>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    CTX[usize::from(force_f32) + 2 * usize::from(disable_subgroups)]
        .get_or_init(|| {
            let opts = ContextOptions {
                force_f32,
                disable_subgroups,
                ..Default::default()
            };
            let ctx = pollster::block_on(GpuContext::new(opts)).unwrap_or_else(|e| {
                panic!("GPU tests need an adapter (install lavapipe: mesa-vulkan-drivers): {e}")
            });
            Arc::new(ctx)
        })
        .clone()
}

fn load(name: &str, force_f32: bool, max_batch: usize) -> Model {
    load_in(context(force_f32), name, max_batch)
}

fn load_in(ctx: Arc<GpuContext>, name: &str, max_batch: usize) -> Model {
    let opts = LoadOptions {
        n_ctx: 64,
        max_batch,
        ..Default::default()
    };
    pollster::block_on(load_file(
        ctx,
        fixture(&format!("models/{name}.gguf")),
        opts,
    ))
    .unwrap()
}

/// NMSE gate of logits made by decode mat-vecs that take x in 8-bit integers
/// (`LoadOptions::matvec_int_dot`): llama.cpp's activation quantization moves its own logits by
/// this order against float products (ggml's `test-backend-ops` allows 5e-4 per product).
const INT_DOT_GATE: f64 = 1e-3;

fn check(name: &str, force_f32: bool) {
    check_in(context(force_f32), name)
}

fn check_in(ctx: Arc<GpuContext>, name: &str) {
    check_with(ctx, name, false, None, None, None, None)
}

/// Logits of the prompt (batched prefill) and of the last token through the cache, and the
/// greedy continuation, against llama.cpp; `int_dot` builds the decode mat-vecs and the
/// prefill mat-muls with packed integer dot products (the logits then get [`INT_DOT_GATE`]),
/// `tile` names the prefill mat-mul tile (`LoadOptions::matmul_tile`), `shape` the decode
/// mat-vecs' workgroup shape (`LoadOptions::matvec_shape`; `None`: the adapter's), `blocks`
/// their walk and `rows` the layout of prefill's mat-muls and attention (`matvec_blocks`,
/// `matmul_rows`, `attention_rows`; `None`: the adapter's).
fn check_with(
    ctx: Arc<GpuContext>,
    name: &str,
    int_dot: bool,
    tile: Option<&str>,
    shape: Option<MatVecShape>,
    blocks: Option<bool>,
    rows: Option<bool>,
) {
    let start = std::time::Instant::now();
    let e = load_expected(name);
    let opts = LoadOptions {
        n_ctx: 64,
        max_batch: 64,
        matvec_int_dot: int_dot,
        matmul_int_dot: int_dot,
        matmul_tile: tile.map(|t| t.parse().unwrap()),
        matvec_shape: shape,
        matvec_blocks: blocks,
        matmul_rows: rows,
        attention_rows: rows,
        ..Default::default()
    };
    let mut model = pollster::block_on(load_file(
        ctx,
        fixture(&format!("models/{name}.gguf")),
        opts,
    ))
    .unwrap();
    // The prefill layout in use: the one named, else rows on CPU adapters unless a tile is.
    let cpu = MatVecShape::for_device(model.context().adapter().device_type) == MatVecShape::CPU;
    assert_eq!(
        model.options().matmul_rows,
        Some(rows.unwrap_or(cpu && tile.is_none()))
    );
    assert_eq!(model.options().attention_rows, Some(rows.unwrap_or(cpu)));
    let f16 = model.context().use_f16();
    let gate = if int_dot {
        INT_DOT_GATE
    } else if f16 {
        1e-4
    } else {
        1e-5
    };
    assert_eq!(model.config().n_vocab, e.n_vocab);

    // 1. Logits of every prompt position in one batched prefill.
    let got = pollster::block_on(model.logits(&e.prompt)).unwrap();
    let n = e.prompt.len();
    let want: Vec<f32> = e.logits[..n].concat();
    let total = nmse(&got, &want);
    let worst = (0..n)
        .map(|p| {
            assert_eq!(e.positions[p], p);
            nmse(&got[p * e.n_vocab..][..e.n_vocab], &e.logits[p])
        })
        .fold(0.0, f64::max);
    println!(
        "{name} f16_kv={f16} int8={int_dot}: prompt logits NMSE {total:.3e} (worst position {worst:.3e})"
    );
    assert!(
        total <= gate,
        "{name} f16_kv={f16}: NMSE {total:e} > {gate:e}"
    );

    // 2. Greedy continuation: prefill samples the first token, then decode.
    model.reset();
    model.set_sampling(SamplingParams::greedy()).unwrap();
    let mut ids = vec![pollster::block_on(model.prefill(&e.prompt)).unwrap()];
    while ids.len() < e.greedy.len() {
        ids.push(pollster::block_on(model.decode()).unwrap());
    }
    assert_eq!(
        ids, e.greedy,
        "{name} f16_kv={f16} int8={int_dot}: greedy continuation differs from llama.cpp"
    );

    // 3. Logits of the last greedy token, at position 47, through the cache.
    model.discard_pending();
    let last = pollster::block_on(model.logits(&ids[ids.len() - 1..])).unwrap();
    let pos = n + ids.len() - 1;
    assert_eq!(*e.positions.last().unwrap(), pos);
    let tail = nmse(&last, e.logits.last().unwrap());
    println!(
        "{name} f16_kv={f16} int8={int_dot}: logits at position {pos} NMSE {tail:.3e} ({:.1?})",
        start.elapsed()
    );
    assert!(
        tail <= gate,
        "{name} f16_kv={f16} int8={int_dot}: NMSE at {pos} {tail:e} > {gate:e}"
    );
}

#[test]
fn engine_matches_llama_cpp_f32_path() {
    for name in FIXTURES {
        check(name, true);
    }
}

#[test]
fn engine_matches_llama_cpp_f16_path() {
    for name in FIXTURES {
        check(name, false);
    }
}

/// Decode's mat-vecs and prefill's mat-muls in 8-bit integers and packed integer dot products
/// (`LoadOptions::matvec_int_dot` and `matmul_int_dot`) on the f16 path with subgroups (the
/// adapter's prefill layout: on a CPU adapter such as lavapipe the row-per-invocation product
/// reading the quantized X, on a GPU the automatic tiles) and the f32 path without (64 x 64
/// tiles with 8 x 8 outputs per thread): the greedy continuation is still llama.cpp's, token
/// for token.
#[test]
fn engine_with_int8_products_matches_llama_cpp() {
    for name in FIXTURES {
        check_with(
            context_with(false, false),
            name,
            true,
            None,
            None,
            None,
            None,
        );
        check_with(
            context_with(true, true),
            name,
            true,
            Some("64x64x8x8"),
            None,
            None,
            None,
        );
    }
}

/// The mat-vecs, mat-muls and prefill attention as GPUs run them (128 threads x 4 rows,
/// quarter-units per thread; tiles staged in workgroup memory; split attention passes) on both
/// paths: lavapipe, a CPU adapter, otherwise runs the engine with 16 x 32 whole units, the
/// row-per-invocation mat-mul and one invocation per token and head in prefill's attention.
#[test]
fn engine_with_the_gpu_kernel_layouts_matches_llama_cpp() {
    for name in FIXTURES {
        for force_f32 in [false, true] {
            check_with(
                context(force_f32),
                name,
                false,
                None,
                Some(MatVecShape::GPU),
                Some(false),
                Some(false),
            );
        }
    }
}

/// The f16 path with the workgroup-memory reductions instead of subgroups (the f32 path
/// without subgroups is covered by `stacked_projections_match_the_cpu_reference`).
#[test]
fn engine_matches_llama_cpp_without_subgroups() {
    for name in FIXTURES {
        check_in(context_with(false, true), name);
    }
}

/// `ahma synth --preset tiny --mix q4km --n-vocab 300` into a fresh temporary folder
/// (returned with the file, for the caller to remove).
fn synth_tiny(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("ahma-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny_q4km.gguf");
    let mut out = Vec::new();
    ahma_cli::run(
        [
            "ahma",
            "synth",
            path.to_str().unwrap(),
            "--preset",
            "tiny",
            "--mix",
            "q4km",
            "--n-vocab",
            "300",
        ],
        &mut out,
    )
    .unwrap();
    (dir, path)
}

/// The fixtures give every tensor of a layer its own type, so q/k/v and gate/up never share a
/// stack there. Here a synthetic model with the Q4_K_M mix of the published files (`ahma synth
/// --preset tiny`: Q5_0 q/k/v and gate/up in layer 0, a Q8_0 attn_v in layer 1) runs through the
/// stacked, norm-fused decode products and the row-range prefill products, against the CPU
/// reference forward (itself checked against llama.cpp in reference_llamacpp.rs): logits of a
/// batched prompt, then of tokens decoded one at a time through the cache, on every path.
#[test]
fn stacked_projections_match_the_cpu_reference() {
    let (dir, path) = synth_tiny("stacked");
    // the synthetic vocabulary (what lets llama.cpp load synth files for the peer benchmarks)
    // is a working SentencePiece vocabulary: BOS/EOS, byte fallback, round trip
    let (g, _file) = ahma_gguf::Gguf::open(&path).unwrap();
    let tok = ahma_chat::Tokenizer::from_gguf(&g).unwrap();
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(1), Some(2)));
    let text = "kale mino ÄÖ {x}";
    let ids = tok.encode(text, true).unwrap();
    assert_eq!(ids[0], 1);
    assert!(ids.iter().all(|&i| i < 300));
    assert_eq!(tok.decode(&ids, true).unwrap(), text);
    let mut reference = ahma_reference::Model::load(&path).unwrap();
    let prompt: Vec<u32> = vec![1, 17, 250, 3, 99, 42, 7, 288];
    let extra: Vec<u32> = vec![5, 123, 64];
    let mut want = Vec::new();
    for (pos, &t) in prompt.iter().chain(&extra).enumerate() {
        want.push(reference.forward(t, pos).unwrap().to_vec());
    }
    // Every path with RoPE fused into the q/k/v mat-vecs (the default; layer 1's q/k and its
    // Q8_0 v in one mat-vec), the default path with one q/k/v mat-vec per type, with RoPE in a
    // dispatch of its own, the mat-vecs walking two units per loop step, and the mat-vecs and
    // mat-muls in 8-bit integers (a looser gate, as for llama.cpp's own quantized-activation
    // products). The mat-vecs take the adapter's choices (on lavapipe, a CPU adapter, 16 x 32
    // walking whole units per thread), or the ones named: the GPUs' 128 x 4 walking quarter-units
    // (`gpu`, which the rows with two units per loop step need, with the GPUs' prefill tiles),
    // 64 x 8 walking quarter-units, or 256 x 4 (`deep`: half the loop steps per row of 128 x 4).
    let gpu = Some((MatVecShape::GPU, false));
    let wide = Some(("64x8".parse::<MatVecShape>().unwrap(), false));
    let deep = Some(("256x4".parse::<MatVecShape>().unwrap(), false));
    for (force_f32, no_sg, fuse_rope, matvec_pairs, mixed_qkv, int_dot, matvec) in [
        (true, false, true, false, true, false, None),
        (false, false, true, false, true, false, None),
        (true, true, true, false, true, false, None),
        (false, true, true, false, true, false, None),
        (false, false, true, false, false, false, None),
        (false, false, false, false, true, false, None),
        (false, false, true, true, true, false, gpu),
        (true, true, true, true, true, false, gpu),
        (false, false, true, false, true, true, None),
        (true, true, true, true, true, true, gpu),
        (false, false, false, false, false, true, None),
        (false, false, true, false, true, false, gpu),
        (true, true, true, false, true, false, gpu),
        (false, false, false, true, false, true, gpu),
        (false, false, true, false, true, false, wide),
        (true, true, true, false, true, false, wide),
        (false, false, true, false, true, false, deep),
        (true, true, true, true, true, false, deep),
    ] {
        let ctx = context_with(force_f32, no_sg);
        // The adapter's choices: whole units wherever its shape is the CPU adapters'.
        let (want_shape, want_blocks) = matvec.unwrap_or_else(|| {
            let s = MatVecShape::for_device(ctx.adapter().device_type);
            (s, s == MatVecShape::CPU)
        });
        // Prefill's mat-muls and attention: in tiles and split passes with the GPUs' mat-vecs,
        // else the adapter's choice (one weight row, or one token and head, per invocation on
        // CPU adapters).
        let rows = (matvec == gpu).then_some(false);
        let cpu = MatVecShape::for_device(ctx.adapter().device_type) == MatVecShape::CPU;
        let want_rows = rows.unwrap_or(cpu);
        let path_name = format!(
            "{}{}{}{}{}{} {want_shape}{}{}",
            if ctx.use_f16() { "f16" } else { "f32" },
            if ctx.use_subgroups() { "+sg" } else { "" },
            if fuse_rope { "" } else { " rope apart" },
            if matvec_pairs { " pairs" } else { "" },
            if mixed_qkv { "" } else { " q/k/v per type" },
            if int_dot { " int8" } else { "" },
            if want_blocks { " units" } else { " quarters" },
            if want_rows {
                ", mat-mul rows"
            } else {
                ", mat-mul tiles"
            }
        );
        let gate = if int_dot {
            INT_DOT_GATE
        } else if ctx.use_f16() {
            1e-4
        } else {
            1e-5
        };
        let opts = LoadOptions {
            n_ctx: 64,
            max_batch: 16,
            fuse_rope,
            matvec_pairs,
            mixed_qkv,
            matvec_int_dot: int_dot,
            matmul_int_dot: int_dot,
            matvec_shape: matvec.map(|m| m.0),
            matvec_blocks: matvec.map(|m| m.1),
            matmul_rows: rows,
            attention_rows: rows,
            ..Default::default()
        };
        let mut model = pollster::block_on(load_file(ctx, &path, opts)).unwrap();
        assert_eq!(model.options().matmul_rows, Some(want_rows));
        assert_eq!(model.options().attention_rows, Some(want_rows));
        assert_eq!(model.options().matvec_shape, Some(want_shape));
        assert_eq!(model.options().matvec_blocks, Some(want_blocks));
        let got = pollster::block_on(model.logits(&prompt)).unwrap();
        let n_vocab = model.config().n_vocab;
        for (p, w) in want[..prompt.len()].iter().enumerate() {
            let e = nmse(&got[p * n_vocab..][..n_vocab], w);
            assert!(e <= gate, "{path_name} prompt position {p}: NMSE {e:e}");
        }
        model.reset_stats();
        for (i, &t) in extra.iter().enumerate() {
            let got = pollster::block_on(model.logits(&[t])).unwrap();
            // Embed; layer 0: one q/k/v mat-vec (one stack) with RoPE and the KV write,
            // attention (one split: at most 64 keys, no reduce pass), output projection,
            // gate/up/SwiGLU, down = 5; layer 1: the same with its Q5_0 q/k and Q8_0 v in one
            // mat-vec = 5 (6 with a mat-vec per type); the output projection with the final
            // norm fused in. With RoPE apart, one more per layer and a mat-vec per type.
            let per_token = match (fuse_rope, mixed_qkv) {
                (true, true) => 12,
                (true, false) => 13,
                (false, _) => 15,
            };
            assert_eq!(
                model.stats().dispatches,
                per_token * (i as u64 + 1),
                "{path_name}"
            );
            let e = nmse(&got, &want[prompt.len() + i]);
            println!(
                "stacked {path_name}: decode position {}: NMSE {e:.3e}",
                prompt.len() + i
            );
            assert!(e <= gate, "{path_name} decode {i}: NMSE {e:e}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Decode's attention over a context longer than one 64-key block, with the keys shared out
/// over several splits (merged by a second dispatch) or over one (no merge), against the CPU
/// reference forward: the split policy (`LoadOptions::attn_split_keys`) changes the dispatch
/// count, never the logits. Then the CPU adapters' decode attention (`attention_rows`: 8 lanes
/// per head, one dispatch whatever the context).
#[test]
fn decode_attention_splits_match_the_cpu_reference() {
    let (dir, path) = synth_tiny("splits");
    let mut reference = ahma_reference::Model::load(&path).unwrap();
    let tokens: Vec<u32> = (0..150u32).map(|i| 3 + (i * 37 + i / 7) % 290).collect();
    let want: Vec<Vec<f32>> = tokens
        .iter()
        .enumerate()
        .map(|(pos, &t)| reference.forward(t, pos).unwrap().to_vec())
        .collect();
    let prompt = 8;
    // keys per split -> merge dispatches per layer at the last step (150 keys)
    for (split_keys, rows, merges) in [
        (64usize, false, 1u64),
        (128, false, 1),
        (192, false, 0),
        (4096, false, 0),
        (64, true, 0),
    ] {
        let ctx = context(false);
        let gate = if ctx.use_f16() { 1e-4 } else { 1e-5 };
        let opts = LoadOptions {
            n_ctx: 160,
            max_batch: 16,
            attn_split_keys: split_keys,
            attention_rows: Some(rows),
            ..Default::default()
        };
        let mut model = pollster::block_on(load_file(ctx, &path, opts)).unwrap();
        pollster::block_on(model.logits(&tokens[..prompt])).unwrap();
        let mut worst = 0f64;
        for (i, &t) in tokens.iter().enumerate().skip(prompt) {
            model.reset_stats();
            let got = pollster::block_on(model.logits(&[t])).unwrap();
            let e = nmse(&got, &want[i]);
            worst = worst.max(e);
            assert!(
                e <= gate,
                "split keys {split_keys} rows {rows}, position {i}: NMSE {e:e}"
            );
        }
        // 12 dispatches a token with one split (see the stacked test), one merge per layer more.
        assert_eq!(
            model.stats().dispatches,
            12 + 2 * merges,
            "split keys {split_keys} rows {rows}"
        );
        println!("split keys {split_keys} rows {rows}: worst decode NMSE {worst:.3e}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Prefill of a batch gives the same logits as feeding the tokens one by one
/// (matrix-matrix vs matrix-vector kernels, one attention pass over many
/// queries vs many passes).
#[test]
fn prefill_then_decode_equals_decode_only() {
    for name in FIXTURES {
        let e = load_expected(name);
        let mut batched = load(name, false, 64);
        let got = pollster::block_on(batched.logits(&e.prompt)).unwrap();
        let mut single = load(name, false, 1);
        let mut want = Vec::new();
        for &t in &e.prompt {
            want.extend(pollster::block_on(single.logits(&[t])).unwrap());
        }
        let err = nmse(&got, &want);
        println!("{name}: batched vs token-by-token NMSE {err:.3e}");
        // The two paths round differently: the mat-mul dequantizes each weight (d * (q - o)),
        // the mat-vec factors the block scale and offset out (d * (q . x - o * sum x)). Both
        // are within 3e-6 of llama.cpp; between themselves they agree to ~1e-9.
        assert!(
            err < 1e-8,
            "{name}: batched prefill differs from decode: NMSE {err:e}"
        );
        // A prompt longer than the batch: inner batches without an output head,
        // the last one sampling from its last row.
        let mut small = load(name, false, 5);
        let first = pollster::block_on(small.prefill(&e.prompt)).unwrap();
        let second = pollster::block_on(small.decode()).unwrap();
        assert_eq!(
            [first, second],
            [e.greedy[0], e.greedy[1]],
            "{name}: multi-batch prefill"
        );
    }
}

/// Rewinding keeps the shared prefix: re-evaluating a different tail after `rewind`
/// gives the logits a fresh model computes for that sequence.
#[test]
fn rewind_keeps_the_prefix_and_forgets_the_rest() {
    let e = load_expected("kquant_gqa");
    let (head, tail) = e.prompt.split_at(e.prompt.len() / 2);
    let mut model = load("kquant_gqa", false, 64);
    pollster::block_on(model.logits(head)).unwrap();
    // A detour that must be forgotten.
    pollster::block_on(model.logits(&tail[..3])).unwrap();
    pollster::block_on(model.logits(&[e.greedy[0], e.greedy[1]])).unwrap();
    model.rewind(head.len()).unwrap();
    assert_eq!(model.n_past(), head.len());
    let got = pollster::block_on(model.logits(tail)).unwrap();
    let mut fresh = load("kquant_gqa", false, 64);
    let all = pollster::block_on(fresh.logits(&e.prompt)).unwrap();
    let want = &all[head.len() * (all.len() / e.prompt.len())..];
    let err = nmse(&got, want);
    assert!(err < 1e-9, "rewound logits differ: NMSE {err:e}");
    let past = model.n_past();
    assert!(matches!(
        model.rewind(past + 1),
        Err(EngineError::InvalidArgument(_))
    ));
}

/// A prompt longer than the room left is a typed error, and the model stays usable.
#[test]
fn context_overflow_is_an_error() {
    let e = load_expected("kquant_gqa");
    let mut model = load("kquant_gqa", false, 64);
    let too_long: Vec<u32> = (0..65).map(|i| e.prompt[i % e.prompt.len()]).collect();
    let err = pollster::block_on(model.logits(&too_long)).unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::ContextOverflow {
                requested: 65,
                room: 64,
                ..
            }
        ),
        "{err}"
    );
    let bad = pollster::block_on(model.logits(&[e.n_vocab as u32])).unwrap_err();
    assert!(matches!(bad, EngineError::BadToken { .. }), "{bad}");
    let ok = pollster::block_on(model.logits(&e.prompt)).unwrap();
    assert_eq!(ok.len(), e.prompt.len() * e.n_vocab);
    let fill: Vec<u32> = vec![e.prompt[1]; 64 - e.prompt.len()];
    pollster::block_on(model.logits(&fill)).unwrap();
    assert_eq!(model.room(), 0);
    let full = pollster::block_on(model.logits(&[1])).unwrap_err();
    assert!(
        matches!(full, EngineError::ContextOverflow { room: 0, .. }),
        "{full}"
    );
}

/// Sampling with a seed reproduces the same tokens after a reset.
#[test]
fn seeded_generation_is_reproducible() {
    let e = load_expected("ahma_like_legacy");
    let mut model = load("ahma_like_legacy", false, 64);
    let params = SamplingParams {
        temperature: 0.9,
        top_k: 40,
        top_p: 0.95,
        repeat_penalty: 1.1,
        seed: 42,
    };
    let run = |m: &mut Model| -> Vec<u32> {
        m.reset();
        m.set_sampling(params.clone()).unwrap();
        let mut ids = vec![pollster::block_on(m.prefill(&e.prompt)).unwrap()];
        for _ in 0..8 {
            ids.push(pollster::block_on(m.decode()).unwrap());
        }
        ids
    };
    let a = run(&mut model);
    let b = run(&mut model);
    assert_eq!(a, b);
}

/// The streaming loader gives the same model whatever the chunking, reports
/// a truncated stream, and refuses a model that does not fit before
/// uploading anything.
#[test]
fn loader_streams_any_chunking_and_refuses_what_does_not_fit() {
    let name = "kquant_gqa";
    let e = load_expected(name);
    let bytes = std::fs::read(fixture(&format!("models/{name}.gguf"))).unwrap();
    let opts = LoadOptions {
        n_ctx: 64,
        ..Default::default()
    };
    let mut whole = load(name, false, 64);
    let want = pollster::block_on(whole.logits(&e.prompt[..4])).unwrap();

    // Odd chunk sizes that split headers, blocks and words.
    let mut loader = ModelLoader::new(context(false), opts.clone()).unwrap();
    for chunk in bytes.chunks(4099) {
        pollster::block_on(loader.push(chunk)).unwrap();
    }
    assert_eq!(loader.progress().bytes, loader.progress().total.unwrap());
    let mut streamed = pollster::block_on(loader.finish()).unwrap();
    let got = pollster::block_on(streamed.logits(&e.prompt[..4])).unwrap();
    assert_eq!(got, want, "chunked load differs from the file load");

    // A stream that stops early.
    let mut loader = ModelLoader::new(context(false), opts.clone()).unwrap();
    pollster::block_on(loader.push(&bytes[..bytes.len() - 1000])).unwrap();
    let err = pollster::block_on(loader.finish())
        .err()
        .expect("truncated stream accepted");
    assert!(
        matches!(err, EngineError::Gguf(_) | EngineError::Incomplete(_)),
        "{err}"
    );

    // A budget that holds the scratch of a 64-token batch but not that of the default 512:
    // the loader falls back to a smaller batch instead of refusing the model.
    let ctx = context(false);
    let (g, _) = ahma_gguf::Gguf::open(fixture(&format!("models/{name}.gguf"))).unwrap();
    let cfg = ahma_gguf::LlamaConfig::from_gguf(&g).unwrap();
    let free = ModelLoader::budget(&ctx, &opts);
    let total = |batch: usize| {
        let at64 = LoadOptions {
            n_ctx: 64,
            ..opts.clone()
        };
        ahma_engine::plan::plan(&g, &cfg, &at64, batch, ctx.use_f16(), &free)
            .unwrap()
            .total()
    };
    assert_eq!(opts.max_batch, 512);
    assert!(total(512) > total(128), "{} vs {}", total(512), total(128));
    let tight = LoadOptions {
        memory_budget: Some(total(128)),
        ..opts.clone()
    };
    let mut loader = ModelLoader::new(ctx, tight).unwrap();
    pollster::block_on(loader.push(&bytes)).unwrap();
    let mut smaller = pollster::block_on(loader.finish()).unwrap();
    assert_eq!(smaller.memory_plan().max_batch, 128);
    let got = pollster::block_on(smaller.logits(&e.prompt[..4])).unwrap();
    assert_eq!(got, want, "the fallback batch changes the logits");

    // A memory budget below weights + KV cache + scratch.
    let small = LoadOptions {
        memory_budget: Some(1 << 20),
        ..opts.clone()
    };
    let mut loader = ModelLoader::new(context(false), small).unwrap();
    let err = pollster::block_on(loader.push(&bytes)).unwrap_err();
    assert!(matches!(err, EngineError::DoesNotFit { .. }), "{err}");
    println!("refused: {err}");

    // A context whose per-layer KV cache exceeds the binding limit.
    let huge = LoadOptions {
        n_ctx: 1 << 28,
        ..opts
    };
    let mut loader = ModelLoader::new(context(false), huge).unwrap();
    let err = pollster::block_on(loader.push(&bytes)).unwrap_err();
    assert!(matches!(err, EngineError::DoesNotFit { .. }), "{err}");
    println!("refused: {err}");
}

/// A lost device comes back as a typed error that tells the app to recreate
/// the context, not as a panic.
#[test]
fn device_loss_is_a_typed_error() {
    let e = load_expected("kquant_gqa");
    let ctx = pollster::block_on(GpuContext::new(ContextOptions::default())).unwrap();
    let opts = LoadOptions {
        n_ctx: 64,
        ..Default::default()
    };
    let path = fixture("models/kquant_gqa.gguf");
    let mut model = pollster::block_on(load_file(Arc::new(ctx), path, opts)).unwrap();
    model.context().device().destroy();
    let err = pollster::block_on(model.logits(&e.prompt)).unwrap_err();
    assert!(err.needs_new_device(), "{err:?}");
    println!("after destroy: {err}");
}

/// `ahma logits --backend gpu --all --json` gives llama.cpp's logits.
#[test]
fn cli_gpu_logits_match_llama_cpp() {
    let e = load_expected("ahma_like_legacy");
    let model = fixture("models/ahma_like_legacy.gguf");
    let ids: Vec<String> = e.prompt.iter().map(u32::to_string).collect();
    let args = [
        "ahma",
        "logits",
        model.to_str().unwrap(),
        "--tokens",
        &ids.join(","),
        "--backend",
        "gpu",
        "--all",
        "--json",
    ];
    let mut out = Vec::new();
    ahma_cli::run(args, &mut out).unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let got: Vec<f32> = j["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let want: Vec<f32> = e.logits[..e.prompt.len()].concat();
    let err = nmse(&got, &want);
    assert!(err <= 1e-4, "CLI GPU logits NMSE {err:e}");
}

/// Decode steps submitted ahead (`pipeline_decode`, the default) give exactly
/// what step-by-step decoding gives, through everything that can void a step
/// submitted ahead: the suppressed token switched on and off, the sampling
/// changed mid-answer, a stopped answer followed by a new prompt, a rewind, a
/// reset, and the end of the context.
#[test]
fn pipelined_decode_equals_step_by_step() {
    let e = load_expected("ahma_like_legacy");
    let load_with = |pipeline_decode: bool| {
        let opts = LoadOptions {
            n_ctx: 64,
            // A window shorter than the first answer, so undoing a step
            // submitted ahead must restore a ring slot that is in use.
            penalty_window: 4,
            pipeline_decode,
            ..Default::default()
        };
        pollster::block_on(load_file(
            context(false),
            fixture("models/ahma_like_legacy.gguf"),
            opts,
        ))
        .unwrap()
    };
    let sampled = |seed: u64| SamplingParams {
        temperature: 0.9,
        top_k: 40,
        top_p: 0.95,
        repeat_penalty: 1.3,
        seed,
    };
    let script = |m: &mut Model| -> Vec<String> {
        let mut log = Vec::new();
        let mut step = |m: &mut Model, what: &str| {
            let r = pollster::block_on(m.decode());
            log.push(format!("{what}: {r:?}"));
            r.ok()
        };
        m.set_sampling(sampled(42)).unwrap();
        let first = pollster::block_on(m.prefill(&e.prompt[..6])).unwrap();
        let mut log0 = vec![format!("prefill: {first}")];
        let mut last = first;
        for i in 0..4 {
            last = step(m, &format!("decode {i}")).unwrap();
        }
        // The token just drawn becomes undrawable for two steps, then allowed again.
        m.suppress(Some(last)).unwrap();
        step(m, "suppressed 1");
        step(m, "suppressed 2");
        m.suppress(None).unwrap();
        step(m, "allowed");
        // New sampling parameters mid-answer.
        m.set_sampling(sampled(7)).unwrap();
        step(m, "reseeded 1");
        step(m, "reseeded 2");
        // Stop the answer; the next turn's prompt follows.
        m.discard_pending();
        let next = pollster::block_on(m.prefill(&e.prompt[6..10])).unwrap();
        log0.push(format!("second prompt: {next}"));
        for i in 0..3 {
            step(m, &format!("second answer {i}"));
        }
        // Regenerate the second answer from a shared prefix.
        m.discard_pending();
        let keep = m.n_past() - 5;
        m.rewind(keep).unwrap();
        let again = pollster::block_on(m.prefill(&e.prompt[10..12])).unwrap();
        log0.push(format!("after rewind: {again}"));
        for i in 0..3 {
            step(m, &format!("regenerated {i}"));
        }
        // Greedy from scratch to the end of the context.
        m.reset();
        m.set_sampling(SamplingParams::greedy()).unwrap();
        let g = pollster::block_on(m.prefill(&e.prompt)).unwrap();
        log0.push(format!("greedy prefill: {g}"));
        let mut i = 0;
        while step(m, &format!("greedy {i}")).is_some() {
            i += 1;
            assert!(i < 64, "decode never reached the end of the context");
        }
        log0.extend(log);
        log0
    };
    let mut piped = load_with(true);
    let mut plain = load_with(false);
    let a = script(&mut piped);
    let b = script(&mut plain);
    for line in &a {
        println!("{line}");
    }
    assert_eq!(
        a, b,
        "pipelined decoding differs from step-by-step decoding"
    );
    assert!(
        a.last().unwrap().contains("ContextOverflow"),
        "{:?}",
        a.last()
    );
    // The greedy part also matches llama.cpp's continuation of the whole prompt.
    let greedy: Vec<u32> = a
        .iter()
        .filter_map(|l| {
            l.strip_prefix("greedy prefill: ")
                .map(str::to_string)
                .or_else(|| {
                    l.split("Ok(")
                        .nth(1)
                        .filter(|_| l.starts_with("greedy "))
                        .map(|v| v.trim_end_matches(')').to_string())
                })
        })
        .map(|v| v.parse().unwrap())
        .collect();
    let n = e.greedy.len().min(greedy.len());
    assert!(n >= 16, "only {n} greedy ids");
    assert_eq!(
        greedy[..n],
        e.greedy[..n],
        "greedy ids differ from llama.cpp"
    );
    // Every decoded token is one submit and a 4-byte readback, ahead or not.
    let st = piped.stats();
    let sp = plain.stats();
    assert_eq!(
        (st.submits, st.readback_bytes),
        (sp.submits, sp.readback_bytes)
    );
    assert_eq!(st.dispatches, sp.dispatches);
}

/// `ahma bench --profile`: profiled prefill and decode steps (timestamps between dispatches,
/// each step alone) give llama.cpp's greedy ids, also when mixed with pipelined steps, and
/// time every operation of every layer.
#[test]
fn profiled_steps_give_the_same_ids_and_time_every_operation() {
    let ctx = context(false);
    assert!(
        ctx.caps().timestamps,
        "{} has no timestamps inside passes",
        ctx.adapter().name
    );
    for name in FIXTURES {
        let e = load_expected(name);
        // Batches of 5: the profiled prefill spans several submits.
        let mut m = load_in(ctx.clone(), name, 5);
        let n_layer = m.config().n_layer as f64;
        let mut prof = ahma_engine::Profiler::new(m.context()).unwrap();
        let mut ids = vec![pollster::block_on(m.profile_prefill(&e.prompt, &mut prof)).unwrap()];
        assert_eq!(prof.passes(), e.prompt.len().div_ceil(5) as u64);
        let has_ops = |prof: &ahma_engine::Profiler, phase: &str, want: &[&str]| {
            let ops: Vec<&str> = prof.ops().iter().map(|o| o.op).collect();
            for op in want {
                assert!(ops.contains(op), "{name}: {phase} lacks {op}: {ops:?}");
            }
        };
        has_ops(
            &prof,
            "prefill",
            &[
                "embed",
                "attn_norm",
                "qkv",
                "rope+kv",
                "attention",
                "o",
                "ffn_norm",
            ],
        );
        prof.clear();
        // Pipelined steps (one is left submitted ahead), then profiled ones, then pipelined.
        ids.push(pollster::block_on(m.decode()).unwrap());
        ids.push(pollster::block_on(m.decode()).unwrap());
        for _ in 0..4 {
            ids.push(pollster::block_on(m.profile_decode(&mut prof)).unwrap());
        }
        ids.push(pollster::block_on(m.decode()).unwrap());
        ids.push(pollster::block_on(m.decode()).unwrap());
        assert_eq!(
            ids[..],
            e.greedy[..ids.len()],
            "{name}: ids differ from llama.cpp"
        );
        assert_eq!(prof.passes(), 4);
        let sum: f64 = prof.ops().iter().map(|o| o.total_ns).sum();
        assert!(prof.total_ns() > 0.0, "{name}: no GPU time measured");
        assert!((sum - prof.total_ns()).abs() <= 1e-6 * prof.total_ns());
        for o in prof.ops() {
            let per_pass = o.count as f64 / 4.0;
            let want = match o.op {
                "embed" | "output" | "sample" => 1.0,
                _ => n_layer,
            };
            assert_eq!(
                per_pass, want,
                "{name}: {} ran {per_pass} times a step",
                o.op
            );
        }
        has_ops(
            &prof,
            "decode",
            &[
                "norm+qkv+rope+kv",
                "attention",
                "o",
                "norm+gate_up",
                "down",
                "output",
            ],
        );
        println!(
            "{name}: {:.3} ms of GPU time per decoded token: {:?}",
            prof.total_ns() / 4e6,
            prof.ops()
                .iter()
                .map(|o| format!("{} {:.0}%", o.op, 100.0 * o.total_ns / prof.total_ns()))
                .collect::<Vec<_>>()
        );
    }
}

/// `logits` of a sequence longer than `LOGITS_ROWS` with the default 512-token batch runs in
/// several submits and gives what 16-token batches give.
#[test]
fn long_logits_are_evaluated_in_bounded_batches() {
    let e = load_expected("kquant_gqa");
    let load_batch = |max_batch: usize| {
        let opts = LoadOptions {
            n_ctx: 256,
            max_batch,
            ..Default::default()
        };
        pollster::block_on(load_file(
            context(false),
            fixture("models/kquant_gqa.gguf"),
            opts,
        ))
        .unwrap()
    };
    let tokens: Vec<u32> = e
        .prompt
        .iter()
        .chain(&e.greedy)
        .cycle()
        .take(150)
        .copied()
        .collect();
    let mut big = load_batch(512);
    assert_eq!(big.memory_plan().max_batch, 512);
    let got = pollster::block_on(big.logits(&tokens)).unwrap();
    assert!(
        big.stats().submits >= tokens.len().div_ceil(ahma_engine::plan::LOGITS_ROWS) as u64,
        "{} submits",
        big.stats().submits
    );
    let mut small = load_batch(16);
    let want = pollster::block_on(small.logits(&tokens)).unwrap();
    assert_eq!(got.len(), want.len());
    let err = nmse(&got, &want);
    assert!(
        err < 1e-10,
        "512-token batches vs 16-token batches: NMSE {err:e}"
    );
    // The first prompt positions are llama.cpp's.
    let n = e.n_vocab * e.logits.len().min(e.prompt.len());
    let llama: Vec<f32> = e.logits.concat();
    assert!(nmse(&got[..n], &llama[..n]) < 1e-4);
}

/// `StepStats::record_ns` is read from the model's clock (the browser sets `performance.now()`
/// there): with a clock that moves half a second at every reading, each decoded token records
/// exactly one interval, pipelined or not, and prefill records none.
#[test]
fn decode_cpu_time_is_read_from_the_models_clock() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TICKS: AtomicU64 = AtomicU64::new(0);
    fn half_seconds() -> f64 {
        TICKS.fetch_add(1, Ordering::Relaxed) as f64 * 0.5
    }
    let e = load_expected("kquant_gqa");
    let mut model = load("kquant_gqa", false, 16);
    assert!(
        model.options().pipeline_decode,
        "the default decode is pipelined"
    );
    model.set_clock(half_seconds);
    pollster::block_on(model.prefill(&e.prompt)).unwrap();
    assert_eq!(
        model.stats().record_ns,
        0,
        "prefill is not decode's CPU time"
    );
    model.reset_stats();
    for _ in 0..3 {
        pollster::block_on(model.decode()).unwrap();
    }
    assert_eq!(model.stats().record_ns, 3 * 500_000_000);
}
