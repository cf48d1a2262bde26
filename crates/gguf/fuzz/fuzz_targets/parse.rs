//! Fuzzes both GGUF parsers, `LlamaConfig` and the dequantizers.
//!
//! Run (stable toolchain): `RUSTC_BOOTSTRAP=1 cargo fuzz run parse` from crates/gguf.
//! Seeds: crates/gguf/fuzz/corpus/parse (small GGUF files from tests/fixtures/dequant).
//!
//! Checks: nothing panics; the streaming parser, with chunk sizes drawn from the input,
//! reports the same header and tensor bytes as the blocking reader.
#![no_main]

use ahma_gguf::{
    dequantize_to_vec, GgmlType, Gguf, GgufError, LlamaConfig, StreamEvent, StreamParser,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The last byte picks the chunk size of the streaming run (not part of the file).
    let Some((&k, bytes)) = data.split_last() else {
        return;
    };
    let chunk = 1 + (k as usize % 64) * (1 + k as usize / 64 * 37);

    let blocking = Gguf::read_header(&mut &bytes[..]);
    let sliced = Gguf::from_bytes(bytes);
    assert_eq!(
        blocking.is_ok(),
        sliced.is_ok(),
        "read_header and from_bytes disagree"
    );

    let mut p = StreamParser::new();
    let mut header = None;
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let mut stream_ok = true;
    for c in bytes.chunks(chunk) {
        let r = p.feed::<GgufError>(c, &mut |ev| {
            match ev {
                StreamEvent::Header(g) => {
                    pieces = vec![Vec::new(); g.tensors.len()];
                    header = Some(g.clone());
                }
                StreamEvent::TensorData {
                    index,
                    offset,
                    bytes,
                } => {
                    assert_eq!(offset, pieces[index].len() as u64);
                    pieces[index].extend_from_slice(bytes);
                }
                StreamEvent::TensorComplete { .. } | StreamEvent::Finished => {}
            }
            Ok(())
        });
        if r.is_err() {
            stream_ok = false;
            break;
        }
    }
    // The stream reports the header as soon as the tensor table is complete; the
    // blocking reader also reads the padding up to the data section.
    match (&blocking, &header) {
        (Ok(_), None) => panic!("blocking reader parsed a header the stream did not"),
        (Err(e), Some(_)) => assert!(
            matches!(
                e,
                GgufError::Truncated {
                    what: "padding before the data section",
                    ..
                }
            ),
            "stream parsed a header the blocking reader rejected: {e}"
        ),
        _ => {}
    }

    if let Ok(g) = &blocking {
        let h = header.as_ref().unwrap();
        assert_eq!(h.metadata.len(), g.metadata.len());
        assert_eq!(h.tensors, g.tensors);
        assert_eq!(h.data_offset, g.data_offset);
        let fits = g.check_fits(bytes.len() as u64).is_ok();
        assert_eq!(
            fits,
            stream_ok && p.finish().is_ok(),
            "stream completion vs check_fits"
        );
        let _ = LlamaConfig::from_gguf(g);
        let mut cur = std::io::Cursor::new(bytes);
        for (i, t) in g.tensors.iter().enumerate() {
            let _ = g.locate(t.offset);
            if let Ok(raw) = g.read_tensor_bytes(&mut cur, i) {
                assert_eq!(raw, pieces[i], "tensor {i} bytes differ");
                let v = dequantize_to_vec(t.ty, &raw).unwrap();
                assert_eq!(v.len() as u64, t.n_elements());
            }
        }
    }

    // Dequantize the raw input as every type.
    for ty in GgmlType::ALL {
        let n = bytes.len() / ty.block_bytes() * ty.block_bytes();
        let _ = dequantize_to_vec(ty, &bytes[..n]).unwrap();
    }
});
