"""What the learnability benchmarks of the prompt-sampling trainers share (``grpo_learnability.py``,
``bon_learnability.py``): the machine line, the base policy's held-out evaluation (cached per algorithm in
the results folder), the trainer's set-up lines, and one seed's run watched record by record: its
held-out evaluations with their gain over the base, and the policy the KL stop kept.

The held-out evaluation is the trainers' own (``evaluate.py``), so every benchmark's gain is measured the
same way as PPO's and DPO's.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from machine import describe  # noqa: E402  (bench/machine.py, beside this module)

sys.path.insert(0, str(ROOT))

EVERY_S = 10.0
"""At most one set-up line (loading, sampling, building TRL's trainer) this often."""


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def start(settings, out: Path, algo: str) -> dict:
    """Print the machine and the settings; return the base policy's held-out reward, KL and distinct-2
    (``out/ALGO_base_eval.json`` when an earlier run measured it, else measured now and saved there)."""
    import torch

    from rlhf_demo.evaluate import EvalConfig, evaluate_policy
    from rlhf_demo.models.loading import load_model
    from rlhf_demo.rewards.functions import make_reward

    out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {describe()}")
    print(f"threads {torch.get_num_threads()}, load average at start {loadavg()}; settings {settings.to_dict()}", flush=True)
    base_file = out / f"{algo}_base_eval.json"
    if base_file.exists():
        base = json.loads(base_file.read_text())
    else:
        bundle = load_model(settings.model, device="cpu", dtype=torch.float32)
        ev = evaluate_policy(bundle.model, bundle.tokenizer, make_reward(settings.reward), EvalConfig(), reference=bundle.model)
        base = {k: ev[k] for k in ("reward_mean", "reward_sem", "kl", "distinct2")}
        base_file.write_text(json.dumps(base, indent=2))
        del bundle
    print(f"base policy: held-out reward {base['reward_mean']:+.3f} ± {base['reward_sem']:.3f}", flush=True)
    return base


def setup_printer(seed: int) -> Callable[[float, str], None]:
    """A trainer's ``progress`` callback printing its set-up lines, at most one every ``EVERY_S`` seconds."""
    last = [-EVERY_S]

    def say(fraction: float, line: str) -> None:
        now = time.perf_counter()
        if now - last[0] >= EVERY_S:
            last[0] = now
            print(f"  seed {seed}: {line}", flush=True)

    return say


def watch(trainer, run_dir: Path, base: dict, seed: int, *, preset: str | None, bench: str, own: Callable[[dict], str]):
    """Run ``trainer`` into ``run_dir`` (emptied first) and print each held-out evaluation, ``own(rec)``
    first (the step's own figures). Returns (the step records, the evaluations with ``gain``, the policy
    the KL stop put back with its ``gain`` and ``time_s``, or None)."""
    from rlhf_demo.runs.folder import write_run

    shutil.rmtree(run_dir, ignore_errors=True)
    steps, evals = [], []
    for rec in write_run(trainer, run_dir, preset=preset, info={"bench": bench}):
        if rec["step"] == 0:
            continue
        steps.append(rec)
        if "eval/kl" in rec:
            e = {**rec, "gain": round(rec["eval/reward_mean"] - base["reward_mean"], 3)}
            evals.append(e)
            on_topic = f" on-topic {rec['eval/on_topic']:.2f}" if rec.get("eval/on_topic") is not None else ""
            print(
                f"  seed {seed} step {rec['step']:3d} t {rec['time_s']:6.1f}s: {own(rec)} "
                f"held-out {rec['eval/reward_mean']:+.3f} (gain {e['gain']:+.3f}) KL {rec['eval/kl']:.2f} "
                f"distinct2 {rec['eval/distinct2']:.2f}{on_topic}",
                flush=True,
            )
    restored = trainer.restored
    if restored is not None:
        restored = {**restored, "gain": round(restored["eval/reward_mean"] - base["reward_mean"], 3)}
        restored["time_s"] = next((r["time_s"] for r in steps if r["step"] == restored["step"]), None)
    return steps, evals, restored
