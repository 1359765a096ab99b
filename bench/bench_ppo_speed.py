"""Seconds per PPO update, with a breakdown, and peak memory, on the default model.

Workloads (each runs in its own subprocess so peak RSS is its own):
  b16    the issue's workload: batch 16, 12-token responses, 2 epochs × 1 mini-batch, LoRA r8 on the
         top 8 layers (the trunk below runs once, during generation: rlhf_demo/trunk.py); target ≤ 5 s
  plain  baseline in the same run: b16 with the LM head through F.linear and the draw through
         torch.multinomial (before rlhf_demo/cpu_linear.py and sampling.InverseCDFSampler)
  all    baseline in the same run: b16 with LoRA on all 30 layers (every pass runs the whole model)
         and 2 mini-batches, i.e. the first preset
  quick  the "quick-cpu" preset as shipped: batch 32, 2 epochs × 4 mini-batches
  old    the workload of TRL's old experimental PPO trainer: batch 8, 24-token responses, 4 PPO epochs,
         one mini-batch, LoRA (ours: top 8 layers). Its side-by-side comparison with trl 0.11.4's
         PPOTrainer, run in the same process tree and minutes, is bench/ppo_vs_trl011.py.
  b64x24 a GPU-sized workload: batch 64, 24-token responses, the preset's epochs and mini-batches
         (issue 18: ≤ 1.5 s per update on an H200-class GPU; run by bench/gpu_check.sh)

Run under the shared lock so measurements do not overlap:
    flock /tmp/rlhf-bench.lock .venv/bin/python bench/bench_ppo_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from machine import describe  # noqa: E402  (bench/machine.py, beside this script)

TARGET_QUICK_S, TARGET_QUICK_GB = 5.0, 2.0
B16 = {"batch_size": 16, "num_mini_batches": 1}
WORKLOADS = {
    "b16": B16,
    "plain": B16,
    "all": {**B16, "lora_layers": 0, "num_mini_batches": 2},
    "quick": {},
    "old": {"batch_size": 8, "response_tokens": (24, 24), "ppo_epochs": 4, "num_mini_batches": 1},
    "b64x24": {"batch_size": 64, "response_tokens": (24, 24)},
}
EVERY = ["b16", "plain", "all", "quick", "old"]  # "every": the CPU workloads (b64x24 is for a GPU)
PARTS = [
    ("generation", ["time/generate"]),
    ("scoring", ["time/score"]),
    ("reference fwd", ["time/reference"]),
    ("old-logprob fwd", ["time/old_forward"]),
    ("PPO forwards", ["time/forward"]),
    ("PPO backward", ["time/backward"]),
    ("optimizer", ["time/optimizer"]),
]


def _plain_linear_and_multinomial() -> None:
    """Undo the two CPU speed-ups for the baseline: F.linear for the LM head and MLP (given a contiguous input,
    as before), torch.multinomial's draw."""
    import torch

    from rlhf_demo.decoding import sampling
    from rlhf_demo.models import loading as models

    def contiguous_head_only(model):
        model.get_output_embeddings().register_forward_pre_hook(lambda module, args: (args[0].contiguous(),))
        return 0

    models.speed_up_linears = contiguous_head_only

    def multinomial_draw(self, input_ids, scores):
        token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1)  # what generate(do_sample=True) calls
        return torch.full_like(scores, float("-inf")).scatter_(1, token, 0.0)

    sampling.InverseCDFSampler.__call__ = multinomial_draw


def measure(workload: str, updates: int, preset_name: str, threads: int = 2) -> dict:
    import torch

    from rlhf_demo.ppo.config import preset
    from rlhf_demo.ppo.trainer import PPOTrainer

    torch.set_num_threads(threads)
    if workload == "plain":
        _plain_linear_and_multinomial()
    cfg = preset(preset_name, steps=updates + 1, eval_final=False, **WORKLOADS[workload])
    tr = PPOTrainer(cfg)
    recs = []
    for rec in tr.train():  # the loop alone: no run folder, no before/after at the end
        recs.append(rec)
        if len(recs) == cfg.steps:
            break
    recs = recs[1:]  # the first update warms up (allocations, lazy inits)
    out = {
        "workload": workload,
        "updates": len(recs),
        "s_per_update": statistics.mean(r["time/update"] for r in recs),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }
    for name, keys in PARTS:
        out[name] = statistics.mean(sum(r.get(k, 0.0) for k in keys) for r in recs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--updates", type=int, default=4, help="timed updates per workload (after one warm-up)")
    ap.add_argument("--workload", choices=[*WORKLOADS, "every"], default="every")
    ap.add_argument("--preset", default="quick-cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (2 = this machine's cores)")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.json:
        print("RESULT " + json.dumps(measure(args.workload, args.updates, args.preset, args.threads)))
        return
    names = EVERY if args.workload == "every" else [args.workload]
    load0 = os.getloadavg()
    results = {}
    for w in names:
        p = subprocess.run(
            [
                sys.executable,
                __file__,
                "--workload",
                w,
                "--updates",
                str(args.updates),
                "--preset",
                args.preset,
                "--threads",
                str(args.threads),
                "--json",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        line = next((l for l in p.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{w} failed:\n{p.stderr[-3000:]}")
        results[w] = json.loads(line[7:])
    load1 = os.getloadavg()
    print(f"machine: {describe()}")
    print(
        f"PPO speed on {os.cpu_count()} CPU cores ({args.threads} torch threads), load average before {load0[0]:.2f}, after {load1[0]:.2f} "
        f"({time.strftime('%H:%M')})"
    )
    header = f"{'':18}" + "".join(f"{w:>12}" for w in results)
    print(header)
    print(f"{'s / update':18}" + "".join(f"{r['s_per_update']:12.2f}" for r in results.values()))
    for name, _ in PARTS:
        print(f"  {name:16}" + "".join(f"{r[name]:12.2f}" for r in results.values()))
    print(f"{'peak RSS (GB)':18}" + "".join(f"{r['peak_rss_gb']:12.2f}" for r in results.values()))
    if "b16" in results:
        q = results["b16"]
        print(
            f"\nbatch 16: {q['s_per_update']:.2f} s/update (target ≤ {TARGET_QUICK_S}: ratio {q['s_per_update'] / TARGET_QUICK_S:.2f}), "
            f"peak RSS {q['peak_rss_gb']:.2f} GB (target ≤ {TARGET_QUICK_GB}: ratio {q['peak_rss_gb'] / TARGET_QUICK_GB:.2f})"
        )
    if "b16" in results and "plain" in results:
        q, p = results["b16"], results["plain"]
        print(
            f"oneDNN LM head + inverse-CDF draw vs F.linear + torch.multinomial: {q['s_per_update'] / p['s_per_update']:.2f}× the time "
            f"(generation {q['generation'] / p['generation']:.2f}×)"
        )
    if "b16" in results and "all" in results:
        q, a = results["b16"], results["all"]
        print(
            f"top-8-layer LoRA with the shared trunk vs LoRA on every layer: {q['s_per_update'] / a['s_per_update']:.2f}× the time "
            f"({a['s_per_update'] / q['s_per_update']:.2f}× faster)"
        )
    if "quick" in results:
        q = results["quick"]
        print(
            f"quick-cpu preset as shipped (batch 32): {q['s_per_update']:.2f} s/update, {q['s_per_update'] / 32:.3f} s per episode, "
            f"peak RSS {q['peak_rss_gb']:.2f} GB"
        )
    if "old" in results:
        o = results["old"]
        print(
            f"old TRL workload (batch 8 × 24 tokens × 4 epochs): {o['s_per_update']:.2f} s/update, peak RSS "
            f"{o['peak_rss_gb']:.2f} GB; against trl 0.11.4 side by side: bench/ppo_vs_trl011.py"
        )
    if "b64x24" in results:
        g = results["b64x24"]
        print(f"batch 64 × 24 tokens: {g['s_per_update']:.2f} s/update (issue 18's GPU goal ≤ 1.5 s: ratio {g['s_per_update'] / 1.5:.2f})")


if __name__ == "__main__":
    main()
