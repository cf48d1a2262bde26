//! `ahma synth OUT [--preset ahma-3b] [--mix q4km|q4_0|q8_0] [shape flags]`:
//! writes a random Llama GGUF of a given shape and tensor-type mix, for
//! benchmarks and load tests without downloading a real model. The blocks are
//! random bytes with sane f16 scale fields (every bit pattern of the quants
//! decodes), streamed to disk so memory stays small whatever the size.
//!
//! With at least 259 vocabulary entries the file also carries a synthetic
//! SentencePiece vocabulary (`<unk>`, `<s>`, `</s>`, the 256 byte tokens, `▁`,
//! single letters, then syllable pieces), so that llama.cpp (and peers built on it) load the same file
//! for side-by-side benchmarks.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use ahma_gguf::GgmlType;
use anyhow::{bail, Context};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// What llama.cpp's Q4_K_M gives the shape: Q4_K bulk, Q6_K attn_v and ffn_down in the
    /// "more bits" layers, Q6_K output; a tensor whose rows are no multiple of 256 long falls
    /// back as llama.cpp's does (Q4_K to Q5_0, Q6_K to Q8_0), so the 3200-wide Ahma-3B gets
    /// Q5_0 bulk and Q8_0 for the rest, and the 4096-wide Ahma-7B real K-quants.
    Q4km,
    /// Q4_0 everywhere, Q8_0 output.
    Q4_0,
    /// Q8_0 everywhere.
    Q8_0,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output path of the GGUF file.
    pub out: PathBuf,
    /// Start from the shape of a published model.
    #[arg(long, value_parser = ["ahma-3b", "ahma-7b", "tiny"], default_value = "ahma-3b")]
    pub preset: String,
    /// Tensor-type mix.
    #[arg(long, value_enum, default_value_t = Mix::Q4km)]
    pub mix: Mix,
    #[arg(long)]
    pub n_embd: Option<u64>,
    #[arg(long)]
    pub n_layer: Option<u64>,
    #[arg(long)]
    pub n_head: Option<u64>,
    #[arg(long)]
    pub n_ff: Option<u64>,
    #[arg(long)]
    pub n_vocab: Option<u64>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

struct Shape {
    n_embd: u64,
    n_layer: u64,
    n_head: u64,
    n_ff: u64,
    n_vocab: u64,
}

/// Layers llama.cpp's `use_more_bits` gives extra precision (for 26 layers:
/// {0,1,2,5,8,11,14,17,20,22,23,24,25}).
fn more_bits(layer: u64, n_layer: u64) -> bool {
    layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2
}

/// The type of tensor `name` (rows of `row_len` elements).
fn tensor_type(mix: Mix, name: &str, row_len: u64, layer: Option<u64>, n_layer: u64) -> GgmlType {
    if name.ends_with("norm.weight") {
        return GgmlType::F32;
    }
    match mix {
        Mix::Q8_0 => GgmlType::Q8_0,
        Mix::Q4_0 => {
            if name == "output.weight" {
                GgmlType::Q8_0
            } else {
                GgmlType::Q4_0
            }
        }
        Mix::Q4km => {
            let extra = (name.ends_with("attn_v.weight") || name.ends_with("ffn_down.weight"))
                && layer.is_some_and(|l| more_bits(l, n_layer));
            let k_quants = row_len.is_multiple_of(256);
            match (name == "output.weight" || extra, k_quants) {
                (true, true) => GgmlType::Q6K,
                (true, false) => GgmlType::Q8_0,
                (false, true) => GgmlType::Q4K,
                (false, false) => GgmlType::Q5_0,
            }
        }
    }
}

/// Byte offsets of the f16 scale fields of a block, and the value they get.
fn scale_fields(ty: GgmlType) -> &'static [(usize, f32)] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Iq4Nl => &[(0, 0.004)],
        GgmlType::Q4_1 => &[(0, 0.004), (2, -0.03)],
        GgmlType::Q5_0 => &[(0, 0.002)],
        GgmlType::Q5_1 => &[(0, 0.002), (2, -0.03)],
        GgmlType::Q8_0 => &[(0, 0.0003)],
        // d and dmin (6-bit scales and mins times 4-bit quants); d after the 6-bit quants and
        // the 8-bit scales.
        GgmlType::Q4K => &[(0, 0.0001), (2, 0.0001)],
        GgmlType::Q6K => &[(208, 0.00003)],
        _ => &[],
    }
}

/// xorshift64*, fast enough to fill gigabytes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

fn w_str(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

enum Kv {
    U32(u32),
    F32(f32),
    Str(String),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

/// The synthetic SentencePiece vocabulary of `n` entries: (pieces, scores, types).
fn synthetic_vocab(n: usize) -> (Vec<String>, Vec<f32>, Vec<i32>) {
    // llama.cpp token types: 1 normal, 2 unknown, 3 control, 6 byte
    let mut pieces = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        pieces.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    const SYL: [&str; 16] = [
        "ka", "le", "mi", "no", "pu", "ra", "si", "tu", "va", "jo", "hä", "ly", "sö", "en", "in",
        "aa",
    ];
    // the word-start mark and the letters, from which every longer piece is one merge away
    let mut letters: Vec<char> = SYL.iter().flat_map(|s| s.chars()).collect();
    letters.sort_unstable();
    letters.dedup();
    for p in std::iter::once("\u{2581}".to_string()).chain(letters.iter().map(char::to_string)) {
        if pieces.len() < n {
            pieces.push(p);
            types.push(1);
        }
    }
    let mut i = 0usize;
    while pieces.len() < n {
        // distinct syllable strings, shortest first, half with the word-start mark
        let mut word = String::new();
        let mut k = i / 2;
        loop {
            word.push_str(SYL[k % SYL.len()]);
            k /= SYL.len();
            if k == 0 {
                break;
            }
            k -= 1;
        }
        pieces.push(if i.is_multiple_of(2) {
            format!("\u{2581}{word}")
        } else {
            word
        });
        types.push(1);
        i += 1;
    }
    let scores = (0..n)
        .map(|i| if i < 259 { 0.0 } else { -((i - 259) as f32) })
        .collect();
    (pieces, scores, types)
}

pub fn run(args: Args, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut shape = match args.preset.as_str() {
        "ahma-3b" => Shape {
            n_embd: 3200,
            n_layer: 26,
            n_head: 32,
            n_ff: 8640,
            n_vocab: 64256,
        },
        "ahma-7b" => Shape {
            n_embd: 4096,
            n_layer: 32,
            n_head: 32,
            n_ff: 11008,
            n_vocab: 64256,
        },
        // Rows no multiple of 256 long, as the 3B's: its Q4_K_M mix is the 3B's legacy types.
        _ => Shape {
            n_embd: 320,
            n_layer: 2,
            n_head: 4,
            n_ff: 640,
            n_vocab: 1000,
        },
    };
    shape.n_embd = args.n_embd.unwrap_or(shape.n_embd);
    shape.n_layer = args.n_layer.unwrap_or(shape.n_layer);
    shape.n_head = args.n_head.unwrap_or(shape.n_head);
    shape.n_ff = args.n_ff.unwrap_or(shape.n_ff);
    shape.n_vocab = args.n_vocab.unwrap_or(shape.n_vocab);
    let s = &shape;
    if s.n_head == 0
        || !s.n_embd.is_multiple_of(s.n_head)
        || !(s.n_embd / s.n_head).is_multiple_of(2)
    {
        bail!(
            "n_embd {} must split into an even head_dim over {} heads",
            s.n_embd,
            s.n_head
        );
    }
    if !s.n_embd.is_multiple_of(32) || !s.n_ff.is_multiple_of(32) || s.n_layer == 0 || s.n_vocab < 8
    {
        bail!("n_embd and n_ff must be multiples of 32, n_layer >= 1, n_vocab >= 8");
    }

    // (name, dims, type, layer)
    let mut tensors: Vec<(String, Vec<u64>, GgmlType)> = Vec::new();
    let mut add = |name: String, dims: Vec<u64>, layer: Option<u64>| {
        let ty = tensor_type(args.mix, &name, dims[0], layer, s.n_layer);
        tensors.push((name, dims, ty));
    };
    add("token_embd.weight".into(), vec![s.n_embd, s.n_vocab], None);
    for l in 0..s.n_layer {
        add(format!("blk.{l}.attn_norm.weight"), vec![s.n_embd], Some(l));
        add(
            format!("blk.{l}.attn_q.weight"),
            vec![s.n_embd, s.n_embd],
            Some(l),
        );
        add(
            format!("blk.{l}.attn_k.weight"),
            vec![s.n_embd, s.n_embd],
            Some(l),
        );
        add(
            format!("blk.{l}.attn_v.weight"),
            vec![s.n_embd, s.n_embd],
            Some(l),
        );
        add(
            format!("blk.{l}.attn_output.weight"),
            vec![s.n_embd, s.n_embd],
            Some(l),
        );
        add(format!("blk.{l}.ffn_norm.weight"), vec![s.n_embd], Some(l));
        add(
            format!("blk.{l}.ffn_gate.weight"),
            vec![s.n_embd, s.n_ff],
            Some(l),
        );
        add(
            format!("blk.{l}.ffn_up.weight"),
            vec![s.n_embd, s.n_ff],
            Some(l),
        );
        add(
            format!("blk.{l}.ffn_down.weight"),
            vec![s.n_ff, s.n_embd],
            Some(l),
        );
    }
    add("output_norm.weight".into(), vec![s.n_embd], None);
    add("output.weight".into(), vec![s.n_embd, s.n_vocab], None);

    let mut kvs: Vec<(&str, Kv)> = vec![
        ("general.architecture", Kv::Str("llama".into())),
        (
            "general.name",
            Kv::Str(format!("synthetic {} {:?}", args.preset, args.mix)),
        ),
        ("general.alignment", Kv::U32(32)),
        ("llama.context_length", Kv::U32(2048)),
        ("llama.embedding_length", Kv::U32(s.n_embd as u32)),
        ("llama.block_count", Kv::U32(s.n_layer as u32)),
        ("llama.feed_forward_length", Kv::U32(s.n_ff as u32)),
        ("llama.attention.head_count", Kv::U32(s.n_head as u32)),
        ("llama.attention.head_count_kv", Kv::U32(s.n_head as u32)),
        ("llama.attention.layer_norm_rms_epsilon", Kv::F32(1e-6)),
        ("llama.rope.freq_base", Kv::F32(10000.0)),
        (
            "llama.rope.dimension_count",
            Kv::U32((s.n_embd / s.n_head) as u32),
        ),
        ("llama.vocab_size", Kv::U32(s.n_vocab as u32)),
    ];
    if s.n_vocab >= 259 {
        let (pieces, scores, types) = synthetic_vocab(s.n_vocab as usize);
        kvs.extend([
            ("tokenizer.ggml.model", Kv::Str("llama".into())),
            ("tokenizer.ggml.tokens", Kv::Strs(pieces)),
            ("tokenizer.ggml.scores", Kv::F32s(scores)),
            ("tokenizer.ggml.token_type", Kv::I32s(types)),
            ("tokenizer.ggml.unknown_token_id", Kv::U32(0)),
            ("tokenizer.ggml.bos_token_id", Kv::U32(1)),
            ("tokenizer.ggml.eos_token_id", Kv::U32(2)),
        ]);
    }

    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(b"GGUF")?;
    w.write_all(&3u32.to_le_bytes())?;
    w.write_all(&(tensors.len() as u64).to_le_bytes())?;
    w.write_all(&(kvs.len() as u64).to_le_bytes())?;
    let mut pos = 24u64;
    for (k, v) in &kvs {
        w_str(&mut w, k)?;
        pos += 8 + k.len() as u64 + 4;
        match v {
            Kv::U32(x) => {
                w.write_all(&4u32.to_le_bytes())?;
                w.write_all(&x.to_le_bytes())?;
                pos += 4;
            }
            Kv::F32(x) => {
                w.write_all(&6u32.to_le_bytes())?;
                w.write_all(&x.to_le_bytes())?;
                pos += 4;
            }
            Kv::Str(x) => {
                w.write_all(&8u32.to_le_bytes())?;
                w_str(&mut w, x)?;
                pos += 8 + x.len() as u64;
            }
            Kv::Strs(xs) => {
                w.write_all(&9u32.to_le_bytes())?;
                w.write_all(&8u32.to_le_bytes())?;
                w.write_all(&(xs.len() as u64).to_le_bytes())?;
                pos += 12;
                for x in xs {
                    w_str(&mut w, x)?;
                    pos += 8 + x.len() as u64;
                }
            }
            Kv::F32s(xs) => {
                w.write_all(&9u32.to_le_bytes())?;
                w.write_all(&6u32.to_le_bytes())?;
                w.write_all(&(xs.len() as u64).to_le_bytes())?;
                for x in xs {
                    w.write_all(&x.to_le_bytes())?;
                }
                pos += 12 + 4 * xs.len() as u64;
            }
            Kv::I32s(xs) => {
                w.write_all(&9u32.to_le_bytes())?;
                w.write_all(&5u32.to_le_bytes())?;
                w.write_all(&(xs.len() as u64).to_le_bytes())?;
                for x in xs {
                    w.write_all(&x.to_le_bytes())?;
                }
                pos += 12 + 4 * xs.len() as u64;
            }
        }
    }
    let mut offset = 0u64;
    let mut sizes = Vec::with_capacity(tensors.len());
    for (name, dims, ty) in &tensors {
        w_str(&mut w, name)?;
        w.write_all(&(dims.len() as u32).to_le_bytes())?;
        for d in dims {
            w.write_all(&d.to_le_bytes())?;
        }
        w.write_all(&ty.id().to_le_bytes())?;
        w.write_all(&offset.to_le_bytes())?;
        pos += 8 + name.len() as u64 + 4 + 8 * dims.len() as u64 + 4 + 8;
        let n = ahma_gguf::tensor_bytes(*ty, dims.iter().product())?;
        sizes.push(n);
        offset += n.next_multiple_of(32);
    }
    w.write_all(&vec![0u8; (pos.next_multiple_of(32) - pos) as usize])?;

    let mut rng = Rng(args.seed.max(1));
    let mut block = Vec::new();
    for ((_, _, ty), &n) in tensors.iter().zip(&sizes) {
        if *ty == GgmlType::F32 {
            // Norm weights: ones, like a freshly initialized RMSNorm.
            for _ in 0..n / 4 {
                w.write_all(&1.0f32.to_le_bytes())?;
            }
        } else {
            let bb = ty.block_bytes();
            let fields = scale_fields(*ty);
            let blocks_per_chunk = (1 << 16) / bb;
            let mut left = n / bb as u64;
            while left > 0 {
                let nb = left.min(blocks_per_chunk as u64) as usize;
                block.resize(nb * bb, 0);
                rng.fill(&mut block);
                for b in block.chunks_mut(bb) {
                    for &(off, val) in fields {
                        b[off..off + 2].copy_from_slice(&half::f16::from_f32(val).to_le_bytes());
                    }
                }
                w.write_all(&block)?;
                left -= nb as u64;
            }
        }
        w.write_all(&vec![0u8; (n.next_multiple_of(32) - n) as usize])?;
    }
    w.flush()?;
    writeln!(
        out,
        "wrote {} ({} tensors, {:.3} GB, {:?} mix)",
        args.out.display(),
        tensors.len(),
        (pos.next_multiple_of(32) + offset) as f64 / 1e9,
        args.mix
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's Q4_K_M rules: K-quants where rows are multiples of 256 long (the 7B), their
    /// legacy fallbacks elsewhere (the 3B); more bits for the output head, and for attn_v and
    /// ffn_down in the `use_more_bits` layers (layer 0 is one, layer 3 of 26 or 32 is not).
    #[test]
    fn q4km_follows_llama_cpp() {
        let t =
            |name: &str, row: u64, layer: Option<u64>| tensor_type(Mix::Q4km, name, row, layer, 26);
        assert_eq!(t("blk.3.attn_q.weight", 3200, Some(3)), GgmlType::Q5_0);
        assert_eq!(t("blk.0.attn_v.weight", 3200, Some(0)), GgmlType::Q8_0);
        assert_eq!(t("blk.3.attn_v.weight", 3200, Some(3)), GgmlType::Q5_0);
        assert_eq!(t("blk.0.ffn_down.weight", 8640, Some(0)), GgmlType::Q8_0);
        assert_eq!(t("output.weight", 3200, None), GgmlType::Q8_0);
        assert_eq!(t("token_embd.weight", 3200, None), GgmlType::Q5_0);
        assert_eq!(t("blk.3.attn_q.weight", 4096, Some(3)), GgmlType::Q4K);
        assert_eq!(t("blk.0.attn_v.weight", 4096, Some(0)), GgmlType::Q6K);
        assert_eq!(t("blk.3.ffn_down.weight", 11008, Some(3)), GgmlType::Q4K);
        assert_eq!(t("blk.0.ffn_down.weight", 11008, Some(0)), GgmlType::Q6K);
        assert_eq!(t("output.weight", 4096, None), GgmlType::Q6K);
        assert_eq!(t("token_embd.weight", 4096, None), GgmlType::Q4K);
        assert_eq!(t("blk.0.attn_norm.weight", 4096, Some(0)), GgmlType::F32);
    }
}
