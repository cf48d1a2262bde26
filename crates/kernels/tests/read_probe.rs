//! The read probe (`shaders/read_probe.wgsl`, the benchmarks' streaming read) folds exactly
//! the words it is meant to, for each way of reading, with partial last rounds.

mod common;

use ahma_kernels::read_probe::{ReadKind, ReadOrder, ReadProbe, TEXELS_PER_ROW, WG};
use common::Rng;

/// What each of `stride` invocations xors of `data` (units of four words): units g, g +
/// stride, ... (interleaved) or the run of ⌈units / stride⌉ from g times that (chunks).
fn folded(data: &[u32], stride: usize, order: ReadOrder) -> Vec<u32> {
    let units = data.len() / 4;
    let per = units.div_ceil(stride);
    let mut want = vec![0u32; stride];
    for (k, unit) in data.chunks(4).enumerate() {
        let g = match order {
            ReadOrder::Interleaved => k % stride,
            ReadOrder::Chunks => k / per,
        };
        for w in unit {
            want[g] ^= w;
        }
    }
    want
}

#[test]
fn read_probe_folds_every_unit_once() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    let mut rng = Rng::new(77);
    // Three texture rows: 12288 units of 16 bytes, no multiple of the 320 invocations, so the
    // last round is partial (interleaved), and so are the runs of 39 units at the end
    // (chunks: invocation 315 has 3, 316 to 319 none).
    let n = 3 * 4 * TEXELS_PER_ROW as usize;
    let data: Vec<u32> = (0..n).map(|_| rng.next_u64() as u32).collect();
    let workgroups = 5;
    let stride = (workgroups * WG) as usize;
    for kind in ReadKind::ALL {
        for order in ReadOrder::ALL {
            let source = ReadProbe::source(&ctx, kind, &data).unwrap();
            let bytes = n as u64 * 4;
            let probe = ReadProbe::new(&ctx, kind, order, source, bytes, workgroups);
            let probe = pollster::block_on(probe).unwrap();
            ctx.run_pass("read probe", |pass| probe.encode(pass))
                .unwrap();
            let got = pollster::block_on(probe.read_out(&ctx)).unwrap();
            let want = folded(&data, stride, order);
            assert_eq!(got, want, "{} {}", kind.name(), order.name());
        }
    }
}

#[test]
fn read_probe_refuses_bad_shapes() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    // Not whole texture rows.
    assert!(ReadProbe::source(&ctx, ReadKind::Texels, &[0u32; 64]).is_err());
    // Not a multiple of 16 bytes.
    assert!(ReadProbe::source(&ctx, ReadKind::Words, &[0u32; 6]).is_err());
    // A texture bound where a buffer is read.
    let data = vec![1u32; 4 * TEXELS_PER_ROW as usize];
    let tex = ReadProbe::source(&ctx, ReadKind::Texels, &data).unwrap();
    assert!(pollster::block_on(ReadProbe::new(
        &ctx,
        ReadKind::Words,
        ReadOrder::Chunks,
        tex,
        16 * 4096,
        1
    ))
    .is_err());
    // More invocations than units.
    let buf = ReadProbe::source(&ctx, ReadKind::Vec4, &[0u32; 64]).unwrap();
    assert!(pollster::block_on(ReadProbe::new(
        &ctx,
        ReadKind::Vec4,
        ReadOrder::Interleaved,
        buf,
        256,
        1
    ))
    .is_err());
}
