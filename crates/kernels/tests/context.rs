//! GPU smoke tests for the kernels core: adapter, caps, pipeline cache, compile errors.

mod common;

use ahma_kernels::{KernelError, KernelKey};

#[test]
fn context_finds_adapter_and_reports_caps() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    let caps = ctx.caps();
    eprintln!("adapter: {}", ctx.adapter());
    eprintln!("caps: {caps:?}");
    assert!(caps.max_storage_buffer_binding_size >= 128 << 20);
    assert!(caps.max_compute_invocations_per_workgroup >= 256);
    assert_eq!(ctx.use_f16(), caps.shader_f16);
    let forced = common::context(true, true);
    assert!(!forced.use_f16());
    assert!(!forced.use_subgroups());
    ctx.check().unwrap();
}

/// Cooperative-matrix shapes are named `MxNxK a->c`; the adapter's list (empty on the CPU
/// adapters, which have no VK_KHR_cooperative_matrix) uses the same names.
#[test]
fn cooperative_matrix_shapes_are_named() {
    use ahma_kernels::cooperative_matrix_name;
    use wgpu::{CooperativeMatrixProperties as P, CooperativeScalarType as T};
    let tensor = P {
        m_size: 16,
        n_size: 16,
        k_size: 16,
        ab_type: T::F16,
        cr_type: T::F32,
        saturating_accumulation: false,
    };
    assert_eq!(cooperative_matrix_name(&tensor), "16x16x16 f16->f32");
    let ints = P {
        m_size: 8,
        n_size: 8,
        k_size: 16,
        ab_type: T::I32,
        cr_type: T::U32,
        saturating_accumulation: true,
    };
    assert_eq!(cooperative_matrix_name(&ints), "8x8x16 i32->u32 saturating");
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    for name in &ctx.caps().cooperative_matrices {
        let (dims, types) = name.split_once(' ').unwrap();
        let dims: Vec<u32> = dims.split('x').map(|d| d.parse().unwrap()).collect();
        assert!(
            dims.len() == 3 && dims.iter().all(|d| [8, 16].contains(d)),
            "{name}"
        );
        assert!(types.contains("->"), "{name}");
    }
}

#[test]
fn oversized_buffer_is_a_typed_error() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    let too_big = ctx.caps().max_storage_buffer_binding_size + 4;
    match ctx.storage_buffer("huge", too_big) {
        Err(KernelError::BufferTooLarge { requested, .. }) => assert_eq!(requested, too_big),
        other => panic!("expected BufferTooLarge, got {other:?}"),
    }
}

#[test]
fn buffer_roundtrip_and_odd_sizes() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    let data: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
    let buf = ctx.storage_buffer_init("data", &data).unwrap();
    let back = pollster::block_on(ctx.read_f32(&buf, 3, 30)).unwrap();
    assert_eq!(back, data[3..33]);
    let bytes = pollster::block_on(ctx.read_bytes(&buf, 4, 7)).unwrap();
    assert_eq!(bytes, bytemuck::cast_slice::<f32, u8>(&data)[4..11]);
}

#[test]
fn shader_compile_error_is_captured() {
    let _gpu = common::serial();
    let ctx = common::context(false, false);
    // `common.wgsl` has no entry point `main`, so pipeline creation fails validation.
    let key = KernelKey::new("common", "main").define("WG", 64);
    match pollster::block_on(ctx.pipeline(&key)) {
        Err(KernelError::ShaderCompile { label, message }) => {
            assert_eq!(label, "common_wg64");
            assert!(!message.is_empty());
        }
        other => panic!("expected ShaderCompile, got {:?}", other.map(|_| ())),
    }
    ctx.check().unwrap();
    // An unknown shader stem is a preprocessing error, not a panic.
    let key = KernelKey::new("no_such_shader", "main");
    assert!(matches!(
        pollster::block_on(ctx.pipeline(&key)),
        Err(KernelError::Preprocess(_))
    ));
}

#[test]
fn shader_check_lists_parse() {
    use ahma_kernels::ShaderChecks;
    assert_eq!(ShaderChecks::without("none").unwrap(), ShaderChecks::all());
    let c = ShaderChecks::without("loops, divisions").unwrap();
    assert!(c.bounds && !c.loop_bounding && !c.int_division);
    assert_eq!(c.left_out(), "loops,divisions");
    let all = ShaderChecks::without("all").unwrap();
    assert_eq!(all.left_out(), "bounds,loops,divisions");
    assert!(ShaderChecks::without("bounds,speed").is_err());
}

/// GPUs compile without loop bounding by default; the kernels compute the same with every
/// check, without loop bounding, and without any check (here on whatever adapter runs the
/// tests, which chooses every check for itself when it is a CPU).
#[test]
fn kernels_compute_the_same_without_runtime_checks() {
    use ahma_gguf::GgmlType;
    use ahma_kernels::{matmul::matmul_once, matvec::matvec_once, QuantMatrix, ShaderChecks};
    let _gpu = common::serial();
    let probe = common::context(false, false);
    let auto = probe.shader_checks();
    if probe.adapter().device_type == wgpu::DeviceType::Cpu {
        assert_eq!(auto, ShaderChecks::all(), "CPU adapters keep every check");
    } else {
        assert!(
            !auto.loop_bounding && auto.bounds && auto.int_division,
            "{auto:?}"
        );
    }
    drop(probe);
    let (n_in, n_out, n_tok) = (320usize, 45usize, 9usize);
    let mut outputs = Vec::new();
    for list in ["none", "loops", "all"] {
        let ctx = pollster::block_on(ahma_kernels::GpuContext::new(
            ahma_kernels::ContextOptions {
                shader_checks: Some(ShaderChecks::without(list).unwrap()),
                ..Default::default()
            },
        ))
        .unwrap();
        let mut results = Vec::new();
        for ty in [GgmlType::Q5_0, GgmlType::Q4K, GgmlType::Q6K] {
            let n_in = if ty.block_elems() == 256 { 512 } else { n_in };
            let mut r = common::Rng::new(ty as u64);
            let bytes = common::random_tensor(ty, n_in, n_out, &mut r);
            let m =
                QuantMatrix::from_bytes(&ctx, "w", ty, n_in as u64, n_out as u64, &bytes).unwrap();
            let x: Vec<f32> = (0..n_in * n_tok).map(|_| r.signed()).collect();
            results.push(pollster::block_on(matvec_once(&ctx, &m, &x[..n_in], None)).unwrap());
            results.push(pollster::block_on(matmul_once(&ctx, &m, &x, None)).unwrap());
        }
        outputs.push((list, results));
    }
    let (_, want) = &outputs[0];
    for (list, got) in &outputs[1..] {
        for (g, w) in got.iter().zip(want) {
            let (e, _) = common::nmse(g, &w.iter().map(|&v| v as f64).collect::<Vec<_>>());
            assert!(e < 1e-12, "without {list}: nmse {e:e} against every check");
        }
    }
}
