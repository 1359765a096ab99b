"""``python -m rlhf_demo runs [--json] [--root DIR]``: the run folders with their status (running,
finished, stopped, interrupted, diverged, failed), steps and last metrics."""

from __future__ import annotations

import json

HELP = "List the run folders with their status, steps and last metrics."
SHOWN = ("reward_mean", "objective/kl_exact", "eval/reward_mean", "eval/kl", "loss")


def add_arguments(p):
    p.add_argument("--root", default=None, help="runs folder (default $RLHF_DEMO_RUNS or ./runs)")
    p.add_argument("--json", action="store_true", help="one JSON list instead of a table")


def run(args) -> int:
    from rlhf_demo.runs.folder import list_runs
    from rlhf_demo.runs.state import run_state

    states = [run_state(r) for r in list_runs(args.root, include_example=False)]
    if args.json:
        print(json.dumps(states, ensure_ascii=False))
        return 0
    if not states:
        print("no runs")
        return 0
    print(f"{'run':<36} {'algo':<5} {'status':<12} {'steps':>5}  last metrics")
    for s in states:
        last = "  ".join(f"{k} {s['last'][k]:.3f}" for k in SHOWN if k in s["last"])
        print(f"{s['name']:<36} {s['algo']:<5} {s['status']:<12} {s['steps']:>5}  {last}")
    return 0
