"""Does PPO visibly learn in a few minutes on this CPU? Held-out reward gain, KL and distinct-2 at
fixed amounts of *training* time (evaluation excluded), for several seeds of a preset.

    flock /tmp/rlhf-bench.lock .venv/bin/python bench/ppo_learnability.py --preset quick-cpu --seeds 0 1 2
    flock /tmp/rlhf-bench.lock .venv/bin/python bench/ppo_learnability.py --preset no-kl --seeds 0 1 2

Each seed writes a run folder under bench/results/. The base policy is evaluated once (the evaluation
uses a fixed seed, so it is the same for every run) and cached in bench/results/base_eval.json.
Override settings with --set key=value (e.g. --set kl_target=4 --set lr=2e-3).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from machine import describe  # noqa: E402  (bench/machine.py, beside this script)

RESULTS = ROOT / "bench" / "results"


def parse_set(items: list[str]) -> dict:
    """KEY=VALUE overrides, each coerced by its PPOConfig knob's kind (as the CLI and UI do)."""
    from rlhf_demo.config import coerce
    from rlhf_demo.ppo.config import PPOConfig

    out = {}
    for item in items:
        k, _, v = item.partition("=")
        try:
            out[k] = coerce(PPOConfig.knob(k), v)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
    return out


def base_eval(reward: str, eval_prompts: int) -> dict:
    """Held-out evaluation of the untrained default model (cached)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "base_eval.json"
    key = f"{reward}|{eval_prompts}"
    cache = json.loads(path.read_text()) if path.exists() else {}
    if key not in cache:
        from rlhf_demo.evaluate import EvalConfig, evaluate_policy
        from rlhf_demo.models.loading import load_model
        from rlhf_demo.rewards.functions import make_reward

        b = load_model("default", device="cpu")
        ev = evaluate_policy(b.model, b.tokenizer, make_reward(reward), EvalConfig(n_prompts=eval_prompts), reference=b.model)
        cache[key] = {k: ev[k] for k in ("reward_mean", "reward_sem", "kl", "distinct2")} | {"samples": ev["samples"][:6]}
        path.write_text(json.dumps(cache, indent=2))
    return cache[key]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="quick-cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--at", type=float, nargs="+", default=[60, 120, 180], help="training seconds at which to evaluate")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a PPOConfig field")
    ap.add_argument("--samples", type=int, default=4, help="held-out samples printed per run at the end")
    ap.add_argument("--tag", default="", help="suffix for the run folder names")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (2 = this machine's cores)")
    args = ap.parse_args()

    import torch

    from rlhf_demo.ppo.config import MAX_STEPS, preset
    from rlhf_demo.ppo.trainer import PPOTrainer
    from rlhf_demo.runs.folder import write_run

    torch.set_num_threads(args.threads)
    overrides = parse_set(args.set)
    probe = preset(args.preset, **overrides)
    base = base_eval(probe.reward, 32)
    print(f"machine: {describe()}")
    print(f"base policy on held-out: reward {base['reward_mean']:+.3f} ± {base['reward_sem']:.3f}, distinct-2 {base['distinct2']:.2f}")
    load0 = os.getloadavg()
    rows, runs = [], []
    for seed in args.seeds:
        cfg = preset(
            args.preset,
            **{**overrides, "seed": seed, "steps": MAX_STEPS, "max_seconds": 0.0, "eval_at_seconds": tuple(args.at), "eval_final": False},
        )
        out = RESULTS / f"{args.preset}{args.tag}-seed{seed}-{time.strftime('%H%M%S')}"
        n_evals = {"n": 0}
        tr = PPOTrainer(cfg, stop=lambda n_evals=n_evals: n_evals["n"] >= len(args.at))
        for rec in write_run(tr, out, preset=args.preset):
            if "eval/reward_mean" in rec:
                n_evals["n"] += 1
                rows.append(
                    {
                        "seed": seed,
                        "at": args.at[n_evals["n"] - 1],
                        "time_s": rec["time_s"],
                        "step": rec["step"],
                        "reward": rec["eval/reward_mean"],
                        "sem": rec["eval/reward_sem"],
                        "gain": rec["eval/reward_mean"] - base["reward_mean"],
                        "kl": rec["eval/kl"],
                        "kl_k1": rec["eval/kl_k1"],
                        "distinct2": rec["eval/distinct2"],
                        "beta": rec["beta_next"],
                        "s_per_update": rec["time_s"] / rec["step"],
                    }
                )
                r = rows[-1]
                print(
                    f"  seed {seed} @{r['at']:.0f}s (t={r['time_s']:.0f}s, step {r['step']}): gain {r['gain']:+.3f} "
                    f"KL {r['kl']:.2f} d2 {r['distinct2']:.2f} β {r['beta']:.3f}",
                    flush=True,
                )
        runs.append((seed, out, tr.last_eval["samples"][: args.samples] if tr.last_eval else []))
    load1 = os.getloadavg()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(
        f"\n{args.preset} {' '.join(args.set)} ({args.threads} threads): load average {load0[0]:.2f} → {load1[0]:.2f}, "
        f"peak RSS {peak:.2f} GB (this process, all seeds together; one run alone: bench_ppo_speed.py)"
    )
    print(f"{'seed':>4} {'at':>5} {'t(s)':>6} {'step':>5} {'gain':>7} {'±sem':>6} {'KL':>6} {'k1':>6} {'dist-2':>6} {'β':>6} {'s/upd':>6}")
    for r in rows:
        print(
            f"{r['seed']:>4} {r['at']:>5.0f} {r['time_s']:>6.0f} {r['step']:>5} {r['gain']:>+7.3f} {r['sem']:>6.3f} "
            f"{r['kl']:>6.2f} {r['kl_k1']:>6.2f} {r['distinct2']:>6.2f} {r['beta']:>6.3f} {r['s_per_update']:>6.2f}"
        )
    for at in args.at:
        sel = [r for r in rows if r["at"] == at]
        if sel:
            ok = sum(r["gain"] >= 0.4 and r["kl"] <= 6 for r in sel)
            print(
                f"@{at:.0f}s: mean gain {sum(r['gain'] for r in sel) / len(sel):+.3f}, mean KL "
                f"{sum(r['kl'] for r in sel) / len(sel):.2f}, seeds meeting gain ≥ 0.4 & KL ≤ 6: {ok}/{len(sel)}"
            )
    print("\nheld-out samples at the end:")
    for seed, out, samples in runs:
        print(f"  seed {seed} ({out.name}):")
        for s in samples:
            print(f"    {s['reward']:+.2f}  {s['query']!r} → {s['response']!r}")
    (RESULTS / f"summary-{args.preset}{args.tag}-{time.strftime('%H%M%S')}.json").write_text(
        json.dumps(
            {"preset": args.preset, "set": args.set, "base": base, "rows": rows, "peak_rss_gb": peak, "load": [load0, load1]}, indent=2
        )
    )


if __name__ == "__main__":
    main()
