//! [`GpuContext`]: the wgpu device and queue, what they can do ([`Caps`]), the options that pick
//! kernel variants, error capture and small buffer helpers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::KernelError;
use crate::key::KernelKey;

/// Choices made once per context.
#[derive(Clone, Debug)]
pub struct ContextOptions {
    /// Use the f32 variants even when the device has `shader-f16` (for debugging and for
    /// comparing the two paths).
    pub force_f32: bool,
    /// Use the workgroup-memory reductions even when the device has subgroups.
    pub disable_subgroups: bool,
    /// Which adapter `GpuContext::new` asks for.
    pub power_preference: wgpu::PowerPreference,
    /// Backends `GpuContext::new` searches; `None` = wgpu's default (all, or `WGPU_BACKEND`).
    pub backends: Option<wgpu::Backends>,
    /// Which of wgpu's runtime checks native shaders are compiled with (the browser applies
    /// its own); `None` = [`GpuContext::shader_checks`]'s automatic choice.
    pub shader_checks: Option<ShaderChecks>,
}

/// wgpu's shader runtime checks (`wgpu::ShaderRuntimeChecks`), each of which can be left out
/// natively to measure what it costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShaderChecks {
    /// Index clamps on every array and buffer access. Without them, buffer accesses rely on
    /// the driver's robust buffer access, and arrays in workgroup or function memory on the
    /// kernels' own index arithmetic.
    pub bounds: bool,
    /// A counter in every loop that breaks out after 2^64 iterations (so that no loop is
    /// provably infinite). Every loop of our kernels ends by construction, and the counter
    /// keeps GPU compilers from unrolling them: on an H100 it made the prefill mat-mul ≈ 1.4×
    /// and decode ≈ 5% slower (BENCHMARKS.md), so GPUs go without it.
    pub loop_bounding: bool,
    /// Guards on integer division and remainder against a zero divisor.
    pub int_division: bool,
}

impl Default for ShaderChecks {
    fn default() -> Self {
        ShaderChecks {
            bounds: true,
            loop_bounding: true,
            int_division: true,
        }
    }
}

impl ShaderChecks {
    /// Every check on.
    pub fn all() -> Self {
        Self::default()
    }

    /// Parses a comma list of checks to leave out: `bounds`, `loops`, `divisions`, `all` or
    /// `none` (nothing left out).
    pub fn without(list: &str) -> Result<Self, KernelError> {
        let mut c = Self::all();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "bounds" => c.bounds = false,
                "loops" => c.loop_bounding = false,
                "divisions" => c.int_division = false,
                "all" => {
                    c = ShaderChecks {
                        bounds: false,
                        loop_bounding: false,
                        int_division: false,
                    }
                }
                "none" => {}
                other => {
                    return Err(KernelError::InvalidArgument(format!(
                        "unknown shader check {other:?} (bounds, loops, divisions, all, none)"
                    )))
                }
            }
        }
        Ok(c)
    }

    /// Short name of the checks left out, for reports ("" when all are on).
    pub fn left_out(&self) -> String {
        let mut v = Vec::new();
        if !self.bounds {
            v.push("bounds");
        }
        if !self.loop_bounding {
            v.push("loops");
        }
        if !self.int_division {
            v.push("divisions");
        }
        v.join(",")
    }
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            force_f32: false,
            disable_subgroups: false,
            power_preference: wgpu::PowerPreference::HighPerformance,
            backends: None,
            shader_checks: None,
        }
    }
}

/// What the device was granted: the features and limits kernels and loaders must respect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    /// `shader-f16` is enabled on the device.
    pub shader_f16: bool,
    /// Subgroup operations are enabled on the device (native only in wgpu 30).
    pub subgroups: bool,
    /// Timestamp queries may be written between dispatches of a compute pass (native adapters
    /// that have them; used only by the profiler of `ahma bench --profile`).
    pub timestamps: bool,
    /// Smallest and largest subgroup size the adapter may use (0 when unknown).
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    /// Largest storage-buffer binding; weight matrices above it are split by rows.
    pub max_storage_buffer_binding_size: u64,
    /// Largest single buffer.
    pub max_buffer_size: u64,
    pub max_uniform_buffer_binding_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size_x: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_storage_buffers_per_shader_stage: u32,
    pub min_storage_buffer_offset_alignment: u32,
    pub min_uniform_buffer_offset_alignment: u32,
    /// The cooperative-matrix (tensor core, simdgroup matrix) shapes the adapter offers through
    /// wgpu, as `cooperative_matrix_name` writes them; empty where it offers none (every browser,
    /// and the CPU adapters). Reported by `ahma bench`, not used by any kernel yet.
    pub cooperative_matrices: Vec<String>,
}

/// One cooperative-matrix shape as `MxNxK a->c`, e.g. `16x16x16 f16->f32`: an M×K times K×N
/// product of `a` elements accumulated into an M×N matrix of `c` elements (` saturating` appended
/// where the accumulation clamps).
pub fn cooperative_matrix_name(p: &wgpu::CooperativeMatrixProperties) -> String {
    fn scalar(t: wgpu::CooperativeScalarType) -> &'static str {
        match t {
            wgpu::CooperativeScalarType::F32 => "f32",
            wgpu::CooperativeScalarType::F16 => "f16",
            wgpu::CooperativeScalarType::I32 => "i32",
            wgpu::CooperativeScalarType::U32 => "u32",
        }
    }
    format!(
        "{}x{}x{} {}->{}{}",
        p.m_size,
        p.n_size,
        p.k_size,
        scalar(p.ab_type),
        scalar(p.cr_type),
        if p.saturating_accumulation {
            " saturating"
        } else {
            ""
        }
    )
}

impl Caps {
    fn from_device(
        device: &wgpu::Device,
        info: &wgpu::AdapterInfo,
        cooperative: &[wgpu::CooperativeMatrixProperties],
    ) -> Caps {
        let f = device.features();
        let l = device.limits();
        Caps {
            shader_f16: f.contains(wgpu::Features::SHADER_F16),
            subgroups: f.contains(wgpu::Features::SUBGROUP),
            timestamps: f.contains(
                wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
            ),
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            max_uniform_buffer_binding_size: l.max_uniform_buffer_binding_size,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
            min_uniform_buffer_offset_alignment: l.min_uniform_buffer_offset_alignment,
            cooperative_matrices: cooperative.iter().map(cooperative_matrix_name).collect(),
        }
    }
}

/// A printable description of the adapter, for logs and bug reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: wgpu::Backend,
    pub device_type: wgpu::DeviceType,
    pub driver: String,
    pub driver_info: String,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({:?}, {:?}, driver {} {})",
            self.name, self.backend, self.device_type, self.driver, self.driver_info
        )
    }
}

/// Errors reported by wgpu callbacks, kept until the app asks for them.
#[derive(Default)]
struct ErrorSink {
    lost: Option<(String, String)>,
    uncaptured: Option<KernelError>,
}

/// The device, queue and everything derived from them. Cheap to share behind an `Arc`; all
/// methods take `&self`.
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    summary: AdapterSummary,
    caps: Caps,
    options: ContextOptions,
    sink: Arc<Mutex<ErrorSink>>,
    pub(crate) pipelines: Mutex<HashMap<KernelKey, Arc<wgpu::ComputePipeline>>>,
}

impl GpuContext {
    /// Finds an adapter and requests a device with the adapter's maximum limits and, when the
    /// adapter has them, `shader-f16` and subgroups.
    pub async fn new(options: ContextOptions) -> Result<GpuContext, KernelError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if let Some(b) = options.backends {
            desc.backends = b;
        }
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: options.power_preference,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| KernelError::AdapterNotFound(e.to_string()))?;
        let mut features =
            adapter.features() & (wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP);
        // Timestamps between dispatches (the profiler) only where both features exist.
        let stamps =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        if adapter.features().contains(stamps) {
            features |= stamps;
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("ahma"),
                required_features: features,
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| KernelError::DeviceRequest(e.to_string()))?;
        Ok(GpuContext::from_parts(&adapter, device, queue, options))
    }

    /// Wraps a device made elsewhere (a test, the browser app). Features and limits are read from
    /// the device, so a device without `shader-f16` simply gets the f32 kernels.
    pub fn from_parts(
        adapter: &wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
        options: ContextOptions,
    ) -> GpuContext {
        let info = adapter.get_info();
        let caps = Caps::from_device(&device, &info, &adapter.cooperative_matrix_properties());
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: info.backend,
            device_type: info.device_type,
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
        };
        let sink = Arc::new(Mutex::new(ErrorSink::default()));
        let lost_sink = sink.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut s) = lost_sink.lock() {
                s.lost = Some((format!("{reason:?}"), message));
            }
        });
        let err_sink = sink.clone();
        device.on_uncaptured_error(Arc::new(move |err: wgpu::Error| {
            if let Ok(mut s) = err_sink.lock() {
                if s.uncaptured.is_none() {
                    s.uncaptured = Some(KernelError::from_wgpu(err));
                }
            }
        }));
        GpuContext {
            device,
            queue,
            summary,
            caps,
            options,
            sink,
            pipelines: Mutex::new(HashMap::new()),
        }
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.summary
    }

    /// The runtime checks shaders are compiled with: the options' choice, else every check
    /// but loop bounding on GPUs, and every check on CPU adapters (where LLVM-based drivers
    /// ran our loops many times slower without the bound) and in the browser.
    pub fn shader_checks(&self) -> ShaderChecks {
        if let Some(c) = self.options().shader_checks {
            return c;
        }
        if self.is_browser() || self.adapter().device_type == wgpu::DeviceType::Cpu {
            ShaderChecks::all()
        } else {
            ShaderChecks {
                loop_bounding: false,
                ..ShaderChecks::all()
            }
        }
    }

    pub fn options(&self) -> &ContextOptions {
        &self.options
    }

    /// Whether kernels should use their f16-arithmetic variants.
    pub fn use_f16(&self) -> bool {
        self.caps.shader_f16 && !self.options.force_f32
    }

    /// Whether kernels should reduce with subgroup operations.
    pub fn use_subgroups(&self) -> bool {
        self.caps.subgroups && !self.options.disable_subgroups
    }

    /// Whether WGSL goes to a browser's compiler (which needs `enable subgroups;`) rather than
    /// through naga.
    pub fn is_browser(&self) -> bool {
        self.summary.backend == wgpu::Backend::BrowserWebGpu
    }

    /// Why the device was lost, once it is (`None` while it works). Unlike [`GpuContext::check`]
    /// it leaves any other reported error in place, so a watchdog can poll it.
    pub fn lost(&self) -> Option<String> {
        let s = self.sink.lock().ok()?;
        s.lost
            .as_ref()
            .map(|(reason, message)| format!("{reason}: {message}"))
    }

    /// Returns `DeviceLost` once the device is gone, else the first error wgpu reported outside an
    /// error scope (and forgets it), else `Ok`. Call it after each submit that matters.
    pub fn check(&self) -> Result<(), KernelError> {
        let mut s = self
            .sink
            .lock()
            .map_err(|_| KernelError::Gpu("error sink poisoned".into()))?;
        if let Some((reason, message)) = &s.lost {
            return Err(KernelError::DeviceLost {
                reason: reason.clone(),
                message: message.clone(),
            });
        }
        match s.uncaptured.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Creates a buffer after checking it against `max_buffer_size` (and, for storage buffers,
    /// `max_storage_buffer_binding_size`), so an oversized request is a typed error instead of a
    /// device error. `size` is rounded up to 4 bytes.
    pub fn create_buffer(
        &self,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer, KernelError> {
        let size = size.max(4).div_ceil(4) * 4;
        let mut limit = self.caps.max_buffer_size;
        if usage.contains(wgpu::BufferUsages::STORAGE) {
            limit = limit.min(self.caps.max_storage_buffer_binding_size);
        }
        if size > limit {
            return Err(KernelError::BufferTooLarge {
                label: label.to_string(),
                requested: size,
                limit,
            });
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        }))
    }

    /// A storage buffer (also copy source and destination) of `size` bytes, zero-initialised.
    pub fn storage_buffer(&self, label: &str, size: u64) -> Result<wgpu::Buffer, KernelError> {
        self.create_buffer(
            label,
            size,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// A storage buffer holding `data`.
    pub fn storage_buffer_init<T: bytemuck::Pod>(
        &self,
        label: &str,
        data: &[T],
    ) -> Result<wgpu::Buffer, KernelError> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buf = self.storage_buffer(label, bytes.len() as u64)?;
        write_padded(&self.queue, &buf, 0, bytes);
        Ok(buf)
    }

    /// A uniform buffer holding one params struct.
    pub fn uniform_buffer<T: bytemuck::Pod>(
        &self,
        label: &str,
        value: &T,
    ) -> Result<wgpu::Buffer, KernelError> {
        let bytes = bytemuck::bytes_of(value);
        let buf = self.create_buffer(
            label,
            bytes.len() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        )?;
        write_padded(&self.queue, &buf, 0, bytes);
        Ok(buf)
    }

    /// Copies `size` bytes from `buffer` (at `offset`) to the CPU. Submits its own copy, waits for
    /// it, and checks for device loss. Meant for tests, logits and small results.
    pub async fn read_bytes(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, KernelError> {
        let padded = size.div_ceil(4) * 4;
        let staging = self.create_buffer(
            "readback",
            padded,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        enc.copy_buffer_to_buffer(buffer, offset, &staging, 0, padded);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = oneshot();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |r| tx.send(r));
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| KernelError::Gpu(e.to_string()))?;
        let mapped = rx.await;
        self.check()?;
        mapped.map_err(|e| KernelError::BufferMap(e.to_string()))?;
        let data = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| KernelError::BufferMap(e.to_string()))?[..size as usize]
            .to_vec();
        staging.unmap();
        Ok(data)
    }

    /// Reads `len` f32 values starting at element `offset` of `buffer`.
    pub async fn read_f32(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        len: usize,
    ) -> Result<Vec<f32>, KernelError> {
        let bytes = self.read_bytes(buffer, offset * 4, len as u64 * 4).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads `len` u32 values starting at element `offset` of `buffer`.
    pub async fn read_u32(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u32>, KernelError> {
        let bytes = self.read_bytes(buffer, offset * 4, len as u64 * 4).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Records `f` into one compute pass, submits it, and returns once the GPU is done (native) or
    /// once submitted (web). A convenience for tests and one-off runs; the engine records many
    /// ops into one pass itself.
    pub fn run_pass(
        &self,
        label: &str,
        f: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) -> Result<(), KernelError> {
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: None,
            });
            f(&mut pass);
        }
        self.queue.submit([enc.finish()]);
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| KernelError::Gpu(e.to_string()))?;
        self.check()
    }
}

/// `queue.write_buffer` needs a multiple of 4 bytes; pads the tail with zeros when needed.
pub(crate) fn write_padded(queue: &wgpu::Queue, buffer: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
    let whole = bytes.len() / 4 * 4;
    if whole > 0 {
        queue.write_buffer(buffer, offset, &bytes[..whole]);
    }
    if whole < bytes.len() {
        let mut tail = [0u8; 4];
        tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
        queue.write_buffer(buffer, offset + whole as u64, &tail);
    }
}

/// A minimal one-shot channel whose receiver is a future, so readback works the same natively
/// (after `poll`) and in the browser (where the callback fires from the event loop).
fn oneshot<T>() -> (OneshotTx<T>, OneshotRx<T>) {
    let shared = Arc::new(Mutex::new((None, None)));
    (OneshotTx(shared.clone()), OneshotRx(shared))
}

type OneshotState<T> = Arc<Mutex<(Option<T>, Option<std::task::Waker>)>>;

struct OneshotTx<T>(OneshotState<T>);
struct OneshotRx<T>(OneshotState<T>);

impl<T> OneshotTx<T> {
    fn send(self, value: T) {
        if let Ok(mut s) = self.0.lock() {
            s.0 = Some(value);
            if let Some(w) = s.1.take() {
                w.wake();
            }
        }
    }
}

impl<T> std::future::Future for OneshotRx<T> {
    type Output = T;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<T> {
        let mut s = match self.0.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match s.0.take() {
            Some(v) => std::task::Poll::Ready(v),
            None => {
                s.1 = Some(cx.waker().clone());
                std::task::Poll::Pending
            }
        }
    }
}
