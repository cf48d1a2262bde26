//! embed against ahma_gguf::dequantize for every type (exact: both dequantize in f32), and the
//! QuantMatrix upload path: streaming writes of arbitrary chunks across part boundaries.

mod common;

use ahma_gguf::GgmlType;
use ahma_kernels::embed::{embed_once, Embed, EmbedOptions};
use ahma_kernels::{KernelError, QuantMatrix};
use common::{random_tensor, Rng};

#[test]
fn embed_every_type_exact() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    for (i, ty) in GgmlType::ALL.into_iter().enumerate() {
        let n_in = match ty.block_elems() {
            1 => 70,
            32 => 96,
            _ => 512,
        };
        let n_out = 23;
        let mut rng = Rng::new(300 + i as u64);
        let bytes = random_tensor(ty, n_in, n_out, &mut rng);
        let table = ahma_gguf::dequantize_to_vec(ty, &bytes).unwrap();
        let row = (n_in / ty.block_elems() * ty.block_bytes()) as u64;
        // Split into parts of 5 rows so ids land in different parts.
        let mut m =
            QuantMatrix::with_part_limit(&ctx, "embd", ty, n_in as u64, n_out as u64, 5 * row)
                .unwrap();
        m.write(&ctx, 0, &bytes).unwrap();
        m.finish(&ctx).unwrap();
        let ids = [0u32, 22, 7, 7, 13, 5, 4];
        let got = pollster::block_on(embed_once(&ctx, &m, &ids)).unwrap();
        for (t, &id) in ids.iter().enumerate() {
            let want = &table[id as usize * n_in..(id as usize + 1) * n_in];
            assert_eq!(
                &got[t * n_in..(t + 1) * n_in],
                want,
                "{ty}: token {t} (id {id})"
            );
        }
    }
}

#[test]
fn embed_offsets_and_token_count() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    let ty = GgmlType::Q8_0;
    let (n_in, n_out) = (64usize, 10usize);
    let mut rng = Rng::new(1);
    let bytes = random_tensor(ty, n_in, n_out, &mut rng);
    let table = ahma_gguf::dequantize_to_vec(ty, &bytes).unwrap();
    let m = QuantMatrix::from_bytes(&ctx, "embd", ty, n_in as u64, n_out as u64, &bytes).unwrap();
    let ids = ctx.storage_buffer_init("ids", &[9u32, 3, 8, 1]).unwrap();
    let y = ctx.storage_buffer("y", (5 + 3 * n_in) as u64 * 4).unwrap();
    let opts = EmbedOptions {
        tok_offset: 1,
        y_offset: 5,
    };
    let mut op = pollster::block_on(Embed::new(&ctx, &m, &ids, &y, 3, opts)).unwrap();
    op.set_n_tokens(&ctx, 2).unwrap();
    ctx.run_pass("t", |p| op.encode(p)).unwrap();
    let out = pollster::block_on(ctx.read_f32(&y, 0, 5 + 3 * n_in)).unwrap();
    assert_eq!(&out[5..5 + n_in], &table[3 * n_in..4 * n_in]);
    assert_eq!(&out[5 + n_in..5 + 2 * n_in], &table[8 * n_in..9 * n_in]);
    assert!(
        out[5 + 2 * n_in..].iter().all(|&v| v == 0.0),
        "third slot must be untouched"
    );
    assert!(pollster::block_on(embed_once(&ctx, &m, &[10])).is_err());
}

/// Reads all parts back and concatenates their data bytes.
fn read_back(ctx: &ahma_kernels::GpuContext, m: &QuantMatrix) -> Vec<u8> {
    let mut out = Vec::new();
    for part in m.parts() {
        let n = part.n_rows * m.row_bytes();
        out.extend(pollster::block_on(ctx.read_bytes(&part.buffer, 0, n)).unwrap());
    }
    out
}

#[test]
fn quant_matrix_streaming_writes() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    let mut rng = Rng::new(77);
    for ty in [GgmlType::Q4_0, GgmlType::Q3K, GgmlType::F16] {
        let (n_in, n_out) = if ty.block_elems() == 256 {
            (256usize, 9usize)
        } else {
            (96, 9)
        };
        let bytes = random_tensor(ty, n_in, n_out, &mut rng);
        let row = (n_in / ty.block_elems() * ty.block_bytes()) as u64;
        for limit in [2 * row + 3, 1 << 20] {
            let mut m =
                QuantMatrix::with_part_limit(&ctx, "w", ty, n_in as u64, n_out as u64, limit)
                    .unwrap();
            assert_eq!(m.parts().len(), if limit < 1 << 20 { 5 } else { 1 });
            // Chunks of 1..=23 bytes in a shuffled order: unaligned starts and ends everywhere.
            let mut chunks = Vec::new();
            let mut at = 0;
            while at < bytes.len() {
                let len = (1 + rng.below(23)).min(bytes.len() - at);
                chunks.push((at, len));
                at += len;
            }
            for i in (1..chunks.len()).rev() {
                chunks.swap(i, rng.below(i + 1));
            }
            for &(at, len) in &chunks {
                m.write(&ctx, at as u64, &bytes[at..at + len]).unwrap();
            }
            m.finish(&ctx).unwrap();
            assert_eq!(read_back(&ctx, &m), bytes, "{ty} limit {limit}");
        }
    }
}

#[test]
fn quant_matrix_errors() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    // A row length that is not whole blocks.
    assert!(matches!(
        QuantMatrix::new(&ctx, "w", GgmlType::Q4K, 300, 2),
        Err(KernelError::InvalidArgument(_))
    ));
    // A part limit below one row.
    assert!(matches!(
        QuantMatrix::with_part_limit(&ctx, "w", GgmlType::Q8_0, 64, 2, 50),
        Err(KernelError::BufferTooLarge { .. })
    ));
    let mut m = QuantMatrix::new(&ctx, "w", GgmlType::Q8_0, 64, 2).unwrap();
    // Past the end.
    assert!(m.write(&ctx, 130, &[0; 10]).is_err());
    // Incomplete upload.
    m.write(&ctx, 0, &[1; 65]).unwrap();
    assert!(m.finish(&ctx).is_err());
}
