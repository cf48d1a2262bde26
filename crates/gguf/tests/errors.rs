//! One test per class of bad input: each must give its typed error, never a panic.

use ahma_gguf::{
    names, GgmlType, Gguf, GgufError, GgufWriter, Limits, LlamaConfig, StreamEvent, StreamParser,
    Value,
};

// ---- raw byte builders, for files the writer would refuse to produce ----

fn header(version: u32, n_tensors: u64, n_kv: u64) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(&n_tensors.to_le_bytes());
    v.extend_from_slice(&n_kv.to_le_bytes());
    v
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

fn tensor_info(out: &mut Vec<u8>, name: &str, dims: &[u64], type_id: u32, offset: u64) {
    string(out, name.as_bytes());
    out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
    for d in dims {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&type_id.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
}

/// Parses with both the slice reader and the streaming parser (one byte at a time) and
/// checks they report the same error class.
fn parse_err(bytes: &[u8]) -> GgufError {
    let e = Gguf::read_header(&mut &bytes[..]).unwrap_err();
    // The slice reader knows the input length and may report truncation earlier.
    let e2 = Gguf::from_bytes(bytes).unwrap_err();
    if !matches!(e2, GgufError::Truncated { .. }) {
        assert_eq!(
            std::mem::discriminant(&e),
            std::mem::discriminant(&e2),
            "{e} vs {e2}"
        );
    }
    let mut p = StreamParser::new();
    let mut stream_err = None;
    for b in bytes.chunks(1) {
        if let Err(e) = p.feed::<GgufError>(b, &mut |_| Ok(())) {
            stream_err = Some(e);
            break;
        }
    }
    let e3 = stream_err.unwrap_or_else(|| p.finish().unwrap_err());
    assert_eq!(
        std::mem::discriminant(&e),
        std::mem::discriminant(&e3),
        "{e} vs {e3}"
    );
    e
}

fn f32_bytes(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect()
}

fn small_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.kv("general.architecture", Value::String("test".into()))
        .kv(
            "a.list",
            Value::Array(vec![Value::String("x".into()), Value::String("yz".into())]),
        );
    w.tensor("t0", &[3, 2], GgmlType::F32, f32_bytes(6))
        .unwrap();
    w.tensor("t1", &[32], GgmlType::Q8_0, vec![1; 34]).unwrap();
    w.to_bytes()
}

#[test]
fn valid_small_file_parses() {
    let bytes = small_file();
    let g = Gguf::from_bytes(&bytes).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.alignment, 32);
    assert_eq!(g.data_offset % 32, 0);
    assert_eq!(g.tensors[1].offset, 32);
    assert_eq!(g.data_size(), 32 + 34);
    assert_eq!(g.locate(31), None, "padding");
    assert_eq!(g.locate(33), Some((1, 1)));
    assert_eq!(g.locate(66), None, "past the end");
    assert_eq!(g.tensor_index("t1"), Some(1));
    assert_eq!(
        g.get("a.list")
            .and_then(|v| v.as_array())
            .map(<[Value]>::len),
        Some(2)
    );
    let mut c = std::io::Cursor::new(&bytes);
    assert_eq!(g.read_tensor_bytes(&mut c, 0).unwrap(), f32_bytes(6));
    assert!(matches!(
        g.read_tensor_bytes(&mut c, 2),
        Err(GgufError::TensorIndex { index: 2, count: 2 })
    ));
}

#[test]
fn read_header_reads_exactly_the_header() {
    let bytes = small_file();
    let mut r = &bytes[..];
    let g = Gguf::read_header(&mut r).unwrap();
    assert_eq!(bytes.len() - r.len(), g.data_offset as usize);
}

#[test]
fn version_2_is_accepted() {
    let mut w = GgufWriter::new();
    w.version(2).kv("k", Value::U8(1));
    assert_eq!(Gguf::from_bytes(&w.to_bytes()).unwrap().version, 2);
}

#[test]
fn bad_magic() {
    let mut b = small_file();
    b[0] = b'X';
    assert!(matches!(parse_err(&b), GgufError::BadMagic { found } if &found == b"XGUF"));
}

#[test]
fn unsupported_versions() {
    for v in [0u32, 1, 4, u32::MAX] {
        let b = header(v, 0, 0);
        assert!(
            matches!(parse_err(&b), GgufError::UnsupportedVersion { version } if version == v),
            "v{v}"
        );
    }
}

#[test]
fn truncated_anywhere_in_the_header() {
    let bytes = small_file();
    let g = Gguf::from_bytes(&bytes).unwrap();
    for n in 0..g.data_offset as usize {
        let e = Gguf::from_bytes(&bytes[..n]).unwrap_err();
        assert!(matches!(e, GgufError::Truncated { .. }), "prefix {n}: {e}");
        let e = Gguf::read_header(&mut &bytes[..n]).unwrap_err();
        assert!(matches!(e, GgufError::Truncated { .. }), "prefix {n}: {e}");
        let mut p = StreamParser::new();
        p.feed::<GgufError>(&bytes[..n], &mut |_| Ok(())).unwrap();
        assert!(
            matches!(p.finish(), Err(GgufError::Truncated { .. })),
            "prefix {n}"
        );
    }
}

#[test]
fn truncated_tensor_data() {
    let bytes = small_file();
    let g = Gguf::from_bytes(&bytes).unwrap();
    // The writer pads the end of the file; cut inside the last tensor.
    let short = &bytes[..(g.data_offset + g.data_size()) as usize - 1];
    let dir = std::env::temp_dir().join(format!("ahma-gguf-trunc-{}", std::process::id()));
    std::fs::write(&dir, short).unwrap();
    let e = Gguf::open(&dir).unwrap_err();
    std::fs::remove_file(&dir).ok();
    assert!(
        matches!(e, GgufError::TensorOutOfRange { ref tensor, .. } if tensor == "t1"),
        "{e}"
    );
    // A reader that ends early.
    let e = g
        .read_tensor_bytes(&mut std::io::Cursor::new(short), 1)
        .unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    // The stream parser notices at the end.
    let mut p = StreamParser::new();
    p.feed::<GgufError>(short, &mut |_| Ok(())).unwrap();
    assert!(!p.is_finished());
    assert!(matches!(p.finish(), Err(GgufError::Truncated { .. })));
}

#[test]
fn absurd_counts_and_lengths() {
    // Tensor count over the limit.
    assert!(matches!(
        parse_err(&header(3, 1 << 40, 0)),
        GgufError::LimitExceeded {
            what: "tensor count",
            ..
        }
    ));
    // Metadata count over the limit.
    assert!(matches!(
        parse_err(&header(3, 0, u64::MAX)),
        GgufError::LimitExceeded { .. }
    ));
    // A key length of 2^62.
    let mut b = header(3, 0, 1);
    b.extend_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(matches!(parse_err(&b), GgufError::LimitExceeded { .. }));
    // A string value of 2^40 bytes.
    let mut b = header(3, 0, 1);
    string(&mut b, b"k");
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(parse_err(&b), GgufError::LimitExceeded { .. }));
    // An array of 2^60 elements.
    let mut b = header(3, 0, 1);
    string(&mut b, b"k");
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(
        parse_err(&b),
        GgufError::LimitExceeded {
            what: "array length",
            ..
        }
    ));
    // An array within the length limit but longer than the input: the slice reader
    // knows the input length and refuses before allocating.
    let mut b = header(3, 0, 1);
    string(&mut b, b"k");
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&10u32.to_le_bytes());
    b.extend_from_slice(&(1u64 << 20).to_le_bytes());
    assert!(matches!(
        Gguf::from_bytes(&b),
        Err(GgufError::Truncated { what: "array", .. })
    ));
    // Too many dimensions.
    let mut b = header(3, 1, 0);
    tensor_info(&mut b, "t", &[1; 9], 0, 0);
    assert!(matches!(
        parse_err(&b),
        GgufError::LimitExceeded {
            what: "tensor dimension count",
            ..
        }
    ));
}

#[test]
fn metadata_memory_budget() {
    // 1000 u8 elements cost 1000 Values in memory, though only 1000 bytes in the file.
    let mut w = GgufWriter::new();
    w.kv("k", Value::Array(vec![Value::U8(1); 1000]));
    let bytes = w.to_bytes();
    let limits = Limits {
        max_metadata_bytes: 16 * 1024,
        ..Limits::default()
    };
    let e = Gguf::read_header_with_limits(&mut &bytes[..], limits).unwrap_err();
    assert!(
        matches!(
            e,
            GgufError::LimitExceeded {
                what: "metadata size",
                ..
            }
        ),
        "{e}"
    );
    let mut p = StreamParser::with_limits(limits);
    assert!(p.feed::<GgufError>(&bytes, &mut |_| Ok(())).is_err());
    assert!(Gguf::from_bytes(&bytes).is_ok());
}

#[test]
fn nested_arrays_and_depth_limit() {
    let nested = Value::Array(vec![
        Value::Array(vec![Value::I32(1), Value::I32(2)]),
        Value::Array(vec![Value::String("a".into())]),
    ]);
    let mut w = GgufWriter::new();
    w.kv("n", nested.clone()).kv("empty", Value::Array(vec![]));
    let g = Gguf::from_bytes(&w.to_bytes()).unwrap();
    assert_eq!(g.get("n"), Some(&nested));
    assert_eq!(g.get("empty"), Some(&Value::Array(vec![])));

    let mut v = Value::U8(0);
    for _ in 0..40 {
        v = Value::Array(vec![v]);
    }
    let mut w = GgufWriter::new();
    w.kv("deep", v);
    assert!(matches!(
        parse_err(&w.to_bytes()),
        GgufError::LimitExceeded {
            what: "array nesting depth",
            ..
        }
    ));
}

#[test]
fn invalid_utf8() {
    let mut b = header(3, 0, 1);
    string(&mut b, b"k\xff");
    b.extend_from_slice(&0u32.to_le_bytes());
    b.push(0);
    assert!(matches!(
        parse_err(&b),
        GgufError::InvalidUtf8 {
            what: "metadata key",
            ..
        }
    ));
    let mut b = header(3, 0, 1);
    string(&mut b, b"k");
    b.extend_from_slice(&8u32.to_le_bytes());
    string(&mut b, b"\xc3\x28");
    assert!(matches!(
        parse_err(&b),
        GgufError::InvalidUtf8 {
            what: "metadata string",
            ..
        }
    ));
    let mut b = header(3, 1, 0);
    tensor_info(&mut b, "x", &[1], 0, 0);
    let name_at = 24 + 8;
    b[name_at] = 0x80;
    assert!(matches!(
        parse_err(&b),
        GgufError::InvalidUtf8 {
            what: "tensor name",
            ..
        }
    ));
}

#[test]
fn unknown_value_types() {
    let mut b = header(3, 0, 1);
    string(&mut b, b"k");
    b.extend_from_slice(&13u32.to_le_bytes());
    assert!(matches!(
        parse_err(&b),
        GgufError::UnknownValueType { type_id: 13, .. }
    ));
    let mut b = header(3, 0, 1);
    string(&mut b, b"k");
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&99u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    assert!(matches!(
        parse_err(&b),
        GgufError::UnknownValueType { type_id: 99, .. }
    ));
}

#[test]
fn duplicates() {
    let mut w = GgufWriter::new();
    w.kv("k", Value::U8(1)).kv("k", Value::U8(2));
    assert!(matches!(parse_err(&w.to_bytes()), GgufError::DuplicateKey { key } if key == "k"));
    let mut w = GgufWriter::new();
    w.tensor("t", &[1], GgmlType::F32, vec![0; 4]).unwrap();
    w.tensor("t", &[1], GgmlType::F32, vec![0; 4]).unwrap();
    assert!(matches!(parse_err(&w.to_bytes()), GgufError::DuplicateTensor { name } if name == "t"));
}

#[test]
fn unknown_tensor_type_names_tensor_and_id() {
    let mut b = header(3, 1, 0);
    tensor_info(&mut b, "blk.0.weird", &[32], 16, 0); // IQ2_S: not supported
    let e = parse_err(&b);
    assert!(
        matches!(&e, GgufError::UnknownTensorType { tensor, type_id: 16 } if tensor == "blk.0.weird"),
        "{e}"
    );
    assert!(e.to_string().contains("blk.0.weird") && e.to_string().contains("16"));
}

#[test]
fn element_count_overflow() {
    let mut b = header(3, 1, 0);
    tensor_info(&mut b, "big", &[1 << 32, 1 << 32], 0, 0);
    assert!(matches!(
        parse_err(&b),
        GgufError::ElementCountOverflow { .. }
    ));
    // Fits in u64 elements but not in i64 bytes.
    let mut b = header(3, 1, 0);
    tensor_info(&mut b, "big", &[1 << 62], 0, 0);
    assert!(matches!(
        parse_err(&b),
        GgufError::ElementCountOverflow { .. }
    ));
}

#[test]
fn row_not_multiple_of_block() {
    let mut b = header(3, 1, 0);
    tensor_info(&mut b, "q", &[100, 2], GgmlType::Q4K.id(), 0);
    assert!(matches!(
        parse_err(&b),
        GgufError::RowNotBlockMultiple {
            ty: GgmlType::Q4K,
            row_len: 100,
            block: 256,
            ..
        }
    ));
}

#[test]
fn misaligned_offset() {
    let mut b = header(3, 1, 0);
    tensor_info(&mut b, "t", &[4], 0, 4);
    assert!(matches!(
        parse_err(&b),
        GgufError::MisalignedOffset {
            offset: 4,
            alignment: 32,
            ..
        }
    ));
}

#[test]
fn overlapping_tensors() {
    let mut b = header(3, 2, 0);
    tensor_info(&mut b, "a", &[16], 0, 0);
    tensor_info(&mut b, "b", &[8], 0, 32);
    b.resize(b.len().next_multiple_of(32) + 128, 0);
    assert!(matches!(
        parse_err(&b),
        GgufError::OverlappingTensors { .. }
    ));
    // Touching is fine.
    let mut b = header(3, 2, 0);
    tensor_info(&mut b, "a", &[8], 0, 0);
    tensor_info(&mut b, "b", &[8], 0, 32);
    b.resize(b.len().next_multiple_of(32) + 64, 0);
    assert!(Gguf::from_bytes(&b).is_ok());
}

#[test]
fn bad_alignment() {
    for (a, ok) in [
        (0u32, false),
        (3, false),
        (48, false),
        (1, true),
        (64, true),
    ] {
        let mut b = header(3, 0, 1);
        string(&mut b, b"general.alignment");
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&a.to_le_bytes());
        b.resize(b.len() + 64, 0);
        let r = Gguf::from_bytes(&b);
        if ok {
            assert_eq!(r.unwrap().alignment, u64::from(a));
        } else {
            assert!(
                matches!(r, Err(GgufError::BadAlignment { .. })),
                "alignment {a}"
            );
        }
    }
    let mut w = GgufWriter::new();
    w.kv("general.alignment", Value::String("32".into()));
    assert!(matches!(
        parse_err(&w.to_bytes()),
        GgufError::WrongValueType { .. }
    ));
}

#[test]
fn stream_errors_poison_the_parser_and_sink_errors_propagate() {
    let mut p = StreamParser::new();
    assert!(matches!(
        p.feed::<GgufError>(b"XXXX", &mut |_| Ok(())),
        Err(GgufError::BadMagic { .. })
    ));
    assert!(matches!(
        p.feed::<GgufError>(b"more", &mut |_| Ok(())),
        Err(GgufError::StreamFailed)
    ));
    assert!(matches!(p.finish(), Err(GgufError::StreamFailed)));

    #[derive(Debug)]
    enum MyErr {
        Stop,
        Gguf(GgufError),
    }
    impl From<GgufError> for MyErr {
        fn from(e: GgufError) -> Self {
            MyErr::Gguf(e)
        }
    }
    let bytes = small_file();
    let mut p = StreamParser::new();
    let r = p.feed::<MyErr>(&bytes, &mut |ev| match ev {
        StreamEvent::TensorData { .. } => Err(MyErr::Stop),
        _ => Ok(()),
    });
    assert!(matches!(r, Err(MyErr::Stop)));
    assert!(p.header().is_some());
    assert!(matches!(
        p.feed::<MyErr>(&[], &mut |_| Ok(())),
        Err(MyErr::Gguf(GgufError::StreamFailed))
    ));
}

#[test]
fn stream_reports_zero_sized_tensors_and_trailing_bytes() {
    let mut w = GgufWriter::new();
    w.tensor("empty", &[0, 4], GgmlType::Q4_0, vec![]).unwrap();
    w.tensor("x", &[2], GgmlType::F16, vec![1, 2, 3, 4])
        .unwrap();
    let mut bytes = w.to_bytes();
    bytes.extend_from_slice(b"trailing");
    let mut events = Vec::new();
    let mut p = StreamParser::new();
    p.feed::<GgufError>(&bytes, &mut |ev| {
        events.push(match ev {
            StreamEvent::Header(_) => "header".to_string(),
            StreamEvent::TensorData {
                index,
                offset,
                bytes,
            } => format!("data {index} {offset} {bytes:?}"),
            StreamEvent::TensorComplete { index } => format!("complete {index}"),
            StreamEvent::Finished => "finished".to_string(),
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(
        events,
        [
            "header",
            "complete 0",
            "data 1 0 [1, 2, 3, 4]",
            "complete 1",
            "finished"
        ]
    );
    assert_eq!(p.bytes_consumed(), bytes.len() as u64);
    // A file without tensors finishes right after its header.
    let mut n = 0;
    let mut p = StreamParser::new();
    p.feed::<GgufError>(&GgufWriter::new().to_bytes(), &mut |ev| {
        n += 1;
        assert!(matches!(
            (n, ev),
            (1, StreamEvent::Header(_)) | (2, StreamEvent::Finished)
        ));
        Ok(())
    })
    .unwrap();
    assert!(p.is_finished() && p.finish().is_ok());
}

// ---- LlamaConfig ----

struct Llama {
    d: u64,
    f: u64,
    heads: u64,
    kv_heads: Option<u64>,
    layers: usize,
    vocab: u64,
    tokens: Option<u64>,
    skip: Option<String>,
    norm_ty: GgmlType,
    extra: Vec<(String, Value)>,
    omit: Vec<&'static str>,
}

impl Default for Llama {
    fn default() -> Self {
        Llama {
            d: 8,
            f: 16,
            heads: 2,
            kv_heads: Some(1),
            layers: 2,
            vocab: 5,
            tokens: Some(5),
            skip: None,
            norm_ty: GgmlType::F32,
            extra: vec![],
            omit: vec![],
        }
    }
}

impl Llama {
    fn gguf(&self) -> Gguf {
        let mut w = GgufWriter::new();
        let mut kv: Vec<(String, Value)> = vec![
            ("general.architecture".into(), Value::String("llama".into())),
            ("llama.context_length".into(), Value::U64(64)),
            ("llama.embedding_length".into(), Value::U32(self.d as u32)),
            ("llama.block_count".into(), Value::I32(self.layers as i32)),
            (
                "llama.feed_forward_length".into(),
                Value::U32(self.f as u32),
            ),
            (
                "llama.attention.head_count".into(),
                Value::U32(self.heads as u32),
            ),
            (
                "llama.attention.layer_norm_rms_epsilon".into(),
                Value::F32(1e-6),
            ),
        ];
        if let Some(k) = self.kv_heads {
            kv.push(("llama.attention.head_count_kv".into(), Value::U32(k as u32)));
        }
        if let Some(n) = self.tokens {
            kv.push((
                "tokenizer.ggml.tokens".into(),
                Value::Array(vec![Value::String("t".into()); n as usize]),
            ));
        }
        kv.retain(|(k, _)| !self.omit.contains(&k.as_str()));
        kv.extend(self.extra.iter().cloned());
        for (k, v) in kv {
            w.kv(&k, v);
        }
        let (d, f) = (self.d, self.f);
        let kvd = self.kv_heads.unwrap_or(self.heads) * (d / self.heads);
        let mut t = |name: String, dims: &[u64], ty: GgmlType| {
            if self.skip.as_deref() == Some(name.as_str()) {
                return;
            }
            let n: u64 = dims.iter().product();
            let bytes = ahma_gguf::tensor_bytes(ty, n).unwrap() as usize;
            w.tensor(&name, dims, ty, vec![0; bytes]).unwrap();
        };
        t(names::TOKEN_EMBD.into(), &[d, self.vocab], GgmlType::F16);
        for l in 0..self.layers {
            t(names::attn_norm(l), &[d], self.norm_ty);
            t(names::attn_q(l), &[d, d], GgmlType::F16);
            t(names::attn_k(l), &[d, kvd], GgmlType::F16);
            t(names::attn_v(l), &[d, kvd], GgmlType::F16);
            t(names::attn_output(l), &[d, d], GgmlType::F16);
            t(names::ffn_norm(l), &[d], GgmlType::F32);
            t(names::ffn_gate(l), &[d, f], GgmlType::F16);
            t(names::ffn_up(l), &[d, f], GgmlType::F16);
            t(names::ffn_down(l), &[f, d], GgmlType::F16);
        }
        t(names::OUTPUT_NORM.into(), &[d], GgmlType::F32);
        t(names::OUTPUT.into(), &[d, self.vocab], GgmlType::F16);
        Gguf::from_bytes(&w.to_bytes()).unwrap()
    }
}

#[test]
fn llama_config_reads_any_integer_width_and_applies_defaults() {
    let c = LlamaConfig::from_gguf(&Llama::default().gguf()).unwrap();
    assert_eq!(
        c,
        LlamaConfig {
            n_embd: 8,
            n_layer: 2,
            n_ff: 16,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 4,
            rms_eps: 1e-6,
            rope_base: 10000.0,
            rope_dim: 4,
            n_ctx_train: 64,
            n_vocab: 5,
        }
    );
    assert_eq!(c.kv_dim(), 4);
    // No kv head count: defaults to the head count. No token list: vocab from the tensor.
    let c = LlamaConfig::from_gguf(
        &Llama {
            kv_heads: None,
            tokens: None,
            ..Default::default()
        }
        .gguf(),
    )
    .unwrap();
    assert_eq!((c.n_head_kv, c.n_vocab), (2, 5));
    let extra = vec![
        ("llama.rope.freq_base".into(), Value::F32(500000.0)),
        ("llama.rope.dimension_count".into(), Value::U64(2)),
    ];
    let c = LlamaConfig::from_gguf(
        &Llama {
            extra,
            ..Default::default()
        }
        .gguf(),
    )
    .unwrap();
    assert_eq!((c.rope_base, c.rope_dim), (500000.0, 2));
}

#[test]
fn llama_config_errors() {
    let err = |l: Llama| LlamaConfig::from_gguf(&l.gguf()).unwrap_err();
    assert!(
        matches!(err(Llama { omit: vec!["llama.block_count"], ..Default::default() }), GgufError::MissingKey { key } if key == "llama.block_count")
    );
    assert!(matches!(
        err(Llama {
            omit: vec!["general.architecture"],
            ..Default::default()
        }),
        GgufError::MissingKey { .. }
    ));
    let e = err(Llama {
        omit: vec!["general.architecture"],
        extra: vec![("general.architecture".into(), Value::String("gpt2".into()))],
        ..Default::default()
    });
    assert!(matches!(e, GgufError::WrongArchitecture { .. }));
    let e = err(Llama {
        omit: vec!["llama.context_length"],
        extra: vec![("llama.context_length".into(), Value::String("64".into()))],
        ..Default::default()
    });
    assert!(matches!(e, GgufError::WrongValueType { .. }));
    let e = err(Llama {
        omit: vec!["llama.context_length"],
        extra: vec![("llama.context_length".into(), Value::I32(-1))],
        ..Default::default()
    });
    assert!(matches!(e, GgufError::WrongValueType { .. }));
    assert!(matches!(
        err(Llama {
            heads: 3,
            kv_heads: Some(3),
            ..Default::default()
        }),
        GgufError::InvalidConfig { .. }
    ));
    assert!(matches!(
        err(Llama {
            heads: 4,
            kv_heads: Some(3),
            ..Default::default()
        }),
        GgufError::InvalidConfig { .. }
    ));
    assert!(matches!(
        err(Llama {
            tokens: Some(6),
            ..Default::default()
        }),
        GgufError::VocabMismatch { tokens: 6, embd: 5 }
    ));
    assert!(
        matches!(err(Llama { skip: Some(names::OUTPUT.into()), ..Default::default() }), GgufError::MissingTensor { name } if name == "output.weight")
    );
    assert!(matches!(
        err(Llama {
            skip: Some(names::ffn_down(1)),
            ..Default::default()
        }),
        GgufError::MissingTensor { .. }
    ));
    assert!(matches!(
        err(Llama {
            norm_ty: GgmlType::F16,
            ..Default::default()
        }),
        GgufError::TensorType {
            expected: GgmlType::F32,
            found: GgmlType::F16,
            ..
        }
    ));
    // The file says 3 layers but holds 2.
    let e = err(Llama {
        omit: vec!["llama.block_count"],
        extra: vec![("llama.block_count".into(), Value::U32(3))],
        ..Default::default()
    });
    assert!(matches!(e, GgufError::MissingTensor { name } if name == "blk.2.attn_norm.weight"));
    // The file says 16 wide but tensors are 8 wide.
    let e = err(Llama {
        omit: vec!["llama.embedding_length"],
        extra: vec![("llama.embedding_length".into(), Value::U32(16))],
        ..Default::default()
    });
    assert!(matches!(e, GgufError::TensorShape { .. }));
    let e = err(Llama {
        extra: vec![("llama.rope.dimension_count".into(), Value::U32(6))],
        ..Default::default()
    });
    assert!(matches!(e, GgufError::InvalidConfig { .. }));
}

/// Regression (found by the property tests): an empty string right at a chunk boundary
/// at the very end of the header left the stream parser waiting for zero bytes.
#[test]
fn empty_strings_at_chunk_boundaries() {
    let mut w = GgufWriter::new();
    w.alignment(1).kv("", Value::String(String::new()));
    let bytes = w.to_bytes();
    for cut in 0..=bytes.len() {
        let mut p = StreamParser::new();
        p.feed::<GgufError>(&bytes[..cut], &mut |_| Ok(())).unwrap();
        p.feed::<GgufError>(&bytes[cut..], &mut |_| Ok(())).unwrap();
        assert!(p.is_finished(), "cut at {cut}");
        assert_eq!(
            p.header().unwrap().get(""),
            Some(&Value::String(String::new()))
        );
    }
}

/// Regression (property tests): a zero-byte tensor whose offset lies far beyond the file
/// occupies nothing; the blocking and the streaming reader both accept it.
#[test]
fn zero_byte_tensor_far_away_occupies_nothing() {
    let mut b = header(3, 2, 0);
    tensor_info(&mut b, "x", &[2], 0, 0);
    tensor_info(&mut b, "empty", &[0, 3], 0, 1 << 56);
    b.resize(b.len().next_multiple_of(32) + 32, 0);
    let g = Gguf::from_bytes(&b).unwrap();
    assert_eq!(g.data_size(), 8);
    g.check_fits(b.len() as u64).unwrap();
    assert_eq!(g.locate(1 << 56), None);
    let mut p = StreamParser::new();
    p.feed::<GgufError>(&b, &mut |_| Ok(())).unwrap();
    assert!(p.finish().is_ok());
}

/// Regression (property tests): a file without tensor data that ends inside the padding
/// before the data section is truncated for both readers; the header is still reported
/// as soon as the table is complete.
#[test]
fn no_tensors_truncated_in_padding() {
    let bytes = GgufWriter::new().to_bytes(); // 24-byte header + 8 bytes of padding
    assert_eq!(bytes.len(), 32);
    let short = &bytes[..28];
    assert!(matches!(
        Gguf::read_header(&mut &short[..]),
        Err(GgufError::Truncated { .. })
    ));
    let mut p = StreamParser::new();
    let mut got_header = false;
    p.feed::<GgufError>(short, &mut |ev| {
        got_header |= matches!(ev, StreamEvent::Header(_));
        Ok(())
    })
    .unwrap();
    assert!(got_header && p.header().is_some());
    assert!(!p.is_finished());
    assert!(matches!(p.finish(), Err(GgufError::Truncated { .. })));
}
