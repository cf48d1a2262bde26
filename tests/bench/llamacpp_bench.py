#!/usr/bin/env python3
"""The peer row of BENCHMARKS.md: llama.cpp (PyPI llama-cpp-python) on the same GGUF as `ahma bench`.

    python3 tests/bench/llamacpp_bench.py MODEL.gguf [--prompt-tokens 128] [--gen-tokens 32]
        [--threads N] [--gpu-layers 0] [--repeat 2]

Measures what `ahma bench` measures, the same way: prefill = one evaluation of a prompt of
`--prompt-tokens` random ids (excluding special ids) from an empty cache; decode = `--gen-tokens`
single-token evaluations after it, greedy (argmax of the last logits, as the sampler would read
them). Prints one JSON object with tokens/s; the best of `--repeat` runs is reported, since the first
run also pays for page faults of the mapped file. Needs only the GGUF (synthetic files from `ahma
synth` carry a vocabulary for this).
"""
import argparse
import json
import os
import platform
import random
import time

import llama_cpp
import numpy as np


def last_argmax(llm, n_vocab):
    # the last evaluated position's logits, straight from the context
    logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))
    return int(np.argmax(logits))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--gpu-layers", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()

    n_ctx = a.prompt_tokens + a.gen_tokens + 8
    llm = llama_cpp.Llama(
        a.model,
        n_ctx=n_ctx,
        n_batch=max(a.prompt_tokens, 1),
        n_ubatch=max(a.prompt_tokens, 1),
        n_threads=a.threads,
        n_threads_batch=a.threads,
        n_gpu_layers=a.gpu_layers,
        logits_all=False,
        verbose=False,
    )
    n_vocab = llm.n_vocab()
    rng = random.Random(1)
    prompt = [rng.randrange(259, n_vocab) for _ in range(a.prompt_tokens)]
    best = None
    for _ in range(a.repeat):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t_prefill = time.perf_counter() - t0
        tok = last_argmax(llm, n_vocab)
        t1 = time.perf_counter()
        for _ in range(a.gen_tokens):
            llm.eval([tok])
            tok = last_argmax(llm, n_vocab)
        t_decode = time.perf_counter() - t1
        run = {
            "prefill_tok_s": a.prompt_tokens / t_prefill,
            "decode_tok_s": a.gen_tokens / t_decode if a.gen_tokens else 0.0,
            "prefill_s": t_prefill,
            "decode_s": t_decode,
        }
        if best is None or run["decode_tok_s"] > best["decode_tok_s"]:
            best = run
    print(json.dumps({
        "engine": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}",
        "model": os.path.basename(a.model),
        "file_bytes": os.path.getsize(a.model),
        "threads": a.threads,
        "gpu_layers": a.gpu_layers,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "prompt_tokens": a.prompt_tokens,
        "gen_tokens": a.gen_tokens,
        "runs": a.repeat,
        **best,
    }, indent=1))


if __name__ == "__main__":
    main()
