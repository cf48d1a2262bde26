//! Typed Llama hyper-parameters, read from GGUF metadata and checked against the tensor
//! table, so the engine can trust every shape it sees.

use crate::{GgmlType, Gguf, GgufError, Value};

/// GGUF tensor names of the Llama architecture (gguf-py `constants.py`).
pub mod names {
    pub const TOKEN_EMBD: &str = "token_embd.weight";
    pub const OUTPUT_NORM: &str = "output_norm.weight";
    pub const OUTPUT: &str = "output.weight";

    pub fn attn_norm(l: usize) -> String {
        format!("blk.{l}.attn_norm.weight")
    }
    pub fn attn_q(l: usize) -> String {
        format!("blk.{l}.attn_q.weight")
    }
    pub fn attn_k(l: usize) -> String {
        format!("blk.{l}.attn_k.weight")
    }
    pub fn attn_v(l: usize) -> String {
        format!("blk.{l}.attn_v.weight")
    }
    pub fn attn_output(l: usize) -> String {
        format!("blk.{l}.attn_output.weight")
    }
    pub fn ffn_norm(l: usize) -> String {
        format!("blk.{l}.ffn_norm.weight")
    }
    pub fn ffn_gate(l: usize) -> String {
        format!("blk.{l}.ffn_gate.weight")
    }
    pub fn ffn_up(l: usize) -> String {
        format!("blk.{l}.ffn_up.weight")
    }
    pub fn ffn_down(l: usize) -> String {
        format!("blk.{l}.ffn_down.weight")
    }
}

/// Llama hyper-parameters (`general.architecture = "llama"`), validated against the
/// tensor table by [`LlamaConfig::from_gguf`].
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// `llama.embedding_length` (D).
    pub n_embd: usize,
    /// `llama.block_count`.
    pub n_layer: usize,
    /// `llama.feed_forward_length` (F).
    pub n_ff: usize,
    /// `llama.attention.head_count`.
    pub n_head: usize,
    /// `llama.attention.head_count_kv`, default `n_head`.
    pub n_head_kv: usize,
    /// `n_embd / n_head`.
    pub head_dim: usize,
    /// `llama.attention.layer_norm_rms_epsilon`.
    pub rms_eps: f32,
    /// `llama.rope.freq_base`, default 10000.
    pub rope_base: f32,
    /// `llama.rope.dimension_count`, default `head_dim`.
    pub rope_dim: usize,
    /// `llama.context_length`.
    pub n_ctx_train: usize,
    /// Rows of `token_embd.weight`, equal to the length of `tokenizer.ggml.tokens`.
    pub n_vocab: usize,
}

fn uint(g: &Gguf, key: &str) -> Result<Option<usize>, GgufError> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| GgufError::WrongValueType {
                key: key.into(),
                expected: "non-negative integer",
            }),
    }
}

fn required_uint(g: &Gguf, key: &str) -> Result<usize, GgufError> {
    uint(g, key)?.ok_or_else(|| GgufError::MissingKey { key: key.into() })
}

fn float(g: &Gguf, key: &str) -> Result<Option<f32>, GgufError> {
    match g.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f32()
            .map(Some)
            .ok_or_else(|| GgufError::WrongValueType {
                key: key.into(),
                expected: "number",
            }),
    }
}

fn invalid(reason: String) -> GgufError {
    GgufError::InvalidConfig { reason }
}

impl LlamaConfig {
    /// Reads and validates the Llama hyper-parameters of `g`.
    ///
    /// Checks that every required tensor is present with the shape the configuration
    /// implies (`output.weight` too: Ahma does not tie embeddings) and that norms are F32.
    pub fn from_gguf(g: &Gguf) -> Result<LlamaConfig, GgufError> {
        const ARCH: &str = "general.architecture";
        let arch = g
            .get(ARCH)
            .ok_or_else(|| GgufError::MissingKey { key: ARCH.into() })?;
        let arch = arch.as_str().ok_or_else(|| GgufError::WrongValueType {
            key: ARCH.into(),
            expected: "string",
        })?;
        if arch != "llama" {
            return Err(GgufError::WrongArchitecture {
                found: arch.into(),
                expected: "llama",
            });
        }

        let n_embd = required_uint(g, "llama.embedding_length")?;
        let n_layer = required_uint(g, "llama.block_count")?;
        let n_ff = required_uint(g, "llama.feed_forward_length")?;
        let n_head = required_uint(g, "llama.attention.head_count")?;
        let n_head_kv = uint(g, "llama.attention.head_count_kv")?.unwrap_or(n_head);
        let n_ctx_train = required_uint(g, "llama.context_length")?;
        const EPS: &str = "llama.attention.layer_norm_rms_epsilon";
        let rms_eps = float(g, EPS)?.ok_or_else(|| GgufError::MissingKey { key: EPS.into() })?;
        let rope_base = float(g, "llama.rope.freq_base")?.unwrap_or(10000.0);

        if n_embd == 0
            || n_layer == 0
            || n_ff == 0
            || n_head == 0
            || n_head_kv == 0
            || n_ctx_train == 0
        {
            return Err(invalid(format!(
                "zero hyper-parameter: embd {n_embd}, blocks {n_layer}, ffn {n_ff}, heads {n_head}, kv heads {n_head_kv}, ctx {n_ctx_train}"
            )));
        }
        if !n_embd.is_multiple_of(n_head) {
            return Err(invalid(format!(
                "{n_head} heads do not divide the embedding width {n_embd}"
            )));
        }
        if !n_head.is_multiple_of(n_head_kv) {
            return Err(invalid(format!(
                "{n_head_kv} kv heads do not divide {n_head} heads"
            )));
        }
        let head_dim = n_embd / n_head;
        let rope_dim = uint(g, "llama.rope.dimension_count")?.unwrap_or(head_dim);
        if rope_dim == 0 || rope_dim > head_dim || !rope_dim.is_multiple_of(2) {
            return Err(invalid(format!(
                "rope dimension {rope_dim} must be even and within head_dim {head_dim}"
            )));
        }
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(invalid(format!(
                "rms epsilon {rms_eps} is not a finite non-negative number"
            )));
        }
        if !(rope_base.is_finite() && rope_base > 0.0) {
            return Err(invalid(format!(
                "rope base {rope_base} is not a finite positive number"
            )));
        }

        // Vocabulary: the token list and the embedding matrix must agree.
        let embd = g
            .tensor(crate::names::TOKEN_EMBD)
            .ok_or_else(|| GgufError::MissingTensor {
                name: crate::names::TOKEN_EMBD.into(),
            })?;
        let embd_rows = if embd.dims.len() == 2 {
            embd.dims[1]
        } else {
            0
        };
        if let Some(tokens) = g.get("tokenizer.ggml.tokens") {
            let n = match tokens {
                Value::Array(a) => a.len() as u64,
                _ => {
                    return Err(GgufError::WrongValueType {
                        key: "tokenizer.ggml.tokens".into(),
                        expected: "array of strings",
                    })
                }
            };
            if embd.dims.len() == 2 && n != embd_rows {
                return Err(GgufError::VocabMismatch {
                    tokens: n,
                    embd: embd_rows,
                });
            }
        }
        let n_vocab = usize::try_from(embd_rows)
            .map_err(|_| invalid(format!("vocabulary of {embd_rows} tokens")))?;
        if n_vocab == 0 && embd.dims.len() == 2 {
            return Err(invalid("empty vocabulary".into()));
        }

        let cfg = LlamaConfig {
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            rms_eps,
            rope_base,
            rope_dim,
            n_ctx_train,
            n_vocab,
        };
        cfg.check_tensors(g)?;
        Ok(cfg)
    }

    /// Width of the K and V projections (`n_head_kv * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    fn check_tensors(&self, g: &Gguf) -> Result<(), GgufError> {
        let (d, f, v) = (self.n_embd as u64, self.n_ff as u64, self.n_vocab as u64);
        let kv = (self.n_head_kv as u64) * (self.head_dim as u64);
        let by_name: std::collections::HashMap<&str, &crate::TensorInfo> =
            g.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        let check = |name: &str, dims: &[u64], norm: bool| -> Result<(), GgufError> {
            let t = by_name
                .get(name)
                .copied()
                .ok_or_else(|| GgufError::MissingTensor { name: name.into() })?;
            if t.dims != dims {
                return Err(GgufError::TensorShape {
                    name: name.into(),
                    expected: dims.to_vec(),
                    found: t.dims.clone(),
                });
            }
            if norm && t.ty != GgmlType::F32 {
                return Err(GgufError::TensorType {
                    name: name.into(),
                    expected: GgmlType::F32,
                    found: t.ty,
                });
            }
            Ok(())
        };
        check(crate::names::TOKEN_EMBD, &[d, v], false)?;
        check(crate::names::OUTPUT, &[d, v], false)?;
        check(crate::names::OUTPUT_NORM, &[d], true)?;
        use crate::names::*;
        for l in 0..self.n_layer {
            check(&attn_norm(l), &[d], true)?;
            check(&attn_q(l), &[d, d], false)?;
            check(&attn_k(l), &[d, kv], false)?;
            check(&attn_v(l), &[d, kv], false)?;
            check(&attn_output(l), &[d, d], false)?;
            check(&ffn_norm(l), &[d], true)?;
            check(&ffn_gate(l), &[d, f], false)?;
            check(&ffn_up(l), &[d, f], false)?;
            check(&ffn_down(l), &[f, d], false)?;
        }
        Ok(())
    }
}
