//! Streaming model loader: GGUF bytes in, GPU buffers out.
//!
//! The loader is a push parser: the caller feeds the file in chunks of any
//! size as they arrive (from a file, an HTTP body, the browser's cache) with
//! [`ModelLoader::push`]. As soon as the header is complete it checks that the
//! model fits, creates every GPU buffer empty, and from then on routes each
//! piece of tensor data straight into its buffer with `queue.write_buffer`.
//! Nothing is dequantized or collected on the CPU except the small F32 norm
//! vectors (one row each).
//!
//! Peak CPU memory is bounded, independent of the model size, by
//!   header + the caller's chunk + `LoadOptions::upload_window` of staging
//! because after every `upload_window` bytes the loader waits until the GPU
//! queue has consumed the staged writes (natively `write_buffer` copies into
//! staging memory that lives until the next submit completes).

use ahma_gguf::{names, Gguf, LlamaConfig, StreamEvent, StreamParser};
use std::sync::Arc;

use ahma_kernels::GpuContext;

use crate::linear::Matrix;
use crate::model::{LayerWeights, Weights};
use crate::plan::{plan, DeviceBudget, MemoryPlan};
use crate::readback::wait_idle;
use crate::{EngineError, LoadOptions, Model};

/// Where one tensor's bytes go.
enum Dest {
    /// A weight matrix (raw blocks, split across buffers by the kernels crate).
    Matrix(Matrix),
    /// An F32 vector (norm weights), gathered and written on completion.
    Vector { buf: wgpu::Buffer, bytes: Vec<u8> },
    /// A tensor the model does not use.
    Skip,
}

struct Loading {
    gguf: Gguf,
    cfg: LlamaConfig,
    plan: MemoryPlan,
    dests: Vec<Dest>,
    done: Vec<bool>,
}

/// Progress of a load, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadProgress {
    /// Bytes consumed so far.
    pub bytes: u64,
    /// Total bytes of the file up to the end of the last tensor, once the
    /// header has been parsed.
    pub total: Option<u64>,
}

/// A model being loaded from a byte stream. See the module docs.
pub struct ModelLoader {
    ctx: Arc<GpuContext>,
    opts: LoadOptions,
    parser: StreamParser,
    st: Option<Loading>,
    since_wait: u64,
}

impl ModelLoader {
    pub fn new(ctx: Arc<GpuContext>, opts: LoadOptions) -> Result<Self, EngineError> {
        opts.validate()?;
        Ok(ModelLoader {
            ctx,
            opts,
            parser: StreamParser::new(),
            st: None,
            since_wait: 0,
        })
    }

    /// The device budget the fit check uses.
    pub fn budget(ctx: &GpuContext, opts: &LoadOptions) -> DeviceBudget {
        let caps = ctx.caps();
        DeviceBudget {
            max_buffer_size: caps.max_buffer_size,
            max_binding_size: caps.max_storage_buffer_binding_size,
            memory_budget: opts.memory_budget,
        }
    }

    pub fn progress(&self) -> LoadProgress {
        LoadProgress {
            bytes: self.parser.bytes_consumed(),
            total: self
                .st
                .as_ref()
                .map(|s| s.gguf.data_offset + s.gguf.data_size()),
        }
    }

    /// The model's configuration and memory plan, once the header is parsed.
    pub fn plan(&self) -> Option<(&LlamaConfig, &MemoryPlan)> {
        self.st.as_ref().map(|s| (&s.cfg, &s.plan))
    }

    /// The parsed GGUF header (metadata, vocabulary, tensor table), once complete.
    pub fn header(&self) -> Option<&Gguf> {
        self.st.as_ref().map(|s| &s.gguf)
    }

    /// Feeds the next bytes of the file. Fails early (at the header) with
    /// [`EngineError::DoesNotFit`] if the model cannot fit this adapter.
    pub async fn push(&mut self, chunk: &[u8]) -> Result<(), EngineError> {
        let ModelLoader {
            ctx,
            opts,
            parser,
            st,
            since_wait,
        } = self;
        parser.feed(
            chunk,
            &mut |ev: StreamEvent<'_>| -> Result<(), EngineError> {
                match ev {
                    StreamEvent::Header(g) => {
                        *st = Some(prepare(ctx, opts, g)?);
                    }
                    StreamEvent::TensorData {
                        index,
                        offset,
                        bytes,
                    } => {
                        let s = st.as_mut().ok_or_else(|| {
                            EngineError::Incomplete("tensor data before header".into())
                        })?;
                        match &mut s.dests[index] {
                            Dest::Matrix(m) => m.write(ctx, offset, bytes)?,
                            Dest::Vector { bytes: acc, .. } => acc.extend_from_slice(bytes),
                            Dest::Skip => {}
                        }
                        *since_wait += bytes.len() as u64;
                    }
                    StreamEvent::TensorComplete { index } => {
                        let s = st.as_mut().ok_or_else(|| {
                            EngineError::Incomplete("tensor data before header".into())
                        })?;
                        match &mut s.dests[index] {
                            Dest::Vector { buf, bytes } => {
                                ctx.queue().write_buffer(buf, 0, bytes);
                                *bytes = Vec::new();
                            }
                            Dest::Matrix(m) => m.finish(ctx)?,
                            Dest::Skip => {}
                        }
                        s.done[index] = true;
                    }
                    StreamEvent::Finished => {}
                }
                Ok(())
            },
        )?;
        if self.since_wait >= self.opts.upload_window {
            self.since_wait = 0;
            self.ctx.queue().submit([]);
            wait_idle(&self.ctx).await?;
        }
        Ok(())
    }

    /// Completes the load: every tensor must have arrived.
    pub async fn finish(self) -> Result<Model, EngineError> {
        self.parser.finish()?;
        let st = self.st.ok_or_else(|| {
            EngineError::Incomplete("the stream ended before the GGUF header".into())
        })?;
        if let Some(i) = st.done.iter().position(|d| !d) {
            return Err(EngineError::Incomplete(format!(
                "tensor {:?} did not arrive",
                st.gguf.tensors[i].name
            )));
        }
        self.ctx.queue().submit([]);
        wait_idle(&self.ctx).await?;
        let Loading {
            gguf,
            cfg,
            plan,
            dests,
            ..
        } = st;
        let weights = assemble(&gguf, &cfg, dests)?;
        Model::build(self.ctx, cfg, self.opts, plan, weights).await
    }
}

/// Validates the header, runs the fit check and allocates every destination.
fn prepare(ctx: &GpuContext, opts: &LoadOptions, g: &Gguf) -> Result<Loading, EngineError> {
    let cfg = LlamaConfig::from_gguf(g)?;
    if !cfg.head_dim.is_multiple_of(2)
        || cfg.head_dim > ahma_kernels::attention::MAX_HEAD_DIM as usize
    {
        return Err(EngineError::Unsupported(format!(
            "head_dim {} (must be even and at most 256)",
            cfg.head_dim
        )));
    }
    if !cfg.rope_dim.is_multiple_of(2) || cfg.rope_dim > cfg.head_dim {
        return Err(EngineError::Unsupported(format!(
            "rope dimension {} with head_dim {}",
            cfg.rope_dim, cfg.head_dim
        )));
    }
    if cfg.n_head_kv == 0 || !cfg.n_head.is_multiple_of(cfg.n_head_kv) {
        return Err(EngineError::Unsupported(format!(
            "{} heads over {} kv heads",
            cfg.n_head, cfg.n_head_kv
        )));
    }
    let budget = ModelLoader::budget(ctx, opts);
    let plan = plan(
        g,
        &cfg,
        opts.n_ctx,
        opts.max_batch,
        opts.penalty_window,
        ctx.use_f16(),
        &budget,
    )?;
    let mut dests = Vec::with_capacity(g.tensors.len());
    for t in &g.tensors {
        let d = if t.dims.len() == 1 && is_used(&cfg, &t.name) {
            let buf = ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(&t.name),
                size: t.n_bytes.next_multiple_of(4).max(4),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            Dest::Vector {
                buf,
                bytes: Vec::with_capacity(t.n_bytes as usize),
            }
        } else if t.dims.len() == 2 && is_used(&cfg, &t.name) {
            Dest::Matrix(Matrix::new(ctx, t)?)
        } else {
            Dest::Skip
        };
        dests.push(d);
    }
    Ok(Loading {
        gguf: g.clone(),
        cfg,
        plan,
        done: vec![false; g.tensors.len()],
        dests,
    })
}

fn is_used(cfg: &LlamaConfig, name: &str) -> bool {
    if name == names::TOKEN_EMBD || name == names::OUTPUT || name == names::OUTPUT_NORM {
        return true;
    }
    (0..cfg.n_layer).any(|l| {
        [
            names::attn_norm(l),
            names::attn_q(l),
            names::attn_k(l),
            names::attn_v(l),
            names::attn_output(l),
            names::ffn_norm(l),
            names::ffn_gate(l),
            names::ffn_up(l),
            names::ffn_down(l),
        ]
        .iter()
        .any(|n| n == name)
    })
}

/// Moves the loaded buffers into the model's weight structure by name.
fn assemble(g: &Gguf, cfg: &LlamaConfig, dests: Vec<Dest>) -> Result<Weights, EngineError> {
    let mut slots: Vec<Option<Dest>> = dests.into_iter().map(Some).collect();
    let mut take = |name: &str| -> Result<Dest, EngineError> {
        let i = g.tensor_index(name).ok_or_else(|| EngineError::BadTensor {
            name: name.into(),
            reason: "missing".into(),
        })?;
        slots[i].take().ok_or_else(|| EngineError::BadTensor {
            name: name.into(),
            reason: "used twice".into(),
        })
    };
    fn matrix(name: &str, d: Dest) -> Result<Matrix, EngineError> {
        match d {
            Dest::Matrix(m) => Ok(m),
            _ => Err(EngineError::BadTensor {
                name: name.into(),
                reason: "expected a matrix".into(),
            }),
        }
    }
    fn vector(name: &str, d: Dest) -> Result<wgpu::Buffer, EngineError> {
        match d {
            Dest::Vector { buf, .. } => Ok(buf),
            _ => Err(EngineError::BadTensor {
                name: name.into(),
                reason: "expected a vector".into(),
            }),
        }
    }
    let token_embd = matrix(names::TOKEN_EMBD, take(names::TOKEN_EMBD)?)?;
    let output = matrix(names::OUTPUT, take(names::OUTPUT)?)?;
    let mut layers = Vec::with_capacity(cfg.n_layer);
    for l in 0..cfg.n_layer {
        layers.push((
            matrix(&names::attn_q(l), take(&names::attn_q(l))?)?,
            matrix(&names::attn_k(l), take(&names::attn_k(l))?)?,
            matrix(&names::attn_v(l), take(&names::attn_v(l))?)?,
            matrix(&names::attn_output(l), take(&names::attn_output(l))?)?,
            matrix(&names::ffn_gate(l), take(&names::ffn_gate(l))?)?,
            matrix(&names::ffn_up(l), take(&names::ffn_up(l))?)?,
            matrix(&names::ffn_down(l), take(&names::ffn_down(l))?)?,
        ));
    }
    let output_norm = vector(names::OUTPUT_NORM, take(names::OUTPUT_NORM)?)?;
    let mut out = Vec::with_capacity(cfg.n_layer);
    for (l, (wq, wk, wv, wo, w_gate, w_up, w_down)) in layers.into_iter().enumerate() {
        out.push(LayerWeights {
            attn_norm: vector(&names::attn_norm(l), take(&names::attn_norm(l))?)?,
            ffn_norm: vector(&names::ffn_norm(l), take(&names::ffn_norm(l))?)?,
            wq,
            wk,
            wv,
            wo,
            w_gate,
            w_up,
            w_down,
        });
    }
    Ok(Weights {
        token_embd,
        layers: out,
        output_norm,
        output,
    })
}

/// Loads a model from a file on disk, streaming it in 4 MiB chunks.
#[cfg(not(target_arch = "wasm32"))]
pub async fn load_file(
    ctx: Arc<GpuContext>,
    path: impl AsRef<std::path::Path>,
    opts: LoadOptions,
) -> Result<Model, EngineError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path.as_ref()).map_err(ahma_gguf::GgufError::Io)?;
    let mut loader = ModelLoader::new(ctx, opts)?;
    let mut buf = vec![0u8; 4 << 20];
    loop {
        let n = f.read(&mut buf).map_err(ahma_gguf::GgufError::Io)?;
        if n == 0 {
            break;
        }
        loader.push(&buf[..n]).await?;
        if loader.parser.is_finished() {
            break;
        }
    }
    loader.finish().await
}
