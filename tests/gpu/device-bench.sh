#!/usr/bin/env bash
# One-call GPU benchmark for a lent machine with no network (see BENCHMARKS.md).
# Needs: a release `ahma` binary built elsewhere (AHMA_BIN, default .devbin/ahma),
# the Vulkan loader .debs in .gl/ (unpacked here), PyTorch + transformers for the
# peer row (SKIP_PEER=1 leaves it out; QUICK=1 leaves out the runs that repeat earlier A/Bs,
# SKIP_MATMUL_SWEEP=1 the mat-mul tile sweep; BUDGET_S, default 270, is the second after which no further
# benchmark run, llama.cpp run or kernel sweep starts: the runs are ordered most wanted first, and
# the PyTorch peer (up to 100 s) and the summary still follow, so keep it about three minutes
# under the call's limit, five with the peer: e.g. SKIP_PEER=1 BUDGET_S=420 for one 600-s call). `--profile` runs add GPU time per operation. Writes everything to ${OUT:-/tmp/ahma-bench}, ending with summary.txt (one line per run). Finishes in a few minutes.
#
# Peer on the same GPU: llama.cpp's own Vulkan backend, run by its `llama-bench` when an executable
# is given as LLAMA_BENCH (default .devbin/llama-bench; .devbin/ is git-ignored and is carried to the
# device machine like the ahma binary). Shared libraries the binary needs and a minimal machine may
# lack (libgomp.so.1, libssl.so.3, libcrypto.so.3) go beside it in .devbin/lib, which is put on
# LD_LIBRARY_PATH for llama-bench only. How that binary is built on the development machine:
#   pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36   # the PyPI sdist
#   tar xzf llama_cpp_python-0.3.36.tar.gz && cd llama_cpp_python-0.3.36/vendor/llama.cpp
#   cmake -B build -G Ninja -DGGML_VULKAN=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF \
#         -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DCMAKE_BUILD_TYPE=Release
#   ninja -C build -j2 llama-bench
# (Debian 12: needs cmake, ninja-build, libvulkan-dev, spirv-headers and glslc. Its glslc 2023.2
# lacks the cooperative-matrix and integer-dot-product GLSL extensions, so llama.cpp compiles
# those shader paths out: its prefill on
# the H100 then runs without tensor cores, and its quantised mat-vecs without integer dot products.
# Its Vulkan headers, 1.3.239, lack VK_EXT_layer_settings, used by ggml_vk_instance_init only for
# the validation layer: wrap that block (from `VkBool32 enable_best_practice` to the
# `vk::InstanceCreateInfo` line) in `#ifdef VK_EXT_layer_settings`, with an `#else` that creates
# the InstanceCreateInfo without the pNext.) Then pack it with the libraries:
#   mkdir -p pack/lib && strip -o pack/llama-bench build/bin/llama-bench
#   for l in libgomp.so.1 libssl.so.3 libcrypto.so.3; do cp -L "$(gcc -print-file-name=$l)" pack/lib/; done
#   tar -C pack -cJf <repo>/.devbin/llama-bench.tar.xz llama-bench lib
# The binary is 38 MB stripped (mostly llama.cpp's SPIR-V shaders) and the carry limit is 64 MiB for
# everything, so .devbin holds it packed (8 MB); this script unpacks it into .devbin/ when
# .devbin/llama-bench is absent. llama.cpp skips CPU Vulkan devices unless GGML_VK_VISIBLE_DEVICES
# names them (GGML_VK_VISIBLE_DEVICES=0 runs it on lavapipe); on the GPU machine it takes the GPU.
set -uo pipefail
SECONDS=0
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/ahma-bench}"
mkdir -p "$OUT"
BIN="${AHMA_BIN:-.devbin/ahma}"
MODELS="${MODELS_DIR:-/tmp/ahma-models}"
mkdir -p "$MODELS"
log() { echo "== $*" | tee -a "$OUT/log.txt"; }

if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi

log "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv; nproc; } 2>&1 | tee -a "$OUT/log.txt"

log "measured device bandwidth (PyTorch device-to-device copy, bytes read + written)"
python3 - <<'PY' 2>&1 | tee "$OUT/bandwidth.txt" | tee -a "$OUT/log.txt"
import torch, time
n = 2 * 1024**3 // 4
a = torch.empty(n, dtype=torch.float32, device="cuda"); b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
torch.cuda.synchronize(); t = time.perf_counter(); r = 20
for _ in range(r): b.copy_(a)
torch.cuda.synchronize(); dt = (time.perf_counter() - t) / r
print(f"copy_GBps {2 * a.numel() * 4 / dt / 1e9:.1f}")
PY

run_bench() { # name, args...
    local name="$1"; shift
    if [ "$SECONDS" -gt "${BUDGET_S:-270}" ]; then log "skip $name (time budget)"; return; fi
    log "bench $name: $*"
    timeout 90 "$BIN" bench "$@" --json > "$OUT/bench-$name.json" 2>> "$OUT/log.txt"
    echo "rc=$?" >> "$OUT/log.txt"; cat "$OUT/bench-$name.json" | tee -a "$OUT/log.txt"
}
synth() { # preset, mix
    local f="$MODELS/$1-$2.gguf"
    [ -f "$f" ] || "$BIN" synth "$f" --preset "$1" --mix "$2" >/dev/null || log "synth $1 $2 failed" >&2
    echo "$f"
}
log "correctness on this GPU: greedy continuations of the llama.cpp fixtures"
for fx in tests/fixtures/models/*.json; do
    python3 - "$BIN" "$fx" <<'PY' 2>&1 | tee -a "$OUT/log.txt"
import json, subprocess, sys, os
binary, fx = sys.argv[1], sys.argv[2]
d = json.load(open(fx))
gguf = os.path.join(os.path.dirname(fx), d["gguf"])
for extra in ([], ["--force-f32"]):
    cmd = [binary, "generate", gguf, "--tokens", ",".join(map(str, d["prompt_ids"])), "--greedy",
           "-n", str(len(d["greedy_ids"])), "--ignore-eos", "--json"] + extra
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    try:
        ids = json.loads(r.stdout)["ids"]
    except Exception:
        print(f"{d['name']} {extra}: FAILED to run: {r.stderr[-500:]}"); continue
    ok = ids == d["greedy_ids"]
    print(f"{d['name']} {' '.join(extra) or 'default path'}: greedy {len(ids)} ids {'EQUAL to llama.cpp' if ok else 'DIFFER from llama.cpp: ' + str(ids)}")
PY
done

# Most important first: the run may be cut short by the lease.
M=$(synth ahma-3b q4km)
# CHECKS_SWEEP=1: only what each of wgpu's shader runtime checks costs (ahma bench --unchecked),
# in the engine and in the kernels, then stop.
if [ -n "${CHECKS_SWEEP:-}" ]; then
    for c in none loops divisions bounds all; do
        run_bench "3b-q4km-p512-unchecked-$c" "$M" --prompt-tokens 512 --gen-tokens 64 --ctx 2048 --unchecked "$c" --profile
    done
    run_bench "7b-q4km-p512-unchecked-none" "$(synth ahma-7b q4km)" --prompt-tokens 512 --gen-tokens 32 --ctx 2048 --profile
    run_bench "7b-q4km-p512-unchecked-loops" "$(synth ahma-7b q4km)" --prompt-tokens 512 --gen-tokens 32 --ctx 2048 --unchecked loops --profile
    if [ -n "${KERNEL_BENCH:-}" ] && [ -x "$KERNEL_BENCH" ]; then
        KB_OPS=matmul KB_TOKENS=64,512 KB_TYPES=q5_0,q8_0 KB_TILES=64x64 KB_LANES=none KB_PATHS=f16+sg KB_UNCHECKED="none;loops;divisions;bounds;all" \
            timeout 90 "$KERNEL_BENCH" 50 2>&1 | tee "$OUT/kernel_bench_checks_matmul.txt" | tee -a "$OUT/log.txt"
        KB_OPS=matvec KB_TYPES=q5_0,q8_0,q4_k,q6_k KB_PATHS=f16+sg KB_UNCHECKED="none;loops;divisions;bounds;all" \
            timeout 90 "$KERNEL_BENCH" 2>&1 | tee "$OUT/kernel_bench_checks_matvec.txt" | tee -a "$OUT/log.txt"
    fi
    log "done in $SECONDS s"
    exit 0
fi
# --read-probe: the best a WGSL shader streams on this GPU, and decode as a share of it.
run_bench 3b-q4km-p128 "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --profile --read-probe
# What the chat runs: the model card's sampling, the browser app's whole-context penalty window.
run_bench 3b-q4km-p128-sampled "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --sampled --penalty-window 2048 --profile
# Peer on the same GPU and files: llama.cpp's Vulkan backend (llama-bench), when carried (see the
# header). The most wanted missing figure, so it runs right after our headline runs.
LLAMA_BENCH="${LLAMA_BENCH:-.devbin/llama-bench}"
if [ ! -x "$LLAMA_BENCH" ] && [ -f "$LLAMA_BENCH.tar.xz" ]; then
    # The carried form: llama-bench plus lib/ packed (38 MB stripped, 8 MB packed).
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        "$LLAMA_BENCH.tar.xz" "$(dirname "$LLAMA_BENCH")" || tar -C "$(dirname "$LLAMA_BENCH")" -xJf "$LLAMA_BENCH.tar.xz"
fi
run_llamacpp() { # name, file
    local name="$1" file="$2" lib
    if [ "$SECONDS" -gt "${BUDGET_S:-270}" ]; then log "skip llamacpp-$name (time budget)"; return; fi
    lib="$(cd "$(dirname "$LLAMA_BENCH")" && pwd)/lib"
    log "llama.cpp Vulkan $name: llama-bench -m $file -ngl 99 -p 128,512 -n 128 -r 3"
    LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" timeout 150 "$LLAMA_BENCH" -m "$file" \
        -ngl 99 -p 128,512 -n 128 -r 3 -o json > "$OUT/llamacpp-$name.json" 2>> "$OUT/log.txt"
    echo "rc=$?" >> "$OUT/log.txt"; tee -a "$OUT/log.txt" < "$OUT/llamacpp-$name.json"
}
if [ -x "$LLAMA_BENCH" ]; then
    log "llama.cpp devices (llama-bench --list-devices)"
    LD_LIBRARY_PATH="$(cd "$(dirname "$LLAMA_BENCH")" && pwd)/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
        timeout 60 "$LLAMA_BENCH" --list-devices 2>&1 | tee -a "$OUT/log.txt"
    run_llamacpp 3b-q4km "$M"
    run_llamacpp 7b-q4km "$(synth ahma-7b q4km)"
else
    log "llama.cpp peer skipped (no executable LLAMA_BENCH: $LLAMA_BENCH)"
fi
# Prefill mat-muls in 8-bit integers and packed integer dot products (X quantized once per
# input): the automatic 4 x 4 tiles, then 8 x 8 per thread (3.1x the float default on lavapipe),
# next to the float default. The strongest candidate for the 10x prefill target, so it runs early.
run_bench 3b-q4km-p512-int8mm "$M" --prompt-tokens 512 --gen-tokens 8 --ctx 2048 --matmul-int-dot on
for tile in 64x64x8x8 64x128x8x8 128x128x8x8; do
    run_bench "3b-q4km-p512-int8mm-tile$tile" "$M" --prompt-tokens 512 --gen-tokens 8 --ctx 2048 --matmul-int-dot on --matmul-tile "$tile"
done
run_bench 3b-q4km-p512-tiledefault-early "$M" --prompt-tokens 512 --gen-tokens 8 --ctx 2048
# Decode mat-vecs with x in 8-bit integers and packed integer dot products (dp4a): fewer
# instructions per weight, if the mat-vecs are bound by issue rather than by bytes.
run_bench 3b-q4km-p128-int8 "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-int-dot on --profile
# Decode mat-vecs with other workgroup shapes (threads x rows; the GPUs' default is 128x4):
# 64x8 was the CPU adapters' default (1.5x decode on lavapipe), 128x8 reads x once per 8 rows.
run_bench 3b-q4km-p128-shape64x8 "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-shape 64x8 --profile
run_bench 3b-q4km-p128-shape128x8 "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-shape 128x8
# 256x4: twice the threads per row, so a 3200-wide row takes two loop steps instead of four and
# an 8640-wide one five instead of nine (the H100's mat-vecs look bound by those dependent steps).
run_bench 3b-q4km-p128-shape256x4 "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-shape 256x4 --profile
# Decode mat-vecs walking whole units per thread (the CPU adapters' default, with 16x8: each
# word of a Q5_0/Q8_0 block loaded once, not once per quarter), on 64 threads so that the 100
# units of a 3200-wide row still spread over most of them.
run_bench 3b-q4km-p128-blocks64x8 "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-shape 64x8 --matvec-blocks on --profile
# Prefill as the CPU adapters run it (one weight row per invocation for 16 tokens, one
# invocation per token and head in attention; decode attention 8 lanes per head): expected to
# lose to the tiles and split passes on a GPU; measured so that the defaults rest on numbers.
run_bench 3b-q4km-p128-cpu-layouts "$M" --prompt-tokens 128 --gen-tokens 32 --ctx 2048 --matmul-rows on --attention-rows on --profile
# One q/k/v mat-vec per weight type (the 13 layers with a Q8_0 attn_v: +13 dispatches): what
# walking both types in one dispatch gains.
run_bench 3b-q4km-p128-qkv-per-type "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --no-mixed-qkv --profile
# RoPE + KV write in a dispatch of its own per layer: what fusing it into q/k/v gains.
run_bench 3b-q4km-p128-rope-apart "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --no-fused-rope --profile
# Decode mat-vecs with two 32-element units per loop step (more loads in flight per thread).
run_bench 3b-q4km-p128-pairs "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-pairs on --profile
# Decode attention with longer splits: 256 keys (one split at 128 keys: no merge dispatch).
run_bench 3b-q4km-p128-split256 "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --attn-split-keys 256 --profile
# Prefill mat-mul tiles: 8 tokens (and rows) per thread, 64- and 128-wide tiles (the default is
# 64x64 with 4 x 4 per thread).
for tile in 64x64x8x4 128x64x8x4 64x64x8x8 128x64x8x8 128x128x8x8; do
    run_bench "3b-q4km-p512-tile$tile" "$M" --prompt-tokens 512 --gen-tokens 8 --ctx 2048 --matmul-tile "$tile"
done
run_bench 3b-q4km-p512-tiledefault "$M" --prompt-tokens 512 --gen-tokens 8 --ctx 2048
# The same A/Bs again, unprofiled, alternating (machines vary by a few per cent between calls).
run_bench 3b-q4km-p128-again "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048
run_bench 3b-q4km-p128-qkv-per-type-again "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --no-mixed-qkv
run_bench 3b-q4km-p128-pairs-again "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-pairs on
run_bench 3b-q4km-p128-shape256x4-again "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-shape 256x4
run_bench 3b-q4km-p128-shape256x4-pairs "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-shape 256x4 --matvec-pairs on
run_bench 3b-q4km-p128-int8-again "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-int-dot on
run_bench 3b-q4km-p128-int8-pairs "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-int-dot on --matvec-pairs on
run_bench 3b-q4km-p128-split256-again "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --attn-split-keys 256
run_bench 3b-q4km-p128-pairs-split256 "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-pairs on --attn-split-keys 256
for k in 64 256 1024; do
    run_bench "3b-q4km-ctx1024-split$k" "$M" --prompt-tokens 1024 --gen-tokens 64 --ctx 2048 --attn-split-keys "$k"
done
run_bench 7b-q4km-pairs "$(synth ahma-7b q4km)" --prompt-tokens 128 --gen-tokens 64 --ctx 2048 --matvec-pairs on
run_bench 7b-q4km-nopairs "$(synth ahma-7b q4km)" --prompt-tokens 128 --gen-tokens 64 --ctx 2048 --matvec-pairs off
run_bench 7b-q4km-qkv-per-type "$(synth ahma-7b q4km)" --prompt-tokens 128 --gen-tokens 64 --ctx 2048 --no-mixed-qkv
run_bench 7b-q4km-int8 "$(synth ahma-7b q4km)" --prompt-tokens 128 --gen-tokens 64 --ctx 2048 --matvec-int-dot on --matmul-int-dot on
run_bench 3b-q8_0-pairs "$(synth ahma-3b q8-0)" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-pairs on
# Shaders without wgpu's runtime checks: what they cost (CHECKS_SWEEP=1 splits them up).
run_bench 3b-q4km-p128-unchecked "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --unchecked all --profile
if [ -n "${SKIP_PEER:-}" ]; then log "peer skipped (SKIP_PEER)"; else
log "peer: PyTorch + transformers fp16, Ahma-3B shape, random weights, greedy decode with KV cache"
timeout 100 python3 - <<'PY' 2>&1 | tee "$OUT/torch.txt" | tee -a "$OUT/log.txt"
import time, torch, transformers
from transformers import LlamaConfig, LlamaForCausalLM
cfg = LlamaConfig(vocab_size=64256, hidden_size=3200, intermediate_size=8640, num_hidden_layers=26,
                  num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048,
                  rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False)
torch.manual_seed(0)
with torch.device("cuda"):
    model = LlamaForCausalLM(cfg).to(torch.float16).eval()
print("transformers", transformers.__version__, "torch", torch.__version__)
for prompt_len, gen in ((128, 128), (1024, 64)):
    ids = torch.randint(7, 64256, (1, prompt_len), device="cuda")
    with torch.no_grad():
        model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        torch.cuda.synchronize(); t = time.perf_counter()
        out = model(ids, use_cache=True); torch.cuda.synchronize(); tp = time.perf_counter() - t
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=gen, min_new_tokens=gen, do_sample=False)
        torch.cuda.synchronize(); tg = time.perf_counter() - t
    print(f"torch_fp16 prompt={prompt_len} prefill_tok_s={prompt_len/tp:.1f} decode_tok_s={gen/(tg-tp):.1f} (generate {gen} tokens incl. prefill {tg:.3f}s)")
PY
fi
if [ -z "${QUICK:-}" ]; then
run_bench 3b-q4km-ctx16 "$M" --prompt-tokens 16 --gen-tokens 128 --ctx 2048
# Decode steps submitted one at a time (no step ahead): what the pipelining gains.
run_bench 3b-q4km-p128-nopipe "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --no-pipeline
run_bench 3b-q4km-f32 "$M" --prompt-tokens 128 --gen-tokens 64 --ctx 2048 --force-f32
fi
run_bench 3b-q4_0 "$(synth ahma-3b q4-0)" --prompt-tokens 128 --gen-tokens 128 --ctx 2048
run_bench 3b-q4_0-int8 "$(synth ahma-3b q4-0)" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-int-dot on
run_bench 3b-q8_0 "$(synth ahma-3b q8-0)" --prompt-tokens 128 --gen-tokens 128 --ctx 2048
run_bench 3b-q8_0-int8 "$(synth ahma-3b q8-0)" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 --matvec-int-dot on
run_bench 3b-q4km-p512 "$M" --prompt-tokens 512 --gen-tokens 32 --ctx 2048 --profile
run_bench 3b-q4km-p512-int8mm-profiled "$M" --prompt-tokens 512 --gen-tokens 32 --ctx 2048 --matmul-int-dot on --profile
run_bench 3b-q4km-ctx1024 "$M" --prompt-tokens 1024 --gen-tokens 64 --ctx 2048 --profile
if [ -z "${QUICK:-}" ]; then
# Prefill batch size: bigger batches give the tiled matmul bigger grids (more workgroups).
run_bench 3b-q4km-p512-b64 "$M" --prompt-tokens 512 --gen-tokens 8 --ctx 2048 --batch 64
run_bench 3b-q4km-p512-b256 "$M" --prompt-tokens 512 --gen-tokens 8 --ctx 2048 --batch 256 --profile
fi
run_bench 7b-q4km "$(synth ahma-7b q4km)" --prompt-tokens 128 --gen-tokens 64 --ctx 2048 --profile
if [ -n "${BASELINE_BIN:-}" ] && [ -x "$BASELINE_BIN" ]; then
    # The previous engine on the same machine and files, for a like-for-like comparison.
    # BASELINE_ARGS: flags the baseline understands (e.g. --profile), added to its runs.
    BIN_SAVED="$BIN"; BIN="$BASELINE_BIN"
    run_bench baseline-3b-q4km-p128 "$M" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 ${BASELINE_ARGS:-}
    run_bench baseline-3b-q8_0 "$(synth ahma-3b q8-0)" --prompt-tokens 128 --gen-tokens 128 --ctx 2048 ${BASELINE_ARGS:-}
    BIN="$BIN_SAVED"
fi
if [ -n "${KERNEL_BENCH:-}" ] && [ -x "$KERNEL_BENCH" ] && [ "$SECONDS" -lt "${BUDGET_S:-270}" ]; then
    log "kernel sweep (crates/kernels/examples/kernel_bench.rs): matmul tiles, then mat-vec shapes"
    # KB_PATHS, KB_UNCHECKED and KB_TYPES pass through (see kernel_bench.rs).
    if [ -z "${SKIP_MATMUL_SWEEP:-}" ]; then
        KB_OPS=matmul KB_TYPES=q5_0,q8_0 KB_TOKENS=512 KB_LANES=16x16 KB_PATHS=f16+sg timeout 60 "$KERNEL_BENCH" 50 2>&1 | tee "$OUT/kernel_bench_matmul.txt" | tee -a "$OUT/log.txt"
    fi
    KB_OPS=matvec KB_PATHS=f16+sg timeout 60 "$KERNEL_BENCH" 2>&1 | tee "$OUT/kernel_bench.txt" | tee -a "$OUT/log.txt"
    # What a shader reads per second (u32, vec4 and texel loads, GPU and CPU orders): the
    # mat-vecs' ceiling next to the copy bandwidth above.
    KB_OPS=reads KB_PATHS=f16+sg timeout 30 "$KERNEL_BENCH" 2>&1 | tee -a "$OUT/kernel_bench.txt" | tee -a "$OUT/log.txt"
fi
log "summary (one line per run: prefill and decode tok/s, dispatches and CPU recording ms per token, options)"
python3 - "$OUT" <<'PY' 2>&1 | tee "$OUT/summary.txt" | tee -a "$OUT/log.txt"
import glob, json, os, sys
coop = set()
for f in sorted(glob.glob(os.path.join(sys.argv[1], "bench-*.json"))):
    try:
        d = json.load(open(f))
    except Exception:
        print(f"{os.path.basename(f)[6:-5]:34} (no result)"); continue
    opts = " ".join(f"{k}={d.get(k)}" for k in ("matvec_shape", "matvec_blocks", "matmul_rows", "attention_rows", "matvec_pairs", "matvec_int_dot", "matmul_int_dot", "attn_split_keys", "matmul_tile",
                                                  "fused_rope", "mixed_qkv", "pipeline_decode", "sampling", "unchecked")
                    if k in d)
    probe = (f"  reads {d['read_probe_gb_per_s']:.0f} GB/s, decode at {100 * d['decode_read_ratio']:.0f}% of it"
             if "read_probe_gb_per_s" in d else "")
    print(f"{os.path.basename(f)[6:-5]:34} prefill {d['prefill_tokens_per_s']:8.1f}  decode "
          f"{d['decode_tokens_per_s']:7.1f}  disp {d['dispatches_per_token']:5.1f}  cpu {d.get('cpu_record_ms_per_token', 0):5.2f} ms  {opts}{probe}")
    coop.update(d.get("cooperative_matrix") or [])
# The tensor-core shapes wgpu offers on this adapter (what a cooperative-matrix prefill could use).
print("cooperative matrices through wgpu:", ", ".join(sorted(coop)) or "none")
# llama.cpp's llama-bench (Vulkan, same GPU and files): one line per test, average tokens/s.
for f in sorted(glob.glob(os.path.join(sys.argv[1], "llamacpp-*.json"))):
    name = os.path.basename(f)[:-5]
    try:
        rows = json.load(open(f))
    except Exception:
        print(f"{name:34} (no result)"); continue
    for r in rows:
        test = f"pp{r['n_prompt']}" if r.get("n_gen", 0) == 0 else f"tg{r['n_gen']}"
        if r.get("n_prompt", 0) and r.get("n_gen", 0):
            test = f"pp{r['n_prompt']}+tg{r['n_gen']}"
        print(f"{name + ' ' + test:34} {r['avg_ts']:8.1f} tok/s (+- {r.get('stddev_ts', 0):.1f})  "
              f"{r.get('backends', '')} fa={r.get('flash_attn', '')} "
              f"{r.get('gpu_info') or 'NO GPU: ran on the CPU backend'} "
              f"build {r.get('build_commit', '')}")
PY
log "done in $SECONDS s"
