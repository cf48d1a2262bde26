//! A streaming read of a whole buffer or texture (`shaders/read_probe.wgsl`): what a compute
//! shader can read per second on an adapter, the ceiling of the weight kernels, which read every
//! weight byte once per decoded token. For benchmarks (`kernel_bench` with `KB_OPS=reads`) and
//! their test; the engine never runs it.

use crate::context::GpuContext;
use crate::error::KernelError;
use crate::key::KernelKey;
use crate::registry::ParamsLayout;

/// Uniform of the dispatch. Mirrors `ReadParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReadParams {
    pub units: u32,
    pub stride: u32,
    pub texels_per_row: u32,
    pub per: u32,
}

/// Threads per workgroup.
pub const WG: u32 = 64;

/// Texels per row of the textures [`ReadProbe::texture`] makes (any adapter allows 8192).
pub const TEXELS_PER_ROW: u32 = 4096;

/// How the shader reads its source, 16 bytes at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadKind {
    /// Four u32 loads of a storage buffer, as the weight kernels load their words.
    Words,
    /// One `vec4<u32>` load of a storage buffer.
    Vec4,
    /// One rgba32uint `textureLoad`.
    Texels,
}

impl ReadKind {
    pub const ALL: [ReadKind; 3] = [ReadKind::Words, ReadKind::Vec4, ReadKind::Texels];

    pub fn name(self) -> &'static str {
        match self {
            ReadKind::Words => "u32 words",
            ReadKind::Vec4 => "vec4 words",
            ReadKind::Texels => "rgba32uint texels",
        }
    }

    /// A short name for JSON keys: `u32`, `vec4`, `texels`.
    pub fn key(self) -> &'static str {
        match self {
            ReadKind::Words => "u32",
            ReadKind::Vec4 => "vec4",
            ReadKind::Texels => "texels",
        }
    }

    fn define(self) -> &'static str {
        match self {
            ReadKind::Words => "WORDS",
            ReadKind::Vec4 => "VEC4",
            ReadKind::Texels => "TEXELS",
        }
    }
}

/// Which invocation reads which units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOrder {
    /// Invocation g reads units g, g + n, g + 2n, ... of n invocations: neighbouring
    /// invocations read neighbouring units, as GPUs coalesce them.
    Interleaved,
    /// Invocation g reads a run of ⌈units / n⌉ units from g ⌈units / n⌉: each SIMD lane of a
    /// CPU adapter streams its own run.
    Chunks,
}

impl ReadOrder {
    pub const ALL: [ReadOrder; 2] = [ReadOrder::Interleaved, ReadOrder::Chunks];

    pub fn name(self) -> &'static str {
        match self {
            ReadOrder::Interleaved => "interleaved",
            ReadOrder::Chunks => "chunks",
        }
    }
}

/// The key of one variant.
pub fn key(kind: ReadKind, order: ReadOrder) -> KernelKey {
    KernelKey::new("read_probe", "main")
        .define(kind.define(), 1)
        .flag("CHUNKS", order == ReadOrder::Chunks)
        .define("WG", WG)
}

/// Every variant the op can request.
pub fn variants() -> Vec<KernelKey> {
    ReadKind::ALL
        .into_iter()
        .flat_map(|k| ReadOrder::ALL.into_iter().map(move |o| key(k, o)))
        .collect()
}

pub fn params_layouts() -> Vec<ParamsLayout> {
    vec![crate::params_layout!(ReadParams {
        units,
        stride,
        texels_per_row,
        per
    })]
}

/// How much a measurement reads, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSize {
    /// Bytes read per dispatch.
    pub bytes: u64,
    /// Workgroups of [`WG`] invocations reading them.
    pub workgroups: u32,
    /// Dispatches timed together.
    pub reps: u32,
}

/// The default measurement: 256 MiB by 8192 workgroups (enough invocations to fill an H100),
/// 20 times, on GPUs; 64 MiB by 64 workgroups, 3 times, on CPU adapters. Never more than one
/// storage binding or buffer of the device holds (in whole texture rows).
pub fn default_size(ctx: &GpuContext) -> ProbeSize {
    let mut size = if ctx.adapter().device_type == wgpu::DeviceType::Cpu {
        ProbeSize {
            bytes: 64 << 20,
            workgroups: 64,
            reps: 3,
        }
    } else {
        ProbeSize {
            bytes: 256 << 20,
            workgroups: 8192,
            reps: 20,
        }
    };
    let caps = ctx.caps();
    let row = 16 * TEXELS_PER_ROW as u64;
    let most = caps
        .max_storage_buffer_binding_size
        .min(caps.max_buffer_size);
    size.bytes = size.bytes.min(most / row * row).max(row);
    size
}

/// Words to read: `bytes` rounded up to whole texture rows, filled with a fixed pseudo-random
/// sequence.
pub fn sample_words(bytes: u64) -> Vec<u32> {
    let row_words = 4 * TEXELS_PER_ROW as usize;
    let words = (bytes as usize).div_ceil(4).next_multiple_of(row_words);
    let mut state = 0x9e37_79b9u32;
    (0..words)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            state
        })
        .collect()
}

/// What the probe reads: `data` as a storage buffer (Words, Vec4) or as a texture (Texels).
/// Clones share the GPU resource, so one upload serves both orders.
#[derive(Clone)]
pub enum ReadSource {
    Buffer(wgpu::Buffer),
    /// The texture's view and size.
    Texture(wgpu::TextureView, wgpu::Extent3d),
}

/// One built dispatch of the probe: reads `bytes` once, folding them into one word per
/// invocation of `out`.
pub struct ReadProbe {
    pipeline: std::sync::Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    groups: u32,
    params: ReadParams,
    out: wgpu::Buffer,
    _uniform: wgpu::Buffer,
    _source: ReadSource,
}

impl ReadProbe {
    /// The source for `kind` holding `data` (whose length must be a multiple of 16 bytes, and
    /// for textures of 16 × [`TEXELS_PER_ROW`] bytes).
    pub fn source(
        ctx: &GpuContext,
        kind: ReadKind,
        data: &[u32],
    ) -> Result<ReadSource, KernelError> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.is_empty() || !bytes.len().is_multiple_of(16) {
            return Err(KernelError::InvalidArgument(format!(
                "read probe: {} bytes, expected a positive multiple of 16",
                bytes.len()
            )));
        }
        match kind {
            ReadKind::Words | ReadKind::Vec4 => Ok(ReadSource::Buffer(
                ctx.storage_buffer_init("read probe source", data)?,
            )),
            ReadKind::Texels => {
                let row = 16 * TEXELS_PER_ROW as usize;
                let rows = bytes.len() / row;
                let max = ctx.device().limits().max_texture_dimension_2d as usize;
                if !bytes.len().is_multiple_of(row) || rows > max {
                    return Err(KernelError::InvalidArgument(format!(
                        "read probe: {} bytes do not make whole rows of {TEXELS_PER_ROW} texels \
                         (at most {max} rows)",
                        bytes.len()
                    )));
                }
                let size = wgpu::Extent3d {
                    width: TEXELS_PER_ROW,
                    height: rows as u32,
                    depth_or_array_layers: 1,
                };
                let tex = ctx.device().create_texture(&wgpu::TextureDescriptor {
                    label: Some("read probe texture"),
                    size,
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format: wgpu::TextureFormat::Rgba32Uint,
                    usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                    view_formats: &[],
                });
                ctx.queue().write_texture(
                    tex.as_image_copy(),
                    bytes,
                    wgpu::TexelCopyBufferLayout {
                        offset: 0,
                        bytes_per_row: Some(row as u32),
                        rows_per_image: Some(rows as u32),
                    },
                    size,
                );
                ctx.check()?;
                Ok(ReadSource::Texture(
                    tex.create_view(&Default::default()),
                    size,
                ))
            }
        }
    }

    /// Builds the dispatch: `workgroups` × [`WG`] invocations read `bytes` bytes of `source`
    /// (made by [`ReadProbe::source`] for the same `kind`) in `order`.
    pub async fn new(
        ctx: &GpuContext,
        kind: ReadKind,
        order: ReadOrder,
        source: ReadSource,
        bytes: u64,
        workgroups: u32,
    ) -> Result<ReadProbe, KernelError> {
        let units = bytes / 16;
        let stride = workgroups as u64 * WG as u64;
        if workgroups == 0 || !bytes.is_multiple_of(16) || units > u32::MAX as u64 || stride > units
        {
            return Err(KernelError::InvalidArgument(format!(
                "read probe: {bytes} bytes (16-byte units) for {stride} invocations"
            )));
        }
        let held = match &source {
            ReadSource::Buffer(b) => b.size(),
            ReadSource::Texture(_, size) => size.width as u64 * size.height as u64 * 16,
        };
        if bytes > held {
            return Err(KernelError::InvalidArgument(format!(
                "read probe: {bytes} bytes to read from a source of {held}"
            )));
        }
        let resource = match (&source, kind) {
            (ReadSource::Buffer(b), ReadKind::Words | ReadKind::Vec4) => b.as_entire_binding(),
            (ReadSource::Texture(v, _), ReadKind::Texels) => wgpu::BindingResource::TextureView(v),
            _ => {
                return Err(KernelError::InvalidArgument(format!(
                    "read probe: source of the wrong kind for {}",
                    kind.name()
                )))
            }
        };
        let k = key(kind, order);
        let pipeline = ctx.pipeline(&k).await?;
        let params = ReadParams {
            units: units as u32,
            stride: stride as u32,
            texels_per_row: TEXELS_PER_ROW,
            per: units.div_ceil(stride) as u32,
        };
        let uniform = ctx.uniform_buffer(&format!("{k} params"), &params)?;
        let out = ctx.storage_buffer("read probe out", stride * 4)?;
        let bind_group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&k.to_string()),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: out.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource,
                },
            ],
        });
        ctx.check()?;
        Ok(ReadProbe {
            pipeline,
            bind_group,
            groups: workgroups,
            params,
            out,
            _uniform: uniform,
            _source: source,
        })
    }

    /// Records the dispatch.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups, 1, 1);
    }

    /// Reads back the folded word of every invocation (after a run).
    pub async fn read_out(&self, ctx: &GpuContext) -> Result<Vec<u32>, KernelError> {
        ctx.read_u32(&self.out, 0, self.params.stride as usize)
            .await
    }
}

/// What [`measure`] found: GB/s for each way of reading and order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadRates(pub Vec<(ReadKind, ReadOrder, f64)>);

impl ReadRates {
    /// The best rate of all.
    pub fn best(&self) -> f64 {
        self.0.iter().map(|r| r.2).fold(0.0, f64::max)
    }

    /// `("u32_interleaved", GB/s)` and so on, as the benchmarks' JSON names them.
    pub fn named(&self) -> Vec<(String, f64)> {
        self.0
            .iter()
            .map(|(kind, order, gb_s)| (format!("{}_{}", kind.key(), order.name()), *gb_s))
            .collect()
    }
}

/// One measurement of every way of reading and order at `size` ([`default_size`] unless a
/// tool overrides it). Each is timed by `now` (seconds; any clock, so the browser can pass its
/// own) from before a pass of `size.reps` dispatches to the end of the readback of one word of
/// the result, which waits for the pass on every platform, after one untimed run.
pub async fn measure(
    ctx: &GpuContext,
    size: ProbeSize,
    now: &dyn Fn() -> f64,
) -> Result<ReadRates, KernelError> {
    let data = sample_words(size.bytes);
    let bytes = data.len() as u64 * 4;
    let mut out = Vec::new();
    for kind in ReadKind::ALL {
        let source = ReadProbe::source(ctx, kind, &data)?;
        for order in ReadOrder::ALL {
            let probe =
                ReadProbe::new(ctx, kind, order, source.clone(), bytes, size.workgroups).await?;
            ctx.run_pass("read probe", |pass| probe.encode(pass))?;
            ctx.read_u32(&probe.out, 0, 1).await?;
            let t = now();
            ctx.run_pass("read probe", |pass| {
                for _ in 0..size.reps {
                    probe.encode(pass);
                }
            })?;
            ctx.read_u32(&probe.out, 0, 1).await?;
            let s = (now() - t).max(1e-9);
            out.push((kind, order, bytes as f64 * size.reps as f64 / s / 1e9));
        }
    }
    Ok(ReadRates(out))
}
