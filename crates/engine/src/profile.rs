//! GPU time per operation of a forward pass, from timestamps written between its dispatches
//! (`ahma bench --profile`). Needs an adapter with timestamp queries inside passes
//! ([`ahma_kernels::Caps::timestamps`]); profiled steps are submitted one at a time.

use ahma_kernels::GpuContext;

use crate::readback::read_buffer;
use crate::EngineError;

/// Most timestamps one forward pass may write (one per operation, plus the start).
const CAPACITY: u32 = 2048;

/// Accumulated GPU time of one operation kind (for example `"qkv"` or `"attention"`).
#[derive(Clone, Debug, PartialEq)]
pub struct OpTime {
    pub op: &'static str,
    /// Nanoseconds over every profiled pass.
    pub total_ns: f64,
    /// How many times the operation ran (layers × passes).
    pub count: u64,
}

/// Writes a timestamp after each operation of a profiled pass and adds the differences up.
pub struct Profiler {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    read: wgpu::Buffer,
    period_ns: f64,
    labels: Vec<&'static str>,
    ops: Vec<OpTime>,
    passes: u64,
    total_ns: f64,
}

impl Profiler {
    /// A profiler for `ctx`, or [`EngineError::InvalidArgument`] where the device has no
    /// timestamps inside passes.
    pub fn new(ctx: &GpuContext) -> Result<Profiler, EngineError> {
        if !ctx.caps().timestamps {
            return Err(EngineError::InvalidArgument(format!(
                "{} has no timestamp queries inside compute passes: cannot profile",
                ctx.adapter().name
            )));
        }
        let device = ctx.device();
        let bytes = u64::from(CAPACITY) * 8;
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: CAPACITY,
        });
        let resolve = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Profiler {
            set,
            resolve,
            read,
            period_ns: f64::from(ctx.queue().get_timestamp_period()),
            labels: Vec::new(),
            ops: Vec::new(),
            passes: 0,
            total_ns: 0.0,
        })
    }

    /// Writes the timestamp that ends operation `op` (the first mark of a pass, `"start"`,
    /// only opens it). Marks past the capacity are dropped.
    pub(crate) fn mark(&mut self, pass: &mut wgpu::ComputePass<'_>, op: &'static str) {
        let i = self.labels.len() as u32;
        if i < CAPACITY {
            pass.write_timestamp(&self.set, i);
            self.labels.push(op);
        }
    }

    /// Copies the pass's timestamps where [`Profiler::collect`] reads them.
    pub(crate) fn resolve(&self, enc: &mut wgpu::CommandEncoder) {
        let n = self.labels.len() as u32;
        if n > 0 {
            enc.resolve_query_set(&self.set, 0..n, &self.resolve, 0);
            enc.copy_buffer_to_buffer(&self.resolve, 0, &self.read, 0, u64::from(n) * 8);
        }
    }

    /// Reads the timestamps of the submitted pass back and adds each operation's time.
    pub(crate) async fn collect(&mut self, ctx: &GpuContext) -> Result<(), EngineError> {
        let labels = std::mem::take(&mut self.labels);
        if labels.len() < 2 {
            return Ok(());
        }
        let bytes = read_buffer(ctx, &self.read).await?;
        let ticks: Vec<u64> = bytes
            .chunks_exact(8)
            .take(labels.len())
            .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect();
        if ticks.len() < labels.len() {
            return Err(EngineError::DeviceLost(
                "profile timestamps came back short".into(),
            ));
        }
        for (i, &op) in labels.iter().enumerate().skip(1) {
            // A timestamp may wrap or (on some drivers) read lower than the one before.
            let ns = ticks[i].saturating_sub(ticks[i - 1]) as f64 * self.period_ns;
            self.total_ns += ns;
            match self.ops.iter_mut().find(|o| o.op == op) {
                Some(o) => {
                    o.total_ns += ns;
                    o.count += 1;
                }
                None => self.ops.push(OpTime {
                    op,
                    total_ns: ns,
                    count: 1,
                }),
            }
        }
        self.passes += 1;
        Ok(())
    }

    /// Every operation kind seen, in the order of the first pass.
    pub fn ops(&self) -> &[OpTime] {
        &self.ops
    }

    /// Profiled passes so far.
    pub fn passes(&self) -> u64 {
        self.passes
    }

    /// GPU nanoseconds from the first to the last timestamp, summed over the passes.
    pub fn total_ns(&self) -> f64 {
        self.total_ns
    }

    /// Forgets what was measured (the buffers stay).
    pub fn clear(&mut self) {
        self.ops.clear();
        self.passes = 0;
        self.total_ns = 0.0;
    }
}
