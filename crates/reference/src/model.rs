//! The Llama model: configuration, weights, run state and the forward pass.

use std::io::{Read, Seek};
use std::path::Path;

use ahma_gguf::{names, Gguf, LlamaConfig};

use crate::ops::{add_assign, argmax, attention_head, rmsnorm, rope, swiglu};
use crate::{QTensor, ReferenceError};

/// Hyper-parameters: ahma-gguf's validated [`LlamaConfig`] (`n_embd` = dim, `n_ff` =
/// hidden_dim, `head_dim = n_embd / n_head`, `n_ctx_train` = the longest sequence).
pub type Config = LlamaConfig;

/// The weights of one transformer block, still in their GGUF encoding.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>, // (dim,)
    pub wq: QTensor,         // (n_head * head_dim, dim)
    pub wk: QTensor,         // (n_head_kv * head_dim, dim)
    pub wv: QTensor,         // (n_head_kv * head_dim, dim)
    pub wo: QTensor,         // (dim, n_head * head_dim)
    pub ffn_norm: Vec<f32>,  // (dim,)
    pub w_gate: QTensor,     // (hidden_dim, dim)
    pub w_up: QTensor,       // (hidden_dim, dim)
    pub w_down: QTensor,     // (dim, hidden_dim)
}

/// All weights of the model. Matrices are (rows, cols) = (n_out, n_in).
#[derive(Clone, Debug)]
pub struct Weights {
    pub token_embd: QTensor,       // (vocab_size, dim)
    pub layers: Vec<LayerWeights>, // (n_layer,)
    pub output_norm: Vec<f32>,     // (dim,)
    pub output: QTensor,           // (vocab_size, dim), not tied to token_embd
}

/// Activations of the current position plus the key/value cache of earlier ones.
#[derive(Clone, Debug)]
pub struct RunState {
    pub x: Vec<f32>,      // (dim,) the residual stream
    pub xb: Vec<f32>,     // (dim,) normalized input of a sublayer / attention output
    pub xb2: Vec<f32>,    // (dim,) sublayer output before the residual add
    pub hb: Vec<f32>,     // (hidden_dim,) FFN gate, then silu(gate) * up
    pub hb2: Vec<f32>,    // (hidden_dim,) FFN up
    pub q: Vec<f32>,      // (dim,)
    pub k: Vec<f32>,      // (kv_dim,)
    pub v: Vec<f32>,      // (kv_dim,)
    pub att: Vec<f32>,    // (seq_len,) attention scores of one head
    pub row: Vec<f32>,    // (max(dim, hidden_dim),) one dequantized weight row
    pub logits: Vec<f32>, // (vocab_size,)
    /// Per layer `(n_pos, kv_dim)`, grown one position at a time so a 2048-token
    /// context is only paid for when it is used.
    pub key_cache: Vec<Vec<f32>>,
    pub value_cache: Vec<Vec<f32>>, // same layout as key_cache
    /// Number of positions in the cache.
    pub n_pos: usize,
}

impl RunState {
    fn new(c: &Config) -> Self {
        let kv_dim = c.kv_dim();
        RunState {
            x: vec![0.0; c.n_embd],
            xb: vec![0.0; c.n_embd],
            xb2: vec![0.0; c.n_embd],
            hb: vec![0.0; c.n_ff],
            hb2: vec![0.0; c.n_ff],
            q: vec![0.0; c.n_embd],
            k: vec![0.0; kv_dim],
            v: vec![0.0; kv_dim],
            att: Vec::new(),
            row: vec![0.0; c.n_embd.max(c.n_ff)],
            logits: vec![0.0; c.n_vocab],
            key_cache: vec![Vec::new(); c.n_layer],
            value_cache: vec![Vec::new(); c.n_layer],
            n_pos: 0,
        }
    }

    /// Drops cached positions from `pos` on.
    fn truncate(&mut self, pos: usize, kv_dim: usize) {
        for cache in self.key_cache.iter_mut().chain(self.value_cache.iter_mut()) {
            cache.truncate(pos * kv_dim);
        }
        self.n_pos = self.n_pos.min(pos);
    }
}

/// A Llama model ready to run on the CPU.
#[derive(Clone, Debug)]
pub struct Model {
    pub config: Config,
    pub weights: Weights,
    pub state: RunState,
}

/// Reads one tensor of `g` as a [`QTensor`] (1-D tensors are one row).
fn read_tensor<R: Read + Seek>(g: &Gguf, r: &mut R, name: &str) -> Result<QTensor, ReferenceError> {
    let missing = || ReferenceError::MissingTensor { name: name.into() };
    let index = g.tensor_index(name).ok_or_else(missing)?;
    let info = &g.tensors[index];
    let too_large = || ReferenceError::TooLarge { name: name.into() };
    let cols = usize::try_from(info.row_len()).map_err(|_| too_large())?;
    let rows = usize::try_from(info.n_rows()).map_err(|_| too_large())?;
    let bytes = g.read_tensor_bytes(r, index)?;
    QTensor::new(name, info.ty, rows, cols, bytes)
}

impl Model {
    /// Opens a GGUF file and loads a Llama model from it.
    pub fn load(path: impl AsRef<Path>) -> Result<Model, ReferenceError> {
        let (g, mut file) = Gguf::open(path)?;
        Model::from_gguf(&g, &mut file)
    }

    /// Loads a Llama model from a parsed header and a reader over the same file.
    pub fn from_gguf<R: Read + Seek>(g: &Gguf, reader: &mut R) -> Result<Model, ReferenceError> {
        let config = LlamaConfig::from_gguf(g)?;
        let mut t = |name: &str| read_tensor(g, reader, name);
        let mut layers = Vec::with_capacity(config.n_layer);
        for l in 0..config.n_layer {
            layers.push(LayerWeights {
                attn_norm: t(&names::attn_norm(l))?.to_f32()?,
                wq: t(&names::attn_q(l))?,
                wk: t(&names::attn_k(l))?,
                wv: t(&names::attn_v(l))?,
                wo: t(&names::attn_output(l))?,
                ffn_norm: t(&names::ffn_norm(l))?.to_f32()?,
                w_gate: t(&names::ffn_gate(l))?,
                w_up: t(&names::ffn_up(l))?,
                w_down: t(&names::ffn_down(l))?,
            });
        }
        let weights = Weights {
            token_embd: t(names::TOKEN_EMBD)?,
            layers,
            output_norm: t(names::OUTPUT_NORM)?.to_f32()?,
            output: t(names::OUTPUT)?,
        };
        let state = RunState::new(&config);
        Ok(Model {
            config,
            weights,
            state,
        })
    }

    /// Forgets every cached position; the next call must be `forward(token, 0)`.
    pub fn reset(&mut self) {
        self.state.truncate(0, self.config.kv_dim());
    }

    /// Number of positions in the key/value cache.
    pub fn n_cached(&self) -> usize {
        self.state.n_pos
    }

    /// Runs `token` at position `pos` and returns the logits of the next token.
    ///
    /// `pos` must be at most the number of cached positions; a smaller `pos` rewinds the
    /// cache to it (positions `pos..` are forgotten) before the token is processed.
    pub fn forward(&mut self, token: u32, pos: usize) -> Result<&[f32], ReferenceError> {
        let c = &self.config;
        let (n_vocab, n_ctx, kv_dim) = (c.n_vocab, c.n_ctx_train, c.kv_dim());
        if token as usize >= n_vocab {
            return Err(ReferenceError::TokenOutOfRange { token, n_vocab });
        }
        if pos >= n_ctx {
            return Err(ReferenceError::ContextFull { pos, n_ctx });
        }
        if pos > self.state.n_pos {
            return Err(ReferenceError::PositionGap {
                pos,
                cached: self.state.n_pos,
            });
        }
        self.state.truncate(pos, kv_dim);

        let (w, s) = (&self.weights, &mut self.state);
        // The embedding: one row of token_embd, dequantized.
        w.token_embd.row(token as usize, &mut s.x)?;
        for (l, layer) in w.layers.iter().enumerate() {
            attention_block(c, layer, s, l, pos)?;
            ffn_block(c, layer, s)?;
        }
        s.n_pos = pos + 1;

        rmsnorm(&mut s.xb, &s.x, &w.output_norm, c.rms_eps);
        w.output.matvec(&mut s.logits, &s.xb, &mut s.row)?;
        Ok(&s.logits)
    }

    /// Feeds `prompt` from position 0, then appends the argmax token `n` times.
    ///
    /// Returns exactly the `n` generated ids (generation does not stop at `</s>`: the
    /// caller decides what to do with it). This is the greedy decode llama.cpp does at
    /// temperature 0.
    pub fn generate_greedy(
        &mut self,
        prompt: &[u32],
        n: usize,
    ) -> Result<Vec<u32>, ReferenceError> {
        if prompt.is_empty() {
            return Err(ReferenceError::EmptyPrompt);
        }
        self.reset();
        for (pos, &tok) in prompt.iter().enumerate() {
            self.forward(tok, pos)?;
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            // The vocabulary is never empty (LlamaConfig checks it), so argmax finds a token.
            let next = argmax(&self.state.logits).unwrap_or(0) as u32;
            out.push(next);
            if out.len() < n {
                self.forward(next, prompt.len() + out.len() - 1)?;
            }
        }
        Ok(out)
    }
}

/// `x += Wo · Attention(RoPE(Wq·xb), RoPE(Wk·xb), Wv·xb)` with `xb = RMSNorm(x)`.
fn attention_block(
    c: &Config,
    w: &LayerWeights,
    s: &mut RunState,
    l: usize,
    pos: usize,
) -> Result<(), ReferenceError> {
    let (hd, kv_dim) = (c.head_dim, c.kv_dim());
    rmsnorm(&mut s.xb, &s.x, &w.attn_norm, c.rms_eps);
    w.wq.matvec(&mut s.q, &s.xb, &mut s.row)?;
    w.wk.matvec(&mut s.k, &s.xb, &mut s.row)?;
    w.wv.matvec(&mut s.v, &s.xb, &mut s.row)?;
    for head in s.q.chunks_exact_mut(hd).chain(s.k.chunks_exact_mut(hd)) {
        rope(head, pos, c.rope_dim, c.rope_base);
    }
    s.key_cache[l].extend_from_slice(&s.k);
    s.value_cache[l].extend_from_slice(&s.v);

    // Grouped-query attention: query head h reads key/value head h / (n_head / n_head_kv).
    let group = c.n_head / c.n_head_kv;
    let n_pos = pos + 1;
    s.att.resize(n_pos, 0.0);
    for h in 0..c.n_head {
        let q = &s.q[h * hd..][..hd];
        let out = &mut s.xb[h * hd..][..hd];
        let (keys, values) = (&s.key_cache[l], &s.value_cache[l]);
        attention_head(
            out,
            q,
            keys,
            values,
            kv_dim,
            (h / group) * hd,
            n_pos,
            &mut s.att,
        );
    }
    w.wo.matvec(&mut s.xb2, &s.xb, &mut s.row)?;
    add_assign(&mut s.x, &s.xb2);
    Ok(())
}

/// `x += W_down · (SiLU(W_gate·xb) ⊙ W_up·xb)` with `xb = RMSNorm(x)`.
fn ffn_block(c: &Config, w: &LayerWeights, s: &mut RunState) -> Result<(), ReferenceError> {
    rmsnorm(&mut s.xb, &s.x, &w.ffn_norm, c.rms_eps);
    w.w_gate.matvec(&mut s.hb, &s.xb, &mut s.row)?;
    w.w_up.matvec(&mut s.hb2, &s.xb, &mut s.row)?;
    swiglu(&mut s.hb, &s.hb2);
    w.w_down.matvec(&mut s.xb2, &s.hb, &mut s.row)?;
    add_assign(&mut s.x, &s.xb2);
    Ok(())
}
