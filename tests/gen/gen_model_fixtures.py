#!/usr/bin/env python3
"""Generate the model oracle fixtures under tests/fixtures/models/.

Why this exists: the CPU reference forward (crates/reference) and, through it, the GPU
engine are checked against what llama.cpp itself computes. We cannot commit Ahma's real
weights, so we build small random Llama GGUFs that keep every Ahma quirk that can break
a loader or a kernel, run them through llama.cpp (llama-cpp-python), and record:

  * the logits of every position of a fixed prompt (llama.cpp `eval` + `scores`), and
  * the 32-token greedy continuation llama.cpp produces (argmax of its own logits step by
    step, cross-checked against llama.cpp's greedy sampler via `Llama.generate`), and
  * the logits after the last greedy token (position 47, through the KV cache).

Fixtures (both untied output, SPM vocabulary, rms_eps 1e-6, rope base 10000, rope over
the whole head as LLM_ARCH_LLAMA requires, context_length 2048 like Ahma):

  ahma_like_legacy   Ahma-3B shape family: n_embd 800 = 8 heads x head_dim 100 (MHA),
                     n_ff 864 (rows not divisible by 256, and 25 / 27 blocks per row, so
                     rows of 18-byte blocks are not 4-byte aligned), 1 layer. 11.5 MB.
                     Types: token_embd Q4_0, attn_q Q4_0, attn_k Q4_1, attn_v Q5_0,
                     attn_output Q5_1, ffn_gate Q8_0, ffn_up IQ4_NL, ffn_down IQ4_NL,
                     output F16, norms F32.
  kquant_gqa         Ahma-7B-like K-quant family: n_embd 256 = 4 heads x head_dim 64,
                     grouped-query attention with 2 KV heads, n_ff 768, 2 layers. 3.8 MB.
                     Types: token_embd Q2_K, output F16, norms F32;
                     layer 0: q Q2_K, k Q3_K, v Q4_K, output Q5_K, gate IQ4_XS, up Q6_K, down Q4_K;
                     layer 1: q Q5_K, k F32, v BF16, output Q3_K, gate Q2_K, up IQ4_XS, down F16.

  ahma_q4km_layout   The published Ahma-3B Q4_K_M file's layout in small: n_embd 384 = 6
                     heads x head_dim 64 (MHA), n_ff 864, 2 layers, token_embd Q5_0,
                     output F16 (see below), Q5_0 everywhere except attn_v and ffn_down of
                     layer 1, which are Q8_0 (llama.cpp's "more bits" layers). So q/k/v and
                     gate/up stack into one matrix each in layer 0, and in layer 1 the Q5_0
                     q/k and the Q8_0 v meet in one decode product of two types. 6.6 MB.

All use the 4000-token vocabulary (see below); with the logits, 23 MB in all.
Together they cover every type the engine supports: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS.

Why the output matrix is F16 and the layers are "quiet": llama.cpp's CPU matmul rounds
the activations to the weight's dot type before the dot product: Q8_0/Q8_1 for legacy
quants, Q8_K for K-quants and IQ4_XS, BF16 for BF16, F16 for F16. For a quantized (or
BF16) output matrix that alone puts 3e-6..2.5e-5 NMSE on the logits, too close to or
above the 1e-5 gate an exact f32 reference is held to. With F16 it is ~4e-8. Inside the
layers the same noise is diluted by the residual stream: every sublayer adds only
`residual_ratio` of the embedding's RMS (0.1 for the legacy fixture, 0.05 for the
K-quant one, whose Q8_K activations are coarser), so a wrong kernel still moves the
logits by ~ratio^2 = 2.5e-3..1e-2 (far above the gate) while llama.cpp's own rounding
stays well below it. The script prints the NMSE of an exact float64 numpy forward against
llama.cpp: that is the floor any exact reference sees (recorded in NAME.json).

Quantized tensors are produced by llama.cpp's own quantizer (ggml_quantize_chunk from the
libggml shipped inside llama-cpp-python, no importance matrix); F16/BF16 by gguf-py.

Vocabulary: if tests/fixtures/tokenizer/vocab.tsv exists (written by
gen_tokenizer_fixtures.py from the small Finnish SentencePiece model), its tokens, scores
and types are used, so text -> tokens -> model -> text works end to end. Otherwise a
synthetic vocabulary of the same structure and size is built (<unk>, <s>, </s>, [INST],
[/INST], <<SYS>>, <</SYS>>, 256 byte tokens, then normal pieces) and the JSON says so.

Outputs per fixture NAME in tests/fixtures/models/:
  NAME.gguf          the model
  NAME.logits.f32    little-endian f32, row-major [n_prompt + 1, n_vocab]: the logits after
                     each prompt position, then after the last position of prompt + greedy
                     (position n_prompt + 31: checks decoding through the KV cache)
  NAME.json          config, tensor types, prompt ids, logits shape and positions, greedy
                     ids with llama.cpp's top-1 logit and top-1/top-2 gap per step, the
                     exact-f64-vs-llama.cpp NMSE floor, oracle info

Environment: python3 with tests/gen/requirements-fixtures.txt installed.
Usage:  python3 tests/gen/gen_model_fixtures.py [--only NAME] [--out DIR] [--synthetic-vocab]

Rerun it whenever tests/fixtures/tokenizer/vocab.tsv changes. The outputs are
deterministic (fixed seeds; llama.cpp with 2 threads), byte for byte on one machine.
"""

import argparse
import ctypes
import json
import os
import sys

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "models"))
VOCAB_TSV = os.path.normpath(os.path.join(HERE, "..", "fixtures", "tokenizer", "vocab.tsv"))

N_PROMPT = 16
N_GREEDY = 32
N_CTX = 64
N_THREADS = 2
SYNTH_VOCAB_SIZE = 4000
MIN_DISTINCT = 16
MIN_GAP = 0.02
# Target standard deviation of the logits: peaked enough that greedy picks are not ties.
LOGIT_STD = 3.0

SPECIAL = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"]
# gguf token types
TT_NORMAL, TT_UNKNOWN, TT_CONTROL, TT_USER_DEFINED, TT_BYTE = 1, 2, 3, 4, 6

FIXTURES = [
    dict(
        name="ahma_like_legacy",
        seed=3200,
        n_embd=800,
        n_head=8,
        n_head_kv=8,
        n_ff=864,
        n_layer=1,
        residual_ratio=0.1,
        token_embd="Q4_0",
        output="F16",
        layers=[
            dict(attn_q="Q4_0", attn_k="Q4_1", attn_v="Q5_0", attn_output="Q5_1",
                 ffn_gate="Q8_0", ffn_up="IQ4_NL", ffn_down="IQ4_NL"),
        ],
    ),
    dict(
        name="kquant_gqa",
        seed=4096,
        n_embd=256,
        n_head=4,
        n_head_kv=2,
        n_ff=768,
        n_layer=2,
        residual_ratio=0.05,
        token_embd="Q2_K",
        output="F16",
        layers=[
            dict(attn_q="Q2_K", attn_k="Q3_K", attn_v="Q4_K", attn_output="Q5_K",
                 ffn_gate="IQ4_XS", ffn_up="Q6_K", ffn_down="Q4_K"),
            dict(attn_q="Q5_K", attn_k="F32", attn_v="BF16", attn_output="Q3_K",
                 ffn_gate="Q2_K", ffn_up="IQ4_XS", ffn_down="F16"),
        ],
    ),
    dict(
        name="ahma_q4km_layout",
        seed=3201,
        n_embd=384,
        n_head=6,
        n_head_kv=6,
        n_ff=864,
        n_layer=2,
        residual_ratio=0.1,
        token_embd="Q5_0",
        output="F16",
        layers=[
            dict(attn_q="Q5_0", attn_k="Q5_0", attn_v="Q5_0", attn_output="Q5_0",
                 ffn_gate="Q5_0", ffn_up="Q5_0", ffn_down="Q5_0"),
            dict(attn_q="Q5_0", attn_k="Q5_0", attn_v="Q8_0", attn_output="Q5_0",
                 ffn_gate="Q5_0", ffn_up="Q5_0", ffn_down="Q8_0"),
        ],
    ),
]

ALL_TYPES = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL",
             "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"}


# --------------------------------------------------------------------------- vocabulary


def load_vocab(force_synthetic=False):
    """(tokens, scores, types, source) from the tokenizer fixture, or a synthetic one."""
    if os.path.exists(VOCAB_TSV) and not force_synthetic:
        tokens, scores, types = [], [], []
        with open(VOCAB_TSV, encoding="utf-8") as fh:
            for line in fh:
                line = line.rstrip("\n")
                if not line or line.startswith("#"):
                    continue
                idx, rest = line.split("\t", 1)
                piece, score, ty = rest.rsplit("\t", 2)
                assert int(idx) == len(tokens), "vocab.tsv ids must be dense"
                tokens.append(piece)
                scores.append(float(score))
                types.append(int(ty))
        assert tokens[:7] == SPECIAL, "expected Ahma's special tokens at ids 0..6"
        return tokens, scores, types, "tests/fixtures/tokenizer/vocab.tsv"
    return synthetic_vocab(SYNTH_VOCAB_SIZE) + ("synthetic",)


def synthetic_vocab(size):
    tokens = list(SPECIAL) + [f"<0x{b:02X}>" for b in range(256)]
    types = [TT_UNKNOWN, TT_CONTROL, TT_CONTROL] + [TT_USER_DEFINED] * 4 + [TT_BYTE] * 256
    letters = "aeinstulkomrvjhpydögäbcfwxzqå"
    pieces, seen = [], set(tokens)

    def push(p):
        if p not in seen:
            seen.add(p)
            pieces.append(p)

    for c in letters + "▁":
        push(c)
    for a in letters:
        for b in letters:
            push("▁" + a + b)
            push(a + b)
    for a in letters:
        for b in letters:
            for c in letters:
                push(a + b + c)
    need = size - len(tokens)
    tokens += pieces[:need]
    types += [TT_NORMAL] * need
    scores = [0.0] * len(SPECIAL) + [0.0] * 256 + [-float(i) for i in range(need)]
    return tokens, scores, types


# --------------------------------------------------------------------------- quantization


class GgmlQuantizer:
    """llama.cpp's own row quantizer, called through the libggml inside llama-cpp-python."""

    def __init__(self):
        import llama_cpp

        libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
        names = [n for n in os.listdir(libdir) if n.startswith("libggml-base")]
        if not names:
            raise RuntimeError(f"libggml-base not found in {libdir}")
        self.lib = ctypes.CDLL(os.path.join(libdir, names[0]))
        self.lib.ggml_quantize_chunk.restype = ctypes.c_size_t
        self.lib.ggml_quantize_chunk.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
            ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
        ]
        self.lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
        self.lib.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]

    def quantize(self, x, qtype):
        x = np.ascontiguousarray(x, dtype=np.float32)
        rows, n_per_row = x.shape
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        assert n_per_row % block == 0, f"{qtype.name}: row {n_per_row} not a multiple of {block}"
        assert not self.lib.ggml_quantize_requires_imatrix(int(qtype))
        row_bytes = n_per_row // block * type_size
        out = np.zeros((rows, row_bytes), dtype=np.uint8)
        written = self.lib.ggml_quantize_chunk(
            int(qtype), x.ctypes.data, out.ctypes.data, 0, rows, n_per_row, None)
        assert written == out.nbytes, (written, out.nbytes)
        return out


def encode(quantizer, x, type_name):
    """(array for GGUFWriter.add_tensor, raw_dtype or None) for weight x of numpy shape (rows, n_in)."""
    qtype = T[type_name]
    if qtype == T.F32:
        return x.astype(np.float32), None
    if qtype == T.F16:
        return x.astype(np.float16), None
    if qtype == T.BF16:
        return gguf.quants.quantize(x.astype(np.float32), T.BF16), T.BF16
    return quantizer.quantize(x, qtype), qtype


# --------------------------------------------------------------------------- model


def make_weights(fx, n_vocab):
    """Random float32 weights in numpy layout (n_out, n_in) keyed by GGUF tensor name."""
    rng = np.random.default_rng(fx["seed"])
    d, f = fx["n_embd"], fx["n_ff"]
    hd = d // fx["n_head"]
    kv = hd * fx["n_head_kv"]
    r = fx["residual_ratio"]

    def normal(shape, std):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def norm_weight(n):
        return (1.0 + rng.standard_normal(n) * 0.1).astype(np.float32)

    w = {"token_embd.weight": normal((n_vocab, d), 1.0)}
    for l in range(fx["n_layer"]):
        p = f"blk.{l}."
        w[p + "attn_norm.weight"] = norm_weight(d)
        # q/k/v see a unit-RMS input: 1/sqrt(n_in) keeps them at unit scale, so the
        # attention scores q.k/sqrt(head_dim) have unit spread and attention is neither
        # uniform nor one-hot.
        w[p + "attn_q.weight"] = normal((d, d), 1.0 / np.sqrt(d))
        w[p + "attn_k.weight"] = normal((kv, d), 1.0 / np.sqrt(d))
        w[p + "attn_v.weight"] = normal((kv, d), 1.0 / np.sqrt(d))
        # attention averages value vectors (RMS ~0.6), the o projection brings it to r.
        w[p + "attn_output.weight"] = normal((d, d), r / 0.6 / np.sqrt(d))
        w[p + "ffn_norm.weight"] = norm_weight(d)
        w[p + "ffn_gate.weight"] = normal((f, d), 1.0 / np.sqrt(d))
        w[p + "ffn_up.weight"] = normal((f, d), 1.0 / np.sqrt(d))
        # silu(g)*u with unit-normal g, u has RMS ~0.6.
        w[p + "ffn_down.weight"] = normal((d, f), r / 0.6 / np.sqrt(f))
    w["output_norm.weight"] = norm_weight(d)
    w["output.weight"] = normal((n_vocab, d), LOGIT_STD / np.sqrt(d))
    return w


def tensor_type(fx, name):
    if name.endswith("norm.weight"):
        return "F32"
    if name == "token_embd.weight":
        return fx["token_embd"]
    if name == "output.weight":
        return fx["output"]
    _, l, short, _ = name.split(".")
    return fx["layers"][int(l)][short]


def write_gguf(path, fx, vocab, quantizer):
    tokens, scores, types, _ = vocab
    d = fx["n_embd"]
    w = make_weights(fx, len(tokens))
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(fx["name"])
    writer.add_context_length(2048)
    writer.add_embedding_length(d)
    writer.add_block_count(fx["n_layer"])
    writer.add_feed_forward_length(fx["n_ff"])
    writer.add_head_count(fx["n_head"])
    writer.add_head_count_kv(fx["n_head_kv"])
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(d // fx["n_head"])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(True)

    stored = {}
    for name, x in w.items():
        ty = tensor_type(fx, name)
        arr, raw = encode(quantizer, x, ty)
        if raw is None:
            writer.add_tensor(name, arr)
        else:
            writer.add_tensor(name, arr, raw_shape=arr.shape, raw_dtype=raw)
        stored[name] = (ty, arr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return stored


# --------------------------------------------------------------------------- exact forward


def exact_forward(path, fx, ids):
    """float64 numpy forward over the dequantized weights: llama.cpp's rounding floor."""
    reader = gguf.GGUFReader(path)
    W = {}
    for t in reader.tensors:
        W[t.name] = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64)
    d, nh, nkv = fx["n_embd"], fx["n_head"], fx["n_head_kv"]
    hd = d // nh
    eps = 1e-6

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g

    def rope(x, pos):  # x (T, heads, hd), adjacent pairs
        i = np.arange(hd // 2)
        theta = pos[:, None] * 10000.0 ** (-2.0 * i / hd)
        c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    n = len(ids)
    pos = np.arange(n, dtype=np.float64)
    h = W["token_embd.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(fx["n_layer"]):
        p = f"blk.{l}."
        x = rms(h, W[p + "attn_norm.weight"])
        q = rope((x @ W[p + "attn_q.weight"].T).reshape(n, nh, hd), pos)
        k = rope((x @ W[p + "attn_k.weight"].T).reshape(n, nkv, hd), pos)
        v = (x @ W[p + "attn_v.weight"].T).reshape(n, nkv, hd)
        g = nh // nkv
        att = np.empty((n, nh, hd))
        for hh in range(nh):
            s = q[:, hh] @ k[:, hh // g].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            att[:, hh] = s @ v[:, hh // g]
        h = h + att.reshape(n, d) @ W[p + "attn_output.weight"].T
        x = rms(h, W[p + "ffn_norm.weight"])
        a = x @ W[p + "ffn_gate.weight"].T
        u = x @ W[p + "ffn_up.weight"].T
        h = h + (a / (1.0 + np.exp(-a)) * u) @ W[p + "ffn_down.weight"].T
    return rms(h, W["output_norm.weight"]) @ W["output.weight"].T


def nmse(a, ref):
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.sum((a - ref) ** 2) / np.sum(ref**2))


# --------------------------------------------------------------------------- oracle


def run_llama_cpp(path, prompt, n_vocab):
    """llama.cpp's logits for the prompt, its greedy continuation, and the logits after it.

    Returns (prompt_logits [n_prompt, n_vocab], greedy ids, top-1 logit per greedy step,
    top-1 minus top-2 gap per greedy step, logits of the last position of prompt+greedy).
    """
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(model_path=path, logits_all=True, n_ctx=N_CTX, n_threads=N_THREADS,
                n_threads_batch=N_THREADS, seed=0, verbose=False)
    assert llm.n_vocab() == n_vocab
    llm.reset()
    llm.eval(prompt)
    logits = np.array(llm.scores[: len(prompt)], dtype=np.float32)
    greedy, top1, gaps = [], [], []
    for _ in range(N_GREEDY):
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        tok = int(np.argmax(row))
        second = np.partition(row, -2)[-2]
        greedy.append(tok)
        top1.append(float(row[tok]))
        gaps.append(float(row[tok] - second))
        llm.eval([tok])
    final = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)

    # Cross-check with llama.cpp's own greedy sampler (temperature 0).
    llm.reset()
    sampled = []
    for tok in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0,
                            repeat_penalty=1.0, reset=True):
        sampled.append(int(tok))
        if len(sampled) == N_GREEDY:
            break
    if sampled != greedy:
        sys.exit(f"llama.cpp's greedy sampler disagrees with argmax: {sampled} vs {greedy}")
    del llm
    return logits, greedy, top1, gaps, final, llama_cpp.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="generate just this fixture")
    ap.add_argument("--out", default=OUT, help="output directory (default: tests/fixtures/models)")
    ap.add_argument("--synthetic-vocab", action="store_true",
                    help="ignore tests/fixtures/tokenizer/vocab.tsv (to try the fallback)")
    args = ap.parse_args()
    out_dir = args.out

    covered = {fx["token_embd"] for fx in FIXTURES} | {fx["output"] for fx in FIXTURES} | {"F32"}
    for fx in FIXTURES:
        for layer in fx["layers"]:
            covered |= set(layer.values())
    assert covered == ALL_TYPES, f"type coverage: missing {ALL_TYPES - covered}"

    os.makedirs(out_dir, exist_ok=True)
    vocab = load_vocab(args.synthetic_vocab)
    tokens, _, types, source = vocab
    print(f"vocabulary: {len(tokens)} tokens from {source}")
    quantizer = GgmlQuantizer()
    normal_ids = [i for i, t in enumerate(types) if t == TT_NORMAL]

    for fx in FIXTURES:
        if args.only and fx["name"] != args.only:
            continue
        name = fx["name"]
        path = os.path.join(out_dir, name + ".gguf")
        stored = write_gguf(path, fx, vocab, quantizer)
        # Prompt: <s> + random normal tokens. A prompt is kept only if llama.cpp's greedy
        # continuation visits at least MIN_DISTINCT tokens (a quiet random model can fall
        # into a 2-cycle at once, which tests little) and every greedy step wins by at
        # least MIN_GAP (so rounding differences cannot flip a near-tie).
        for attempt in range(50):
            rng = np.random.default_rng(fx["seed"] + 1 + attempt)
            prompt = [1] + [int(i) for i in rng.choice(normal_ids, N_PROMPT - 1, replace=False)]
            logits, greedy, top1, gaps, final, version = run_llama_cpp(path, prompt, len(tokens))
            if len(set(greedy)) >= MIN_DISTINCT and min(gaps) >= MIN_GAP:
                break
        else:
            sys.exit(f"{name}: no prompt with a non-degenerate greedy continuation")
        floor = nmse(exact_forward(path, fx, prompt), logits)

        logits_file = name + ".logits.f32"
        np.concatenate([logits, final[None, :]]).astype("<f4").tofile(os.path.join(out_dir, logits_file))
        hist = {}
        for ty, _ in stored.values():
            hist[ty] = hist.get(ty, 0) + 1
        meta = {
            "name": name,
            "gguf": name + ".gguf",
            "generator": "tests/gen/gen_model_fixtures.py",
            "oracle": f"llama-cpp-python {version} (Llama.eval, logits_all, n_threads {N_THREADS})",
            "vocabulary": source,
            "config": {
                "n_embd": fx["n_embd"], "n_layer": fx["n_layer"], "n_ff": fx["n_ff"],
                "n_head": fx["n_head"], "n_head_kv": fx["n_head_kv"],
                "head_dim": fx["n_embd"] // fx["n_head"], "n_vocab": len(tokens),
                "rms_eps": 1e-6, "rope_base": 10000.0, "n_ctx_train": 2048,
            },
            "tensor_types": {k: v[0] for k, v in stored.items()},
            "type_histogram": dict(sorted(hist.items())),
            "prompt_ids": prompt,
            "prompt_attempt": attempt,
            "logits_file": logits_file,
            "logits_shape": [len(prompt) + 1, len(tokens)],
            "logits_positions": list(range(len(prompt))) + [len(prompt) + N_GREEDY - 1],
            "greedy_ids": greedy,
            "greedy_top_logit": top1,
            "greedy_gap": gaps,
            "exact_f64_vs_llama_cpp_nmse": floor,
        }
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=1)
            fh.write("\n")
        size = os.path.getsize(path)
        print(f"{name}: {size / 1e6:.2f} MB, types {meta['type_histogram']}, "
              f"exact-vs-llama.cpp NMSE {floor:.2e}, greedy {greedy}")


if __name__ == "__main__":
    main()
