//! Dequantization oracle: our CPU dequantizers against gguf-py's `gguf.quants.dequantize`
//! (fixtures from `tests/gen/gen_dequant_fixtures.py`, gguf 0.19.0).
//!
//! Every type must match bit for bit. The only values not compared bitwise are f16 NaNs,
//! which the generator leaves out on purpose (numpy and the `half` crate disagree on NaN
//! payloads, and both are "a NaN").

use ahma_gguf::{dequantize, dequantize_to_vec, GgmlType};
use ahma_tests::fixture;

fn index() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("dequant/index.json")).expect("read index.json");
    serde_json::from_str(&text).expect("parse index.json")
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn every_type_matches_gguf_py_bit_exactly() {
    let index = index();
    let types = index["types"].as_array().expect("types");
    let mut seen = Vec::new();
    for entry in types {
        let name = entry["type"].as_str().unwrap();
        let ty = GgmlType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"));
        assert_eq!(
            u64::from(ty.id()),
            entry["id"].as_u64().unwrap(),
            "{name} id"
        );
        assert_eq!(
            ty.block_elems() as u64,
            entry["block_elems"].as_u64().unwrap(),
            "{name} block elems"
        );
        assert_eq!(
            ty.block_bytes() as u64,
            entry["block_bytes"].as_u64().unwrap(),
            "{name} block bytes"
        );

        let raw = std::fs::read(fixture(&format!("dequant/{name}.bin"))).unwrap();
        let want = f32s(&std::fs::read(fixture(&format!("dequant/{name}.f32"))).unwrap());
        assert_eq!(
            raw.len() as u64,
            entry["blocks"].as_u64().unwrap() * ty.block_bytes() as u64
        );

        let got = dequantize_to_vec(ty, &raw).unwrap();
        assert_eq!(got.len(), want.len(), "{name} length");
        let mismatches: Vec<_> = got
            .iter()
            .zip(&want)
            .enumerate()
            .filter(|(_, (g, w))| g.to_bits() != w.to_bits() && !(g.is_nan() && w.is_nan()))
            .take(5)
            .collect();
        assert!(
            mismatches.is_empty(),
            "{name}: first mismatches (index, (ours, gguf-py)): {mismatches:?}"
        );

        // The slice API gives the same answer.
        let mut out = vec![f32::NAN; want.len()];
        dequantize(ty, &raw, &mut out).unwrap();
        assert!(out
            .iter()
            .zip(&got)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        seen.push(ty);
    }
    for ty in GgmlType::ALL {
        assert!(seen.contains(&ty), "no fixture for {ty}");
    }
}

#[test]
fn fixtures_cover_edge_cases() {
    // The generator promises negative and zero scales and infinities; make sure they
    // actually reach the comparison above.
    let q4k = f32s(&std::fs::read(fixture("dequant/Q4_K.f32")).unwrap());
    assert!(q4k.iter().any(|v| *v < 0.0) && q4k.iter().any(|v| *v > 0.0));
    let f16 = f32s(&std::fs::read(fixture("dequant/F16.f32")).unwrap());
    assert!(f16.iter().any(|v| v.is_infinite()));
    assert!(f16
        .iter()
        .any(|v| v.is_subnormal() || (*v != 0.0 && v.abs() < 6.2e-5)));
}
