//! Property tests: no input makes the parsers panic, and the streaming parser, however
//! the input is split, agrees with the blocking reader.

use ahma_gguf::{
    dequantize_to_vec, GgmlType, Gguf, GgufError, GgufWriter, LlamaConfig, StreamEvent,
    StreamParser, TensorInfo, Value,
};
use proptest::prelude::*;

/// A small real Llama file written by gguf-py (see tests/gen/gen_dequant_fixtures.py).
const MICRO_LLAMA: &[u8] = include_bytes!("../../../tests/fixtures/dequant/micro-llama.gguf");

/// Everything the streaming parser reports, in a comparable form.
#[derive(Debug, PartialEq)]
struct Streamed {
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    data_offset: u64,
    data: Vec<Vec<u8>>,
}

/// Feeds `bytes` split at `cuts` (positions, any order). Returns the parse or its error.
fn stream(bytes: &[u8], cuts: &[usize]) -> Result<Streamed, GgufError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let mut p = StreamParser::new();
    let mut out: Option<Streamed> = None;
    let mut finished = false;
    for w in cuts.windows(2) {
        p.feed::<GgufError>(&bytes[w[0]..w[1]], &mut |ev| {
            match ev {
                StreamEvent::Header(g) => {
                    assert!(out.is_none(), "header reported twice");
                    out = Some(Streamed {
                        metadata: g.metadata.clone(),
                        tensors: g.tensors.clone(),
                        data_offset: g.data_offset,
                        data: vec![Vec::new(); g.tensors.len()],
                    });
                }
                StreamEvent::TensorData {
                    index,
                    offset,
                    bytes,
                } => {
                    let d = &mut out.as_mut().expect("data after header").data[index];
                    assert_eq!(offset, d.len() as u64);
                    d.extend_from_slice(bytes);
                }
                StreamEvent::TensorComplete { index } => {
                    let s = out.as_ref().expect("complete after header");
                    assert_eq!(s.data[index].len() as u64, s.tensors[index].n_bytes);
                }
                StreamEvent::Finished => {
                    assert!(!finished);
                    finished = true;
                }
            }
            Ok(())
        })?;
    }
    p.finish()?;
    assert!(finished);
    Ok(out.expect("finished implies header"))
}

/// The blocking reader's view of the same bytes.
fn blocking(bytes: &[u8]) -> Result<Streamed, GgufError> {
    let g = Gguf::read_header(&mut &bytes[..])?;
    g.check_fits(bytes.len() as u64)?;
    let mut c = std::io::Cursor::new(bytes);
    let data = (0..g.tensors.len())
        .map(|i| g.read_tensor_bytes(&mut c, i))
        .collect::<Result<_, _>>()?;
    Ok(Streamed {
        metadata: g.metadata,
        tensors: g.tensors,
        data_offset: g.data_offset,
        data,
    })
}

/// Runs every entry point on `bytes`; none may panic.
fn exercise(bytes: &[u8], cuts: &[usize]) {
    let a = blocking(bytes);
    let b = stream(bytes, cuts);
    let c = Gguf::from_bytes(bytes);
    if let Ok(g) = &c {
        let _ = LlamaConfig::from_gguf(g);
        for t in &g.tensors {
            let _ = g.locate(t.offset);
        }
    }
    // When every reader accepts the file, they agree.
    match (&a, &b) {
        (Ok(a), Ok(b)) => assert!(same_streamed(a, b), "readers disagree: {a:?} vs {b:?}"),
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => {
            // Only possible difference: the blocking reader also insists the file holds
            // every tensor, which the stream checks only at finish().
            panic!("readers disagree: {e}")
        }
        _ => {}
    }
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u8>().prop_map(Value::U8),
        any::<i8>().prop_map(Value::I8),
        any::<u16>().prop_map(Value::U16),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<i32>().prop_map(Value::I32),
        any::<u32>().prop_map(|b| Value::F32(f32::from_bits(b))),
        any::<bool>().prop_map(Value::Bool),
        "[a-zäö▁<>]{0,12}".prop_map(Value::String),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        any::<u64>().prop_map(|b| Value::F64(f64::from_bits(b))),
    ]
}

/// Homogeneous (possibly nested) arrays, as GGUF requires.
fn value() -> impl Strategy<Value = Value> {
    let leaf = scalar();
    leaf.prop_recursive(3, 24, 6, |inner| {
        (inner, 0usize..6).prop_map(|(v, n)| Value::Array(vec![v; n]))
    })
}

#[derive(Debug, Clone)]
struct Spec {
    version: u32,
    alignment: Option<u32>,
    metadata: Vec<(String, Value)>,
    tensors: Vec<(Vec<u64>, GgmlType, Vec<u8>)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let tensor = (0usize..GgmlType::ALL.len(), 0u64..3, 1u64..4, any::<u8>()).prop_map(
        |(ti, blocks, rows, fill)| {
            let ty = GgmlType::ALL[ti];
            let dims = vec![blocks * ty.block_elems() as u64, rows];
            let n = (blocks * rows) as usize * ty.block_bytes();
            let data = (0..n)
                .map(|i| fill.wrapping_add(i as u8).wrapping_mul(31))
                .collect();
            (dims, ty, data)
        },
    );
    (
        prop_oneof![Just(2u32), Just(3u32)],
        proptest::option::of(prop_oneof![
            Just(1u32),
            Just(8),
            Just(32),
            Just(64),
            Just(256)
        ]),
        proptest::collection::vec(value(), 0..6),
        proptest::collection::vec(tensor, 0..5),
    )
        .prop_map(|(version, alignment, values, tensors)| Spec {
            version,
            alignment,
            metadata: values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("key.{i}"), v))
                .collect(),
            tensors,
        })
}

fn build(s: &Spec) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.version(s.version);
    if let Some(a) = s.alignment {
        w.alignment(a);
    }
    for (k, v) in &s.metadata {
        w.kv(k, v.clone());
    }
    for (i, (dims, ty, data)) in s.tensors.iter().enumerate() {
        w.tensor(&format!("t{i}"), dims, *ty, data.clone()).unwrap();
    }
    w.to_bytes()
}

/// Equality of two parses, NaN-aware in the metadata.
fn same_streamed(a: &Streamed, b: &Streamed) -> bool {
    a.tensors == b.tensors
        && a.data == b.data
        && a.data_offset == b.data_offset
        && a.metadata.len() == b.metadata.len()
        && a.metadata
            .iter()
            .zip(&b.metadata)
            .all(|(x, y)| x.0 == y.0 && same_value(&x.1, &y.1))
}

/// NaN-aware equality for metadata (the writer round-trips NaN bit patterns exactly).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                magic in any::<bool>(),
                                cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        if magic && bytes.len() >= 8 {
            // Get past the magic and version checks most of the time.
            bytes[..4].copy_from_slice(b"GGUF");
            bytes[4..8].copy_from_slice(&3u32.to_le_bytes());
        }
        exercise(&bytes, &cuts);
        for t in GgmlType::ALL {
            let n = bytes.len() / t.block_bytes() * t.block_bytes();
            let v = dequantize_to_vec(t, &bytes[..n]).unwrap();
            prop_assert_eq!(v.len(), n / t.block_bytes() * t.block_elems());
        }
    }

    #[test]
    fn written_files_round_trip_and_stream_identically(s in spec(),
                                                       cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let bytes = build(&s);
        let a = blocking(&bytes).unwrap();
        let b = stream(&bytes, &cuts).unwrap();
        prop_assert_eq!(a.tensors.len(), s.tensors.len());
        for (t, (dims, ty, data)) in a.tensors.iter().zip(&s.tensors) {
            prop_assert_eq!(&t.dims, dims);
            prop_assert_eq!(t.ty, *ty);
            prop_assert_eq!(t.offset % s.alignment.unwrap_or(32) as u64, 0);
            prop_assert_eq!(t.n_bytes as usize, data.len());
        }
        let want: Vec<_> = s.tensors.iter().map(|t| t.2.clone()).collect();
        prop_assert_eq!(&a.data, &want);
        let user_meta = a.metadata.iter().filter(|(k, _)| k != "general.alignment");
        for ((k, v), (k2, v2)) in user_meta.zip(&s.metadata) {
            prop_assert_eq!(k, k2);
            prop_assert!(same_value(v, v2), "{k}: {v:?} != {v2:?}");
        }
        prop_assert_eq!(a.data_offset, b.data_offset);
        prop_assert_eq!(&a.tensors, &b.tensors);
        prop_assert_eq!(&a.data, &b.data);
        prop_assert!(a.metadata.iter().zip(&b.metadata).all(|(x, y)| x.0 == y.0 && same_value(&x.1, &y.1)));
        let g = Gguf::from_bytes(&bytes).unwrap();
        for (i, t) in g.tensors.iter().enumerate() {
            if t.n_bytes > 0 {
                prop_assert_eq!(g.locate(t.offset + t.n_bytes / 2), Some((i, t.n_bytes / 2)));
            }
        }
    }

    #[test]
    fn truncations_and_bit_flips_never_panic(s in spec(),
                                             cut in any::<usize>(),
                                             flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..4),
                                             cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let bytes = build(&s);
        let g = Gguf::from_bytes(&bytes).unwrap();
        let n = cut % (bytes.len() + 1);
        let r = blocking(&bytes[..n]);
        if (n as u64) < g.data_offset + g.data_size() {
            prop_assert!(r.is_err());
            prop_assert!(stream(&bytes[..n], &cuts).is_err());
        }
        let mut flipped = bytes.clone();
        for (pos, bit) in flips {
            let i = pos % flipped.len();
            flipped[i] ^= 1 << bit;
        }
        exercise(&flipped, &cuts);
    }

    #[test]
    fn the_micro_llama_survives_corruption(cut in any::<usize>(),
                                           flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..4),
                                           cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let n = cut % (MICRO_LLAMA.len() + 1);
        exercise(&MICRO_LLAMA[..n], &cuts);
        // Flips land in the header most of the time, where they matter.
        let g = Gguf::from_bytes(MICRO_LLAMA).unwrap();
        let mut flipped = MICRO_LLAMA.to_vec();
        for (pos, bit) in flips {
            let i = pos % g.data_offset as usize;
            flipped[i] ^= 1 << bit;
        }
        exercise(&flipped, &cuts);
    }
}

#[test]
fn micro_llama_streams_identically_one_byte_at_a_time() {
    let cuts: Vec<usize> = (0..MICRO_LLAMA.len()).collect();
    assert_eq!(
        stream(MICRO_LLAMA, &cuts).unwrap(),
        blocking(MICRO_LLAMA).unwrap()
    );
    assert!(LlamaConfig::from_gguf(&Gguf::from_bytes(MICRO_LLAMA).unwrap()).is_ok());
}

/// An Ahma-sized header (64256 tokens with scores and types, 237 tensor infos) parses
/// the same whether fed in one piece or one byte at a time.
#[test]
fn ahma_sized_header_in_one_byte_chunks() {
    let n_vocab = 64256usize;
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("llama".into()))
        .kv(
            "tokenizer.ggml.tokens",
            Value::Array(
                (0..n_vocab)
                    .map(|i| Value::String(format!("▁tok{i}")))
                    .collect(),
            ),
        )
        .kv(
            "tokenizer.ggml.scores",
            Value::Array((0..n_vocab).map(|i| Value::F32(-(i as f32))).collect()),
        )
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(vec![Value::I32(1); n_vocab]),
        );
    for i in 0..237 {
        w.tensor(&format!("blk.{i}.w"), &[0, 3200], GgmlType::Q5_0, vec![])
            .unwrap();
    }
    let bytes = w.to_bytes();
    let t0 = std::time::Instant::now();
    let whole = Gguf::from_bytes(&bytes).unwrap();
    let t1 = std::time::Instant::now();
    let mut p = StreamParser::new();
    for b in bytes.chunks(1) {
        p.feed::<GgufError>(b, &mut |_| Ok(())).unwrap();
    }
    let t2 = std::time::Instant::now();
    let streamed = p.header().unwrap();
    assert!(p.is_finished());
    assert_eq!(streamed.metadata, whole.metadata);
    assert_eq!(streamed.tensors, whole.tensors);
    eprintln!(
        "{} header bytes: whole {:?}, one byte at a time {:?}",
        bytes.len(),
        t1 - t0,
        t2 - t1
    );
}
