//! GGUF parsing oracle: our reader against what gguf-py's `GGUFReader` reads from files
//! written by gguf-py's `GGUFWriter` (fixtures from `tests/gen/gen_dequant_fixtures.py`).
//! Also checks that the streaming parser, fed in chunks of many sizes, agrees with the
//! blocking reader, and that `LlamaConfig` reads the tiny Llama files.

use ahma_gguf::{Gguf, LlamaConfig, StreamEvent, StreamParser, Value};
use ahma_tests::fixture;
use serde_json::Value as Json;

fn index() -> Json {
    let text = std::fs::read_to_string(fixture("dequant/index.json")).expect("read index.json");
    serde_json::from_str(&text).expect("parse index.json")
}

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Compares one of our values with gguf-py's `{"type", "value"}` description.
fn check_value(key: &str, ours: &Value, want: &Json) {
    let ty = want["type"].as_u64().unwrap() as u32;
    assert_eq!(ours.type_id(), ty, "{key}: value type");
    let w = &want["value"];
    match ours {
        Value::String(s) => assert_eq!(s, w.as_str().unwrap(), "{key}"),
        Value::Bool(b) => assert_eq!(*b, w.as_bool().unwrap(), "{key}"),
        Value::F32(f) => assert_eq!(
            u64::from(f.to_bits()),
            w["f32bits"].as_u64().unwrap(),
            "{key}"
        ),
        Value::F64(f) => assert_eq!(f.to_bits(), w["f64bits"].as_u64().unwrap(), "{key}"),
        Value::U64(v) => assert_eq!(*v, w.as_u64().unwrap(), "{key}"),
        Value::Array(items) => {
            let elem_ty = want["elem_type"].as_u64().unwrap() as u32;
            let wi = w.as_array().unwrap();
            assert_eq!(items.len(), wi.len(), "{key}: array length");
            for (o, x) in items.iter().zip(wi) {
                let wrapped = if elem_ty == 9 {
                    x.clone()
                } else {
                    serde_json::json!({"type": elem_ty, "value": x})
                };
                check_value(key, o, &wrapped);
            }
        }
        other => assert_eq!(other.as_i64().unwrap(), w.as_i64().unwrap(), "{key}"),
    }
}

#[test]
fn header_matches_gguf_py_reader() {
    let index = index();
    for desc in index["gguf"].as_array().unwrap() {
        let file = desc["file"].as_str().unwrap();
        let (g, mut f) = Gguf::open(fixture(&format!("dequant/{file}"))).unwrap();
        assert_eq!(
            u64::from(g.version),
            desc["version"].as_u64().unwrap(),
            "{file}"
        );
        assert_eq!(g.alignment, desc["alignment"].as_u64().unwrap(), "{file}");
        assert_eq!(
            g.data_offset,
            desc["data_offset"].as_u64().unwrap(),
            "{file}"
        );

        let meta = desc["metadata"].as_array().unwrap();
        assert_eq!(g.metadata.len(), meta.len(), "{file}: metadata count");
        for ((k, v), want) in g.metadata.iter().zip(meta) {
            assert_eq!(k, want["key"].as_str().unwrap(), "{file}: key order");
            check_value(k, v, want);
        }

        let tensors = desc["tensors"].as_array().unwrap();
        assert_eq!(g.tensors.len(), tensors.len(), "{file}: tensor count");
        for (i, (t, want)) in g.tensors.iter().zip(tensors).enumerate() {
            assert_eq!(t.name, want["name"].as_str().unwrap());
            let dims: Vec<u64> = want["dims"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            assert_eq!(t.dims, dims, "{}", t.name);
            assert_eq!(
                u64::from(t.ty.id()),
                want["type"].as_u64().unwrap(),
                "{}",
                t.name
            );
            assert_eq!(t.offset, want["offset"].as_u64().unwrap(), "{}", t.name);
            assert_eq!(t.n_bytes, want["n_bytes"].as_u64().unwrap(), "{}", t.name);
            let bytes = g.read_tensor_bytes(&mut f, i).unwrap();
            let hash = format!("{:016x}", fnv1a64(&bytes));
            assert_eq!(
                hash,
                want["fnv1a64"].as_str().unwrap(),
                "{}: data hash",
                t.name
            );
            assert_eq!(g.locate(t.offset), Some((i, 0)));
            assert_eq!(g.locate(t.offset + t.n_bytes - 1), Some((i, t.n_bytes - 1)));
        }
    }
}

/// Feeds `bytes` in chunks whose sizes cycle through `sizes`, collecting each tensor.
fn stream(bytes: &[u8], sizes: &[usize]) -> (Gguf, Vec<Vec<u8>>) {
    let mut p = StreamParser::new();
    let mut header = None;
    let mut data: Vec<Vec<u8>> = Vec::new();
    let mut complete = Vec::new();
    let mut finished = 0;
    let mut pos = 0;
    let mut k = 0;
    while pos < bytes.len() {
        let n = sizes[k % sizes.len()].min(bytes.len() - pos);
        k += 1;
        let chunk = &bytes[pos..pos + n];
        pos += n;
        p.feed::<ahma_gguf::GgufError>(chunk, &mut |ev| {
            match ev {
                StreamEvent::Header(g) => {
                    data = vec![Vec::new(); g.tensors.len()];
                    header = Some(g.clone());
                }
                StreamEvent::TensorData {
                    index,
                    offset,
                    bytes,
                } => {
                    assert_eq!(offset, data[index].len() as u64, "pieces arrive in order");
                    data[index].extend_from_slice(bytes);
                }
                StreamEvent::TensorComplete { index } => complete.push(index),
                StreamEvent::Finished => finished += 1,
            }
            Ok(())
        })
        .unwrap();
    }
    p.finish().unwrap();
    assert!(p.is_finished());
    assert_eq!(finished, 1);
    assert_eq!(p.bytes_consumed(), bytes.len() as u64);
    let g = header.expect("header event");
    assert_eq!(complete.len(), g.tensors.len());
    (g, data)
}

#[test]
fn stream_parser_agrees_with_blocking_reader_for_any_chunking() {
    for file in ["micro-llama.gguf", "align64.gguf", "tiny-llama.gguf"] {
        let path = fixture(&format!("dequant/{file}"));
        let bytes = std::fs::read(&path).unwrap();
        let (g, mut f) = Gguf::open(&path).unwrap();
        let want: Vec<Vec<u8>> = (0..g.tensors.len())
            .map(|i| g.read_tensor_bytes(&mut f, i).unwrap())
            .collect();
        let chunkings: &[&[usize]] = if bytes.len() > 100_000 {
            &[&[7, 4096, 1, 65536], &[1 << 20]]
        } else {
            &[&[1], &[3, 1, 17], &[64], &[bytes.len()]]
        };
        for sizes in chunkings {
            let (sg, data) = stream(&bytes, sizes);
            assert_eq!(sg.metadata, g.metadata, "{file} {sizes:?}");
            assert_eq!(sg.tensors, g.tensors, "{file} {sizes:?}");
            assert_eq!(sg.data_offset, g.data_offset);
            assert_eq!(data, want, "{file} {sizes:?}: tensor bytes");
        }
    }
}

#[test]
fn llama_config_of_the_tiny_models() {
    let (g, _) = Gguf::open(fixture("dequant/tiny-llama.gguf")).unwrap();
    let c = LlamaConfig::from_gguf(&g).unwrap();
    assert_eq!(
        c,
        LlamaConfig {
            n_embd: 256,
            n_layer: 2,
            n_ff: 512,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 64,
            rms_eps: 1e-6,
            rope_base: 10000.0,
            rope_dim: 64,
            n_ctx_train: 128,
            n_vocab: 12,
        }
    );
    // micro-llama omits head_count_kv, rope base and rope dims: the defaults apply.
    let (g, _) = Gguf::open(fixture("dequant/micro-llama.gguf")).unwrap();
    let c = LlamaConfig::from_gguf(&g).unwrap();
    assert_eq!(
        (c.n_embd, c.n_head, c.n_head_kv, c.head_dim, c.rope_dim),
        (32, 2, 2, 16, 16)
    );
    assert_eq!(
        (c.rope_base, c.rms_eps, c.n_vocab, c.n_ctx_train),
        (10000.0, 1e-5, 4, 16)
    );
}

#[test]
fn dequantized_tensors_of_the_tiny_model_are_finite() {
    let (g, mut f) = Gguf::open(fixture("dequant/tiny-llama.gguf")).unwrap();
    for (i, t) in g.tensors.iter().enumerate() {
        let raw = g.read_tensor_bytes(&mut f, i).unwrap();
        let v = ahma_gguf::dequantize_to_vec(t.ty, &raw).unwrap();
        assert_eq!(v.len() as u64, t.n_elements(), "{}", t.name);
        assert!(v.iter().all(|x| x.is_finite()), "{}", t.name);
    }
}
