//! CPU dequantizers for every supported block format.
//!
//! Each follows ggml's `dequantize_row_*` (ggml-quants.c) and performs the float
//! operations in the same order as gguf-py's `gguf.quants` (for example
//! `(d * sc) * q - (dmin * m)` for Q4_K), so that results are bit-identical to that oracle
//! for every finite input. Rust never fuses a multiply and an add unless asked, and
//! neither does numpy, so no rounding differences arise. The one deviation: an f16 NaN
//! comes out as a quiet NaN (numpy keeps a signalling payload as is).

use crate::{GgmlType, GgufError};

/// The IQ4_NL / IQ4_XS codebook (`kvalues_iq4nl` in ggml-common.h).
pub const IQ4NL_VALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

#[inline]
fn f16(b: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// Elements held by `len` bytes of whole `ty` blocks (on 32-bit targets the count of a
/// large buffer can overflow `usize`).
fn elems_of(ty: GgmlType, len: usize) -> Result<usize, GgufError> {
    (len / ty.block_bytes())
        .checked_mul(ty.block_elems())
        .ok_or(GgufError::SizeOverflow {
            ty,
            n_elems: u64::MAX,
        })
}

/// Dequantizes `src`, a whole number of `ty` blocks, into `dst`, whose length must be the
/// number of elements those blocks hold.
pub fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), GgufError> {
    let bb = ty.block_bytes();
    let be = ty.block_elems();
    if !src.len().is_multiple_of(bb) {
        return Err(GgufError::NotWholeBlocks {
            ty,
            len: src.len(),
            block: bb,
        });
    }
    let expected = elems_of(ty, src.len())?;
    if dst.len() != expected {
        return Err(GgufError::OutputLength {
            expected,
            found: dst.len(),
        });
    }
    let blocks = src.chunks_exact(bb).zip(dst.chunks_exact_mut(be));
    match ty {
        GgmlType::F32 => {
            blocks.for_each(|(b, y)| y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        GgmlType::F16 => blocks.for_each(|(b, y)| y[0] = f16(b, 0)),
        GgmlType::Bf16 => blocks.for_each(|(b, y)| {
            y[0] = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
        }),
        GgmlType::Q4_0 => blocks.for_each(|(b, y)| q4_0(b, y)),
        GgmlType::Q4_1 => blocks.for_each(|(b, y)| q4_1(b, y)),
        GgmlType::Q5_0 => blocks.for_each(|(b, y)| q5_0(b, y)),
        GgmlType::Q5_1 => blocks.for_each(|(b, y)| q5_1(b, y)),
        GgmlType::Q8_0 => blocks.for_each(|(b, y)| q8_0(b, y)),
        GgmlType::Iq4Nl => blocks.for_each(|(b, y)| iq4_nl(b, y)),
        GgmlType::Q2K => blocks.for_each(|(b, y)| q2_k(b, y)),
        GgmlType::Q3K => blocks.for_each(|(b, y)| q3_k(b, y)),
        GgmlType::Q4K => blocks.for_each(|(b, y)| q4_k(b, y)),
        GgmlType::Q5K => blocks.for_each(|(b, y)| q5_k(b, y)),
        GgmlType::Q6K => blocks.for_each(|(b, y)| q6_k(b, y)),
        GgmlType::Iq4Xs => blocks.for_each(|(b, y)| iq4_xs(b, y)),
    }
    Ok(())
}

/// [`dequantize`] into a new vector.
pub fn dequantize_to_vec(ty: GgmlType, src: &[u8]) -> Result<Vec<f32>, GgufError> {
    let bb = ty.block_bytes();
    if !src.len().is_multiple_of(bb) {
        return Err(GgufError::NotWholeBlocks {
            ty,
            len: src.len(),
            block: bb,
        });
    }
    let mut out = vec![0.0f32; elems_of(ty, src.len())?];
    dequantize(ty, src, &mut out)?;
    Ok(out)
}

/// Q4_0: `d f16 | qs[16]`; element j is the low nibble of qs[j], j+16 the high nibble.
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 0);
    for j in 0..16 {
        let q = b[2 + j];
        y[j] = d * ((q & 15) as i32 - 8) as f32;
        y[j + 16] = d * ((q >> 4) as i32 - 8) as f32;
    }
}

/// Q4_1: `d f16 | m f16 | qs[16]`, y = d·q + m.
fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    for j in 0..16 {
        let q = b[4 + j];
        y[j] = d * (q & 15) as f32 + m;
        y[j + 16] = d * (q >> 4) as f32 + m;
    }
}

/// Q5_0: `d f16 | qh u32 | qs[16]`; bit j of qh is the fifth bit of element j.
fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    for j in 0..16 {
        let q = b[6 + j];
        let lo = (q & 15) as u32 | ((qh >> j) & 1) << 4;
        let hi = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (lo as i32 - 16) as f32;
        y[j + 16] = d * (hi as i32 - 16) as f32;
    }
}

/// Q5_1: `d f16 | m f16 | qh u32 | qs[16]`, y = d·q + m.
fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    for j in 0..16 {
        let q = b[8 + j];
        let lo = (q & 15) as u32 | ((qh >> j) & 1) << 4;
        let hi = (q >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
        y[j] = d * lo as f32 + m;
        y[j + 16] = d * hi as f32 + m;
    }
}

/// Q8_0: `d f16 | qs[32] i8`.
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 0);
    for j in 0..32 {
        y[j] = (b[2 + j] as i8) as f32 * d;
    }
}

/// IQ4_NL: like Q4_0 but the nibble indexes the non-linear codebook.
fn iq4_nl(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 0);
    for j in 0..16 {
        let q = b[2 + j];
        y[j] = d * IQ4NL_VALUES[(q & 15) as usize] as f32;
        y[j + 16] = d * IQ4NL_VALUES[(q >> 4) as usize] as f32;
    }
}

/// Q2_K: `scales[16] | qs[64] | d f16 | dmin f16`. Sixteen groups of 16; group g uses
/// scale byte g (low nibble scale, high nibble min) and 2-bit values
/// `(qs[32·(g/8) + 16·(g%2) + l] >> 2·((g%8)/2)) & 3`.
fn q2_k(b: &[u8], y: &mut [f32]) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16(b, 80), f16(b, 82));
    for g in 0..16 {
        let sc = scales[g];
        let dl = d * (sc & 15) as f32;
        let ml = dmin * (sc >> 4) as f32;
        let base = 32 * (g / 8) + 16 * (g % 2);
        let shift = 2 * ((g % 8) / 2);
        for l in 0..16 {
            let q = (qs[base + l] >> shift) & 3;
            y[16 * g + l] = dl * q as f32 - ml;
        }
    }
}

/// Q3_K: `hmask[32] | qs[64] | scales[12] | d f16`. Sixteen groups of 16 with 6-bit signed
/// scales; a clear hmask bit subtracts 4 from the 2-bit value.
fn q3_k(b: &[u8], y: &mut [f32]) {
    let (hmask, qs, sc) = (&b[0..32], &b[32..96], &b[96..108]);
    let d = f16(b, 108);
    for g in 0..16 {
        let low = if g < 8 { sc[g] & 15 } else { sc[g - 8] >> 4 };
        let high = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
        let scale = (low | high << 4) as i32 - 32;
        let dl = d * scale as f32;
        for l16 in 0..16 {
            let e = 16 * g + l16; // element index in the block
            let (h, j, l) = (e / 128, (e % 128) / 32, e % 32);
            let q = ((qs[32 * h + l] >> (2 * j)) & 3) as i32;
            let hbit = (hmask[l] >> (4 * h + j)) & 1;
            let v = q - if hbit != 0 { 0 } else { 4 };
            y[e] = dl * v as f32;
        }
    }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of Q4_K/Q5_K (`get_scale_min_k4`).
#[inline]
fn scale_min_k4(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// Q4_K: `d f16 | dmin f16 | scales[12] | qs[128]`; eight sub-blocks of 32, sub-block
/// 2c from the low nibbles of qs[32c..32c+32], 2c+1 from the high nibbles.
fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16(b, 0), f16(b, 2));
    let (s, qs) = (&b[4..16], &b[16..144]);
    for sb in 0..8 {
        let (sc, mn) = scale_min_k4(sb, s);
        let dl = d * sc as f32;
        let ml = dmin * mn as f32;
        let q = &qs[32 * (sb / 2)..32 * (sb / 2) + 32];
        let shift = 4 * (sb % 2);
        for l in 0..32 {
            y[32 * sb + l] = dl * ((q[l] >> shift) & 15) as f32 - ml;
        }
    }
}

/// Q5_K: Q4_K plus `qh[32]` before qs; bit `sb` of qh[l] is the fifth bit of element l of
/// sub-block sb.
fn q5_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16(b, 0), f16(b, 2));
    let (s, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for sb in 0..8 {
        let (sc, mn) = scale_min_k4(sb, s);
        let dl = d * sc as f32;
        let ml = dmin * mn as f32;
        let q = &qs[32 * (sb / 2)..32 * (sb / 2) + 32];
        let shift = 4 * (sb % 2);
        for l in 0..32 {
            let v = ((q[l] >> shift) & 15) | ((qh[l] >> sb) & 1) << 4;
            y[32 * sb + l] = dl * v as f32 - ml;
        }
    }
}

/// Q6_K: `ql[128] | qh[64] | scales[16] i8 | d f16`; 6-bit values minus 32, sixteen
/// groups of 16 each with its own signed scale.
fn q6_k(b: &[u8], y: &mut [f32]) {
    let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
    let d = f16(b, 208);
    for n in 0..2 {
        let (ql, qh, y) = (&ql[64 * n..], &qh[32 * n..], &mut y[128 * n..]);
        let sc = &sc[8 * n..];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 15) | (qh[l] & 3) << 4) as i32 - 32;
            let q2 = ((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) as i32 - 32;
            let q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) as i32 - 32;
            y[l] = (d * (sc[is] as i8) as f32) * q1 as f32;
            y[l + 32] = (d * (sc[is + 2] as i8) as f32) * q2 as f32;
            y[l + 64] = (d * (sc[is + 4] as i8) as f32) * q3 as f32;
            y[l + 96] = (d * (sc[is + 6] as i8) as f32) * q4 as f32;
        }
    }
}

/// IQ4_XS: `d f16 | scales_h u16 | scales_l[4] | qs[128]`; eight sub-blocks of 32 with
/// 6-bit scales (offset 32), values through the IQ4_NL codebook.
fn iq4_xs(b: &[u8], y: &mut [f32]) {
    let d = f16(b, 0);
    let scales_h = u16::from_le_bytes([b[2], b[3]]);
    let (scales_l, qs) = (&b[4..8], &b[8..136]);
    for ib in 0..8 {
        let ls =
            ((scales_l[ib / 2] >> (4 * (ib % 2))) & 15) as u16 | ((scales_h >> (2 * ib)) & 3) << 4;
        let dl = d * (ls as i32 - 32) as f32;
        let q = &qs[16 * ib..16 * ib + 16];
        for j in 0..16 {
            y[32 * ib + j] = dl * IQ4NL_VALUES[(q[j] & 15) as usize] as f32;
            y[32 * ib + 16 + j] = dl * IQ4NL_VALUES[(q[j] >> 4) as usize] as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_partial_blocks_and_wrong_output_length() {
        let mut out = vec![0.0; 32];
        assert!(matches!(
            dequantize(GgmlType::Q4_0, &[0; 17], &mut out),
            Err(GgufError::NotWholeBlocks { .. })
        ));
        assert!(matches!(
            dequantize(GgmlType::Q4_0, &[0; 18], &mut out[..31]),
            Err(GgufError::OutputLength { .. })
        ));
        assert!(matches!(
            dequantize_to_vec(GgmlType::Q6K, &[0; 211]),
            Err(GgufError::NotWholeBlocks { .. })
        ));
        for t in GgmlType::ALL {
            assert_eq!(dequantize_to_vec(t, &[]).unwrap(), Vec::<f32>::new());
            let v = dequantize_to_vec(t, &vec![0u8; t.block_bytes() * 2]).unwrap();
            assert_eq!(v.len(), t.block_elems() * 2);
        }
    }

    #[test]
    fn q4_0_hand_example() {
        // d = 1.0 (0x3c00), qs[0] = 0x9f: element 0 = 15-8 = 7, element 16 = 9-8 = 1.
        let mut b = [0u8; 18];
        b[0..2].copy_from_slice(&0x3c00u16.to_le_bytes());
        b[2] = 0x9f;
        let y = dequantize_to_vec(GgmlType::Q4_0, &b).unwrap();
        assert_eq!(y[0], 7.0);
        assert_eq!(y[16], 1.0);
        assert_eq!(y[1], -8.0);
    }
}
