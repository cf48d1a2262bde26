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
