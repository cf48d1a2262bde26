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

use crate::linear::{Matrix, Stack};
use crate::model::{LayerWeights, Weights};
use crate::plan::{plan_fitting, DeviceBudget, MemoryPlan};
use crate::readback::wait_idle;
use crate::{EngineError, LoadOptions, Model};

/// Where one tensor's bytes go.
enum Dest {
    /// Rows of a weight matrix (raw blocks, split across buffers by the kernels crate): stack
    /// `slot` of [`Loading::stacks`], from byte `offset` on.
    Rows { slot: usize, offset: u64 },
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
    /// Every weight matrix; q/k/v and gate/up share one where their types allow.
    stacks: Vec<Option<Stack>>,
    /// Member tensors of each stack still arriving.
    missing: Vec<usize>,
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
                            Dest::Rows { slot, offset: at } => {
                                if let Some(st) = &mut s.stacks[*slot] {
                                    st.m.write(ctx, *at + offset, bytes)?;
                                }
                            }
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
                            Dest::Rows { slot, .. } => {
                                let slot = *slot;
                                s.missing[slot] -= 1;
                                if s.missing[slot] == 0 {
                                    if let Some(st) = &mut s.stacks[slot] {
                                        st.m.finish(ctx)?;
                                    }
                                }
                            }
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
            stacks,
            ..
        } = st;
        let weights = assemble(&gguf, &cfg, dests, stacks)?;
        let opts = LoadOptions {
            max_batch: plan.max_batch,
            ..self.opts
        };
        Model::build(self.ctx, cfg, opts, plan, weights).await
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
    let plan = plan_fitting(g, &cfg, opts, ctx.use_f16(), &budget)?;
    // Which matrices share a buffer: per layer q/k/v and gate/up, grouped by type and row
    // length (a Q4_K_M file may give attn_v a different type than attn_q and attn_k), as long
    // as the stack fits one storage binding. Every other matrix is a stack of one.
    let caps = ctx.caps();
    let limit = caps
        .max_storage_buffer_binding_size
        .min(caps.max_buffer_size)
        .min(u32::MAX as u64);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut grouped = vec![false; g.tensors.len()];
    for l in 0..cfg.n_layer {
        let sets = [
            vec![names::attn_q(l), names::attn_k(l), names::attn_v(l)],
            vec![names::ffn_gate(l), names::ffn_up(l)],
        ];
        for set in sets {
            let idx: Vec<usize> = set.iter().filter_map(|n| g.tensor_index(n)).collect();
            for group in stack_groups(g, &idx, limit) {
                for &i in &group {
                    grouped[i] = true;
                }
                groups.push(group);
            }
        }
    }
    let mut dests = Vec::with_capacity(g.tensors.len());
    for (i, t) in g.tensors.iter().enumerate() {
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
            if !grouped[i] {
                groups.push(vec![i]);
            }
            // Filled in below once the stacks exist.
            Dest::Skip
        } else {
            Dest::Skip
        };
        dests.push(d);
    }
    let mut stacks = Vec::with_capacity(groups.len());
    let mut missing = Vec::with_capacity(groups.len());
    for group in &groups {
        let ts: Vec<&ahma_gguf::TensorInfo> = group.iter().map(|&i| &g.tensors[i]).collect();
        let st = Stack::new(ctx, &ts)?;
        for (k, &i) in group.iter().enumerate() {
            dests[i] = Dest::Rows {
                slot: stacks.len(),
                offset: st.offset(k),
            };
        }
        missing.push(group.len());
        stacks.push(Some(st));
    }
    Ok(Loading {
        gguf: g.clone(),
        cfg,
        plan,
        done: vec![false; g.tensors.len()],
        dests,
        stacks,
        missing,
    })
}

/// Splits `idx` (tensors in computation order) into stacks: tensors of one type and row length
/// share a stack, in order, while it fits `limit` bytes; the others get stacks of their own.
fn stack_groups(g: &Gguf, idx: &[usize], limit: u64) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    for &i in idx {
        let t = &g.tensors[i];
        if t.dims.len() != 2 {
            continue;
        }
        let fits = |grp: &Vec<usize>| {
            let t0 = &g.tensors[grp[0]];
            let bytes: u64 = grp.iter().map(|&j| g.tensors[j].n_bytes).sum();
            t0.ty == t.ty && t0.dims[0] == t.dims[0] && bytes + t.n_bytes <= limit
        };
        match out.iter_mut().find(|grp| fits(grp)) {
            Some(grp) => grp.push(i),
            None => out.push(vec![i]),
        }
    }
    out
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
fn assemble(
    g: &Gguf,
    cfg: &LlamaConfig,
    dests: Vec<Dest>,
    stacks: Vec<Option<Stack>>,
) -> Result<Weights, EngineError> {
    let mut stacks = stacks;
    let mut slots: Vec<Option<Dest>> = dests.into_iter().map(Some).collect();
    let missing = |name: &str| EngineError::BadTensor {
        name: name.into(),
        reason: "missing".into(),
    };
    // The stack slot holding tensor `name`.
    let slot_of = |name: &str| -> Result<usize, EngineError> {
        let i = g.tensor_index(name).ok_or_else(|| missing(name))?;
        match &slots[i] {
            Some(Dest::Rows { slot, .. }) => Ok(*slot),
            _ => Err(EngineError::BadTensor {
                name: name.into(),
                reason: "expected a matrix".into(),
            }),
        }
    };
    // The stacks holding `names`, in order of first appearance.
    let mut take_stacks = |names: &[String]| -> Result<Vec<Stack>, EngineError> {
        let mut out = Vec::new();
        for n in names {
            let slot = slot_of(n)?;
            if let Some(st) = stacks[slot].take() {
                out.push(st);
            }
        }
        Ok(out)
    };
    fn single(name: &str, mut st: Vec<Stack>) -> Result<Matrix, EngineError> {
        match (st.pop(), st.is_empty()) {
            (Some(s), true) if s.members.len() == 1 => Ok(s.m),
            _ => Err(EngineError::BadTensor {
                name: name.into(),
                reason: "expected a matrix of its own".into(),
            }),
        }
    }
    let token_embd = single(
        names::TOKEN_EMBD,
        take_stacks(&[names::TOKEN_EMBD.to_string()])?,
    )?;
    let output = single(names::OUTPUT, take_stacks(&[names::OUTPUT.to_string()])?)?;
    let mut layers = Vec::with_capacity(cfg.n_layer);
    for l in 0..cfg.n_layer {
        let attn = take_stacks(&[names::attn_q(l), names::attn_k(l), names::attn_v(l)])?;
        let ffn = take_stacks(&[names::ffn_gate(l), names::ffn_up(l)])?;
        let wo = single(
            &names::attn_output(l),
            take_stacks(&[names::attn_output(l)])?,
        )?;
        let w_down = single(&names::ffn_down(l), take_stacks(&[names::ffn_down(l)])?)?;
        layers.push((attn, wo, ffn, w_down));
    }
    let mut vector = |name: &str| -> Result<wgpu::Buffer, EngineError> {
        let i = g.tensor_index(name).ok_or_else(|| missing(name))?;
        match slots[i].take() {
            Some(Dest::Vector { buf, .. }) => Ok(buf),
            _ => Err(EngineError::BadTensor {
                name: name.into(),
                reason: "expected a vector".into(),
            }),
        }
    };
    let output_norm = vector(names::OUTPUT_NORM)?;
    let mut out = Vec::with_capacity(cfg.n_layer);
    for (l, (attn, wo, ffn, w_down)) in layers.into_iter().enumerate() {
        out.push(LayerWeights {
            attn_norm: vector(&names::attn_norm(l))?,
            ffn_norm: vector(&names::ffn_norm(l))?,
            attn,
            wo,
            ffn,
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
