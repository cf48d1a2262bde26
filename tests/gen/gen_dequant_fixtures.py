#!/usr/bin/env python3
"""Writes the dequantization and GGUF-parsing oracle fixtures for `ahma-gguf`.

Oracle: gguf-py (`pip install -r tests/gen/requirements-fixtures.txt`, gguf==0.19.0).

Outputs, under tests/fixtures/dequant/:
  <TYPE>.bin    raw blocks of ggml type TYPE
  <TYPE>.f32    gguf.quants.dequantize(<TYPE>.bin) as little-endian f32
  index.json    {"types": [{"type", "id", "blocks", "block_elems", "block_bytes"}...],
                 "gguf": [...]} (see below)
  tiny-llama.gguf / align64.gguf
                small GGUF files written by gguf.GGUFWriter; index.json "gguf" entries hold
                what gguf.GGUFReader reads back from them (metadata with value types,
                tensor table, data offset, and an FNV-1a-64 hash of each tensor's bytes).

Blocks: gguf.quants.quantize() of random data where gguf-py can quantize (F16, BF16,
Q4_0, Q4_1, Q5_0, Q5_1, Q8_0); for the other types random bytes with "sane" f16 scale
fields: ordinary, negative, zero, tiny/subnormal and large scales, and one block per type
whose quant bytes cover every nibble value. F32/F16/BF16 also get special values
(infinities, signed zeros, subnormals); F16 includes every non-NaN bit pattern.

Run from the repository root:  python3 tests/gen/gen_dequant_fixtures.py
"""

import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "dequant")
rng = np.random.default_rng(20261127)

# f16 scale values that exercise sign, zero, subnormal and large magnitudes.
SCALES = [0.01, -0.01, 0.0, -0.0, 1.0, 2.5e-3, 6.0e-8, -3.0e-5, 0.125, 1000.0, -7.0, 0.3]

TYPES = [
    T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
    T.IQ4_NL, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.IQ4_XS,
]

# Byte offsets of the f16 scale fields inside one block, for the random-byte types.
F16_FIELDS = {
    T.IQ4_NL: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
    T.IQ4_XS: [0],
}


def f16_bytes(x):
    return np.frombuffer(np.float16(x).tobytes(), np.uint8)


def random_blocks(qt, n_blocks):
    """Random block bytes with sane f16 scales (NaN/Inf never appear in scale fields)."""
    _, type_size = gguf.GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    for b in range(n_blocks):
        for k, off in enumerate(F16_FIELDS[qt]):
            raw[b, off:off + 2] = f16_bytes(SCALES[(b + 3 * k) % len(SCALES)])
    # Block 0: every byte value in turn across the quant bytes, so every nibble and
    # every 2-bit / high-bit pattern occurs.
    fields = {o for off in F16_FIELDS[qt] for o in (off, off + 1)}
    free = [i for i in range(type_size) if i not in fields]
    raw[0, free] = (np.arange(len(free)) * 7 + 3) % 256
    raw[0, F16_FIELDS[qt][0]:F16_FIELDS[qt][0] + 2] = f16_bytes(0.5)
    return raw


def float_values(n):
    x = (rng.standard_normal(n) * rng.choice([1e-3, 1.0, 100.0], n)).astype(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1e-40, -1e-45, 65504.0, 3.4e38, -1.0, 1.0], np.float32)
    x[: len(special)] = special
    return x


def make_blocks(qt):
    block_elems, type_size = gguf.GGML_QUANT_SIZES[qt]
    if qt == T.F32:
        return float_values(512).view(np.uint8).reshape(-1, 4)
    if qt == T.F16:
        bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
        is_nan = ((bits & 0x7C00) == 0x7C00) & ((bits & 0x03FF) != 0)
        bits = bits[~is_nan]  # NaN payloads differ between conversion paths; keep Inf
        return bits.view(np.uint8).reshape(-1, 2)
    if qt == T.BF16:
        q = quantize(float_values(512), qt)
        return np.ascontiguousarray(q).view(np.uint8).reshape(-1, 2)
    if qt in F16_FIELDS:
        return random_blocks(qt, 24)
    # Legacy quants: quantize() random rows (scaled differently per block), plus an
    # all-zero block, a constant block and a block with a huge range.
    n_blocks = 24
    x = rng.standard_normal((n_blocks, block_elems)).astype(np.float32)
    x *= np.array([10.0 ** rng.integers(-4, 3) for _ in range(n_blocks)], np.float32)[:, None]
    x[1] = 0.0
    x[2] = 0.75
    x[3, ::2] = 3e4
    x[4] = -np.abs(x[4])
    q = quantize(x.reshape(-1), qt).reshape(n_blocks, type_size)
    return q


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def json_value(field):
    """A GGUF metadata value read by GGUFReader as {"type": id, "value": ...}.

    Floats are written as their IEEE bit patterns ("f32bits"/"f64bits") so the Rust test
    compares them exactly."""
    types = field.types
    def scalar(t, part):
        if t == gguf.GGUFValueType.STRING:
            return bytes(part).decode("utf-8")
        v = part[0]
        if t == gguf.GGUFValueType.FLOAT32:
            return {"f32bits": int(np.float32(v).view(np.uint32))}
        if t == gguf.GGUFValueType.FLOAT64:
            return {"f64bits": int(np.float64(v).view(np.uint64))}
        if t == gguf.GGUFValueType.BOOL:
            return bool(v)
        return int(v)
    if types[0] == gguf.GGUFValueType.ARRAY and types[1] == gguf.GGUFValueType.ARRAY:
        # Array of arrays of scalars: parts are [key len, key, type, elem type, count,
        # then per inner array: elem type, count, values...].
        count = int(field.parts[4][0])
        i, items = 5, []
        for _ in range(count):
            sub, n = gguf.GGUFValueType(int(field.parts[i][0])), int(field.parts[i + 1][0])
            items.append({"type": 9, "elem_type": int(sub),
                          "value": [scalar(sub, field.parts[i + 2 + k]) for k in range(n)]})
            i += 2 + n
        return {"type": 9, "elem_type": 9, "value": items}
    if types[0] == gguf.GGUFValueType.ARRAY:
        sub = types[1]
        items = [scalar(sub, field.parts[i]) for i in field.data]
        return {"type": 9, "elem_type": int(sub), "value": items}
    return {"type": int(types[0]), "value": scalar(types[0], field.parts[field.data[0]])}


def describe_gguf(path):
    r = gguf.GGUFReader(path)
    meta = []
    for name, field in r.fields.items():
        if name.startswith("GGUF."):
            continue  # reader pseudo-fields (version, counts)
        meta.append({"key": name, **json_value(field)})
    tensors = []
    for t in r.tensors:
        raw = bytes(np.ascontiguousarray(t.data).view(np.uint8).reshape(-1))
        tensors.append({
            "name": t.name,
            "dims": [int(d) for d in t.shape],  # GGUFReader's shape is ggml ne order
            "type": int(t.tensor_type),
            "offset": int(t.data_offset - r.data_offset),
            "n_bytes": int(t.n_bytes),
            "fnv1a64": f"{fnv1a64(raw):016x}",
        })
    return {
        "file": os.path.basename(path),
        "version": int(r.fields["GGUF.version"].parts[-1][0]),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": meta,
        "tensors": tensors,
    }


def write_tiny_llama(path):
    """A two-layer Llama with GQA whose tensors use every one of the 15 types."""
    D, F, H, HKV, V = 256, 512, 4, 2, 12
    head_dim = D // H
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(128)
    w.add_embedding_length(D)
    w.add_block_count(2)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(head_dim)
    w.add_file_type(7)
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "▁a", "▁kissa", "ä", "ö", "<0x0A>"]
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * 7 + [-1.0, -2.0, -3.0, -4.0, -5.0])
    w.add_token_types([2, 3, 3, 4, 4, 4, 4, 1, 1, 1, 1, 6])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_space_prefix(True)
    w.add_chat_template("{{ bos_token }}[INST] {{ messages[0]['content'] }} [/INST]")
    # Every value type, including nested arrays and 64-bit widths.
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", -1.25e-7)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 3.141592653589793)
    w.add_bool("test.bool", False)
    w.add_string("test.str", "Hyvää päivää")
    w.add_array("test.nested", [[1, 2, 3], [4, 5]])

    def add(name, qt, rows, cols):
        block_elems, type_size = gguf.GGML_QUANT_SIZES[qt]
        if qt in F16_FIELDS:
            raw = random_blocks(qt, rows * cols // block_elems).reshape(rows, -1)
            w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qt)
        elif qt == T.F32:
            w.add_tensor(name, (1.0 + 0.1 * rng.standard_normal((rows, cols))).astype(np.float32).reshape(-1 if rows == 1 else rows, cols) if rows > 1 else (1.0 + 0.1 * rng.standard_normal(cols)).astype(np.float32))
        else:
            x = (0.05 * rng.standard_normal((rows, cols))).astype(np.float32)
            q = quantize(x, qt)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qt)

    kv = HKV * head_dim
    add("token_embd.weight", T.Q8_0, V, D)
    layer_types = [
        [T.Q4_K, T.Q5_K, T.Q3_K, T.Q2_K, T.IQ4_XS, T.IQ4_NL, T.Q6_K],
        [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0],
    ]
    for l, (tq, tk, tv, to, tg, tu, td) in enumerate(layer_types):
        add(f"blk.{l}.attn_norm.weight", T.F32, 1, D)
        add(f"blk.{l}.attn_q.weight", tq, D, D)
        add(f"blk.{l}.attn_k.weight", tk, kv, D)
        add(f"blk.{l}.attn_v.weight", tv, kv, D)
        add(f"blk.{l}.attn_output.weight", to, D, D)
        add(f"blk.{l}.ffn_norm.weight", T.F32, 1, D)
        add(f"blk.{l}.ffn_gate.weight", tg, F, D)
        add(f"blk.{l}.ffn_up.weight", tu, F, D)
        add(f"blk.{l}.ffn_down.weight", td, D, F)
    add("output_norm.weight", T.F32, 1, D)
    add("output.weight", T.Q6_K, V, D)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_micro_llama(path):
    """A one-layer Llama of a few kilobytes (seed for the fuzzer, quick LlamaConfig tests)."""
    D, F, H, V = 32, 64, 2, 4
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(16)
    w.add_embedding_length(D)
    w.add_block_count(1)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_token_list(["<unk>", "<s>", "</s>", "▁a"])
    def q(name, rows, cols, qt):
        x = (0.1 * rng.standard_normal((rows, cols))).astype(np.float32)
        if qt == T.F32:
            w.add_tensor(name, x.reshape(-1) if rows == 1 else x)
        else:
            b = quantize(x, qt)
            w.add_tensor(name, b, raw_shape=b.shape, raw_dtype=qt)
    q("token_embd.weight", V, D, T.Q8_0)
    q("blk.0.attn_norm.weight", 1, D, T.F32)
    q("blk.0.attn_q.weight", D, D, T.Q4_0)
    q("blk.0.attn_k.weight", D, D, T.Q4_1)
    q("blk.0.attn_v.weight", D, D, T.Q5_0)
    q("blk.0.attn_output.weight", D, D, T.Q5_1)
    q("blk.0.ffn_norm.weight", 1, D, T.F32)
    q("blk.0.ffn_gate.weight", F, D, T.F16)
    q("blk.0.ffn_up.weight", F, D, T.BF16)
    q("blk.0.ffn_down.weight", D, F, T.Q8_0)
    q("output_norm.weight", 1, D, T.F32)
    q("output.weight", V, D, T.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_align64(path):
    """Custom alignment, odd-sized tensors (so padding appears between them), a 3-D tensor."""
    w = gguf.GGUFWriter(path, "test")
    w.add_custom_alignment(64)
    w.add_string("general.name", "align64")
    w.add_tensor("a", np.arange(3, dtype=np.float32))
    w.add_tensor("b", np.arange(2 * 3 * 5, dtype=np.float16).reshape(2, 3, 5))
    q = quantize((0.1 * rng.standard_normal((3, 32))).astype(np.float32), T.Q4_0)
    w.add_tensor("c", q, raw_shape=q.shape, raw_dtype=T.Q4_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    index = {"generator": "tests/gen/gen_dequant_fixtures.py", "gguf_py": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0", "types": [], "gguf": []}
    for qt in TYPES:
        block_elems, type_size = gguf.GGML_QUANT_SIZES[qt]
        blocks = np.ascontiguousarray(make_blocks(qt), dtype=np.uint8)
        assert blocks.shape[1] == type_size, (qt, blocks.shape)
        out = dequantize(blocks.reshape(-1), qt).astype(np.float32)
        assert out.size == blocks.shape[0] * block_elems
        name = qt.name
        blocks.tofile(os.path.join(OUT, f"{name}.bin"))
        out.astype("<f4").tofile(os.path.join(OUT, f"{name}.f32"))
        index["types"].append({"type": name, "id": int(qt), "blocks": int(blocks.shape[0]),
                               "block_elems": block_elems, "block_bytes": type_size})
    for fname, writer in [("tiny-llama.gguf", write_tiny_llama), ("micro-llama.gguf", write_micro_llama),
                          ("align64.gguf", write_align64)]:
        path = os.path.join(OUT, fname)
        writer(path)
        index["gguf"].append(describe_gguf(path))
    with open(os.path.join(OUT, "index.json"), "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1, ensure_ascii=False)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
