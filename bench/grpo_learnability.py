"""Can GRPO visibly move the default model in 3 minutes on this CPU? A GRPO preset on the built-in
prompts (VADER reward), several seeds, held-out reward gain and KL at 1, 2 and 3 minutes of training
time (evaluation and setup excluded from the clock), measured like ``dpo_learnability.py`` and
``ppo_learnability.py`` (the same held-out evaluation, ``evaluate.py``).

    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/grpo_learnability.py [--seeds 0 1 2] [--lr 2e-3] ...

Each seed writes a run folder under bench/results/ (the Runs tab can show them:
RLHF_DEMO_RUNS=bench/results) and the table goes to bench/results/grpo_learnability_TAG.{json,md}.
Target (as DPO's and PPO's): gain ≥ +0.3 at held-out KL ≤ 6 nats within 3 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learnability import ROOT, loadavg, setup_printer, start, watch  # noqa: E402  (bench/learnability.py)


def at_marks(evals: list[dict], marks: list[float], restored: dict | None, stop_t: float) -> dict:
    """The first evaluation at or after each mark; once the run has stopped, the policy it kept."""
    at = {}
    for m in marks:
        cand = [e for e in evals if e["time_s"] >= m - 1e-6]
        if cand and not (restored is not None and cand[0]["time_s"] >= stop_t and m > stop_t):
            e = cand[0]
        else:
            e = restored if restored is not None else (evals[-1] if evals else None)
        if e is not None:
            at[f"{m / 60:g}min"] = {
                "gain": e["gain"],
                "kl": round(e["eval/kl"], 2),
                "distinct2": round(e["eval/distinct2"], 3),
                "step": e["step"],
            }
    return at


def batch_reward():
    """A step's own figures for ``watch``: the last batch reward (μ > 1: only the steps that generated have one)."""
    last = [float("nan")]

    def line(rec: dict) -> str:
        last[0] = rec.get("reward_mean", last[0])
        return f"batch reward {last[0]:+.3f}"

    return line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 2, 3], help="training-time marks")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--beta", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--num-generations", type=int, default=None)
    ap.add_argument("--response-tokens", type=int, default=None)
    ap.add_argument("--num-iterations", type=int, default=None)
    ap.add_argument("--kl-stop", type=float, default=None)
    ap.add_argument("--scale-rewards", choices=("group", "batch", "none"), default=None)
    ap.add_argument("--loss-type", default=None)
    ap.add_argument("--eval-every", type=int, default=None)
    ap.add_argument("--tag", default="default")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)

    from rlhf_demo.grpo.config import GRPOConfig
    from rlhf_demo.grpo.trainer import GRPOTrainer

    out = Path(args.out)
    marks = [60.0 * m for m in args.minutes]
    settings = GRPOConfig.preset(
        args.preset,
        lr=args.lr,
        beta=args.beta,
        batch_size=args.batch_size,
        num_generations=args.num_generations,
        response_tokens=args.response_tokens,
        num_iterations=args.num_iterations,
        kl_stop=args.kl_stop,
        eval_every=args.eval_every,
        scale_rewards=args.scale_rewards,
        loss_type=args.loss_type,
    )
    settings = replace(settings, eval_at_start=False, eval_at_seconds=tuple(marks), max_seconds=max(marks)).validate()
    base = start(settings, out, "grpo")

    results = []
    for seed in args.seeds:
        s = replace(settings, seed=seed)
        run_dir = out / f"grpo-{args.tag}-seed{seed}"
        t0 = time.perf_counter()
        trainer = GRPOTrainer(s, progress=setup_printer(seed))
        setup_s = round(time.perf_counter() - t0, 1)
        own = batch_reward()
        steps, evals, restored = watch(trainer, run_dir, base, seed, preset=args.preset, bench="grpo_learnability", own=own)
        stop_t = steps[-1]["time_s"] if steps else 0.0
        final = restored or (evals[-1] if evals else {})
        results.append(
            {
                "seed": seed,
                "at": at_marks(evals, marks, restored, stop_t),
                "message": trainer.message,
                "final": {"gain": final.get("gain"), "kl": round(final.get("eval/kl", float("nan")), 2), "step": final.get("step")},
                "steps": len(steps),
                "sec_per_step": round(stop_t / len(steps), 2) if steps else None,
                "setup_s": setup_s,
                "wall_s": round(time.perf_counter() - t0, 1),
                "run_dir": str(run_dir),
                "samples": [r["policy"] for r in trainer.before_after[:3]],
            }
        )
        print(json.dumps(results[-1]), flush=True)

    for r in results:
        r["target_met"] = any(v["gain"] >= 0.3 and v["kl"] <= 6 for v in r["at"].values())
    summary = {"base": base, "settings": settings.to_dict(), "results": results, "load_end": loadavg()}
    (out / f"grpo_learnability_{args.tag}.json").write_text(json.dumps(summary, indent=2))
    lines = [
        "| seed | "
        + " | ".join(f"gain / KL @ {m / 60:g} min" for m in marks)
        + " | final policy: gain / KL (step) | steps | s/step | end |",
        "|---|" + "---|" * (len(marks) + 4),
    ]
    for r in results:
        cells = [f"{r['at'][k]['gain']:+.2f} / {r['at'][k]['kl']:.1f}" if k in r["at"] else "–" for k in (f"{m / 60:g}min" for m in marks)]
        fin = r["final"]
        lines.append(
            f"| {r['seed']} | " + " | ".join(cells) + f" | {fin['gain']:+.2f} / {fin['kl']:.1f} ({fin['step']}) | "
            f"{r['steps']} | {r['sec_per_step']} | {r['message']} |"
        )
    table = "\n".join(lines)
    (out / f"grpo_learnability_{args.tag}.md").write_text(table + "\n")
    print(table)
    print(f"{sum(r['target_met'] for r in results)} of {len(results)} seeds reached gain ≥ +0.3 at KL ≤ 6; load average at end {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
