"""Batch-1 decoding of the playground against this machine's memory-bandwidth limit, in one run.

At batch 1 every new token reads every weight once (the KV cache of a short text is tiny beside
538 MB of float32 weights), so the fastest decoding this machine allows is

    tokens/s limit = read bandwidth (bytes/s) / weight bytes read per token

and the fraction of it reached is

    ratio = weight bytes per token × tokens/s achieved / read bandwidth          (goal ≥ 0.60)

The bandwidth is measured here, on this machine, in this run: the best of N ``sum`` passes over a
tensor far larger than the caches (with torch's threads, as decoding uses them). Decoding is the
playground's own ``decoding.generate.generate`` (raw and processed distributions kept at every step,
the inverse-CDF draw), batch 1, default settings (temperature 1, top-k 50), ``--tokens`` new tokens
(EOS forbidden until then, so every run makes the same number), best and median of ``--reps``.

``--variant`` runs other forms of the same decoding beside the product's (each on the same prompt,
interleaved; tokens per second and the ratio for each):

    product   what the playground runs
    static    transformers' static KV cache (``cache_implementation="static"``)
    compile   static cache + ``torch.compile`` of the forward (transformers' own path for it)
    bf16      the weights in bfloat16 (half the bytes per token; the ratio uses bf16's bytes), and
              the max |Δ| of the shown probabilities against float32 over the same tokens

Run under the shared lock:
    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/decode_bandwidth.py [--variant product,static]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402
from machine import describe  # noqa: E402

PROMPTS = ["The movie was", "I went to the store and", "Once upon a time, a small robot"]


def read_bandwidth(gib: float = 1.0, reps: int = 7, device: str = "cpu") -> float:
    """Bytes/s of the best of ``reps`` full reads (``sum``) of a float32 tensor of ``gib`` GiB on ``device``."""
    x = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32, device=device)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    x.sum()  # fault the pages in
    best = float("inf")
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        x.sum()
        sync()
        best = min(best, time.perf_counter() - t0)
    return x.numel() * 4 / best


def weight_bytes(model) -> int:
    """Bytes of every distinct weight tensor (a tied LM head counted once: the same matrix)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen and t.is_floating_point() and t.dim() >= 2:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--variant", default="product", help="comma-separated: product, static, compile, bf16")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (product only: its default dtype, static cache)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from rlhf_demo.decoding.generate import DecodingConfig, generate
    from rlhf_demo.models.loading import load_model

    variants = [v.strip() for v in args.variant.split(",") if v.strip()]
    bw = read_bandwidth(device=args.device)
    dtype = torch.float32 if args.device == "cpu" else None  # None: load_model's choice (bf16 on CUDA)
    bundles = {"float32": load_model("default", device=args.device, dtype=dtype)}
    if "bf16" in variants:
        bundles["bfloat16"] = load_model("default", device="cpu", dtype=torch.bfloat16)
    cfg = DecodingConfig(max_new_tokens=args.tokens, min_new_tokens=args.tokens, seed=0)

    from transformers import CompileConfig

    from rlhf_demo.decoding import sampling

    product_cache = sampling.cache_settings

    def compiled(device):
        cc = CompileConfig(fullgraph=False, dynamic=False, mode="default")
        cc._compile_all_devices = True  # transformers compiles only on accelerators unless told
        return {"cache_implementation": "static", "compile_config": cc}

    caches = {"static": lambda device: {"cache_implementation": "static"}, "compile": compiled}

    def run(variant: str, prompt: str):
        bundle = bundles["bfloat16" if variant == "bf16" else "float32"]
        sampling.cache_settings = caches.get(variant, product_cache)  # the product's KV-cache choice, or a variant's
        t0 = time.perf_counter()
        res = generate(bundle, prompt, cfg)
        return time.perf_counter() - t0, res

    times: dict[str, list[float]] = {v: [] for v in variants}
    for v in variants:  # warm-up (and compilation)
        t, _ = run(v, PROMPTS[0])
        print(f"warm-up {v}: {t:.1f} s", flush=True)
    for i in range(args.reps):
        for v in variants if i % 2 == 0 else variants[::-1]:
            t, _ = run(v, PROMPTS[i % len(PROMPTS)])
            times[v].append(t)
    gpu = f"; GPU {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(
        f"machine: {describe()}{gpu}; {torch.get_num_threads()} torch threads; torch {torch.__version__}; "
        f"device {args.device}, weights {bundles['float32'].dtype}"
    )
    print(f"read bandwidth: {bw / 1e9:.1f} GB/s (best of 7 sums over 1 GiB on {args.device})")
    print(f"batch-1 decoding, {args.tokens} new tokens, playground settings (temperature 1, top-k 50), {args.reps} reps")
    print(f"{'variant':10} {'MB/token':>9} {'limit tok/s':>12} {'best tok/s':>11} {'median':>8} {'ratio (best)':>13} {'(median)':>9}")
    for v in variants:
        wb = weight_bytes(bundles["bfloat16" if v == "bf16" else "float32"].model)
        best, med = args.tokens / min(times[v]), args.tokens / statistics.median(times[v])
        print(f"{v:10} {wb / 1e6:9.0f} {bw / wb:12.1f} {best:11.1f} {med:8.1f} {best * wb / bw:13.2f} {med * wb / bw:9.2f}")
    if "bf16" in variants:
        print(bf16_difference(bundles, cfg))
    return 0


@torch.no_grad()
def bf16_difference(bundles, cfg) -> str:
    """Max |Δ| of the probabilities the playground shows (each step's chosen token and top candidates,
    processed p and raw p) between bf16 decoding and float32 scoring the same tokens, over PROMPTS.

    float32's numbers come from one forward over prompt + the tokens bf16 sampled and transformers'
    own warpers for these settings (top-k 50 at temperature 1): an independent computation."""
    from transformers import TopKLogitsWarper

    from rlhf_demo.decoding.generate import generate

    worst_p = worst_raw = 0.0
    for prompt in PROMPTS:
        res = generate(bundles["bfloat16"], prompt, cfg)
        seq = res.sequences[0]
        ids = torch.tensor([res.prompt_ids + seq.token_ids])
        P = len(res.prompt_ids)
        logits = bundles["float32"].model(ids).logits[0, P - 1 : -1].float()  # [T, V]
        raw = torch.softmax(logits, -1)  # [T, V]
        proc = torch.softmax(TopKLogitsWarper(cfg.top_k)(ids, logits), -1)  # [T, V]
        for t, step in enumerate(seq.steps):
            for c in [step, *step.top]:
                tid = c.token_id
                worst_p = max(worst_p, abs(c.prob - float(proc[t, tid])))
                worst_raw = max(worst_raw, abs(c.raw_prob - float(raw[t, tid])))
    return (
        f"bf16 vs float32 on the same tokens ({len(PROMPTS)} prompts × {cfg.max_new_tokens} steps, chosen + top "
        f"candidates): max |Δ processed p| = {worst_p:.4f}, max |Δ raw p| = {worst_raw:.4f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
