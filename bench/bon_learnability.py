"""Does best-of-N distillation land near the frontier in 5 minutes on this CPU? A ``bon`` preset on the
built-in prompts (VADER reward), several seeds; for each, the held-out reward gain and KL of the policy the
run ends with (the KL stop's, if it acted), the gain per nat and the training time (sampling included;
evaluation excluded), measured like ``ppo_learnability.py`` and ``grpo_learnability.py`` (the same held-out
evaluation, ``evaluate.py``).

    flock /tmp/rlhf-cpu.lock .venv/bin/python bench/bon_learnability.py [--seeds 0 1 2] [--num-samples 16] ...

Each seed writes a run folder under bench/results/ (the Runs tab can show them:
RLHF_DEMO_RUNS=bench/results) and the table goes to bench/results/bon_learnability_TAG.{json,md}.
Target (issue 27, item 4): gain ≥ +0.4 at held-out KL ≤ 2.5 nats within 5 minutes of training
(PPO's shipped example: +0.43 at 5.33 nats, 0.08 per nat).
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
from machine import describe  # noqa: E402  (bench/machine.py)

GOAL_GAIN, GOAL_KL, GOAL_S = 0.4, 2.5, 300.0


def loss(rec: dict) -> str:
    """A step's own figure for ``watch``: the loss on the kept answers."""
    return f"loss {rec.get('loss', float('nan')):.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--preset", default=None)
    knobs = {
        "num_samples": int,
        "keep": str,
        "lr": float,
        "steps": int,
        "batch_size": int,
        "response_tokens": int,
        "lora_r": int,
        "kl_stop": float,
        "eval_every": int,
        "max_seconds": float,
    }
    for name, kind in knobs.items():
        ap.add_argument("--" + name.replace("_", "-"), type=kind, default=None)
    ap.add_argument("--query-tokens", default=None, help="N or MIN:MAX")
    ap.add_argument("--tag", default="default")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)

    from rlhf_demo.bon.config import BoNConfig
    from rlhf_demo.bon.trainer import BoNTrainer

    out = Path(args.out)
    over = {k: getattr(args, k) for k in knobs}
    if args.query_tokens:
        lo, _, hi = args.query_tokens.partition(":")
        over["query_tokens"] = (int(lo), int(hi or lo))
    settings = replace(BoNConfig.preset(args.preset, **over), eval_at_start=False).validate()
    base = start(settings, out, "bon")

    results = []
    for seed in args.seeds:
        s = replace(settings, seed=seed)
        run_dir = out / f"bon-{args.tag}-seed{seed}"
        t0 = time.perf_counter()
        trainer = BoNTrainer(s, progress=setup_printer(seed))
        steps, evals, restored = watch(trainer, run_dir, base, seed, preset=args.preset, bench="bon_learnability", own=loss)
        final = restored or (evals[-1] if evals else {})
        kl = final.get("eval/kl", float("nan"))
        first = steps[0] if steps else {}
        results.append(
            {
                "seed": seed,
                "gain": final.get("gain"),
                "kl": round(kl, 2),
                "gain_per_nat": round(final["gain"] / kl, 3) if final and kl > 0 else None,
                "distinct2": round(final.get("eval/distinct2", float("nan")), 3),
                "on_topic": round(final.get("eval/on_topic", float("nan")), 3),
                "step": final.get("step"),
                "time_s": final.get("time_s"),
                "train_s": trainer.time_s,
                "setup_s": round(trainer.setup_s, 1),
                "sampling_s": round(trainer.round.seconds, 1) if trainer.round is not None else None,
                "reward_kept": first.get("bon/reward_kept"),
                "reward_all": first.get("bon/reward_all"),
                "message": trainer.message,
                "wall_s": round(time.perf_counter() - t0, 1),
                "run_dir": str(run_dir),
                "samples": [r["policy"] for r in trainer.before_after[:3]],
            }
        )
        print(json.dumps(results[-1]), flush=True)

    for r in results:
        r["goal_met"] = bool(r["gain"] is not None and r["gain"] >= GOAL_GAIN and r["kl"] <= GOAL_KL and (r["time_s"] or 1e9) <= GOAL_S)
    summary = {"base": base, "settings": settings.to_dict(), "results": results, "machine": describe(), "load_end": loadavg()}
    (out / f"bon_learnability_{args.tag}.json").write_text(json.dumps(summary, indent=2))
    lines = [
        "| seed | gain | held-out KL (nats) | gain per nat | distinct-2 | on-topic | step | time (s) | of which set-up (s) | kept / all reward | end |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['seed']} | {r['gain']:+.2f} | {r['kl']:.2f} | {r['gain_per_nat']} | {r['distinct2']} | {r['on_topic']} | {r['step']} | "
            f"{r['time_s']} | {r['setup_s']} | {r['reward_kept']:+.2f} / {r['reward_all']:+.2f} | {r['message']} |"
        )
    table = "\n".join(lines)
    (out / f"bon_learnability_{args.tag}.md").write_text(table + "\n")
    print(table)
    print(
        f"{sum(r['goal_met'] for r in results)} of {len(results)} seeds reached gain ≥ +{GOAL_GAIN} at KL ≤ {GOAL_KL} within {GOAL_S:.0f} s"
    )
    print(f"load average at end {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
