"""Status lines of a run, written once for both faces: the CLI prints them, the UI shows them.

Each function returns a list of lines (the first is the headline); the CLI joins them with
newlines, the UI with Markdown line breaks. What a record of one algorithm says is declared with that
algorithm (``Algorithm.status`` in ``rlhf_demo/<package>/algorithm.py``, built from ``step_head``);
the step-0, divergence and held-out lines are every algorithm's.
"""

from __future__ import annotations

import math
from pathlib import Path

NAN = float("nan")


def eta(rec: dict, total: int, max_seconds: float) -> tuple[float, float]:
    """(seconds per step so far, seconds left) after record ``rec`` of ``total`` steps, within ``max_seconds``."""
    step = max(int(rec.get("step", 0)), 1)
    per = rec.get("time_s", 0.0) / step
    left = max(0, total - step) * per
    if max_seconds:
        left = min(left, max(0.0, max_seconds - rec.get("time_s", 0.0)))
    return per, left


def step_head(rec: dict, total: int, max_seconds: float, unit: str = "Step") -> str:
    """ "Step k/total · training time … (… s/step) · ETA ≈ … s": how every algorithm's headline starts."""
    per, left = eta(rec, total, max_seconds)
    return f"{unit} {rec['step']}/{total} · training time {rec.get('time_s', 0):.0f} s ({per:.1f} s/{unit.lower()}) · ETA ≈ {left:.0f} s"


def shows_gold(cfg) -> bool:
    """Whether a gold reward is worth a word: one was chosen and it is not the training reward itself
    (the same scorer twice would show the same number beside the reward)."""
    gold = getattr(cfg, "gold_reward", "none") or "none"
    return gold != "none" and gold != getattr(cfg, "reward", None)


def heldout_line(rec: dict, prefix: str = "Held-out", gold: bool = True) -> str:
    """One held-out evaluation in a line; ``gold``: with the gold reward when the record has one."""
    gold = f", gold reward {rec['eval/gold_reward_mean']:+.3f}" if gold and rec.get("eval/gold_reward_mean") is not None else ""
    return (
        f"{prefix}: reward {rec['eval/reward_mean']:+.3f} ± {rec['eval/reward_sem']:.3f} (sem){gold}, "
        f"KL {rec['eval/kl']:.2f} nats, distinct-2 {rec['eval/distinct2']:.2f}"
        + (f", on topic {rec['eval/on_topic']:.0%}" if rec.get("eval/on_topic") is not None else "")
    )


def pairs_line(rec: dict, prefix: str = "Held-out pairs") -> str:
    """A reward model's held-out evaluation."""
    return (
        f"{prefix}: accuracy {rec['eval/accuracy']:.3f} on {rec['eval/n_pairs']} pairs, margin "
        f"{rec['eval/margin']:+.3f}, loss {rec['eval/loss']:.4f}"
    )


def progress_lines(cfg, rec: dict, total_steps: int | None = None) -> list[str]:
    """What one record says, for the trainer of ``cfg``: its algorithm's own lines (``Algorithm.status``,
    declared in its package), then the held-out evaluation the record carries."""
    from rlhf_demo.algorithms import find  # here: the algorithms' declarations use this module's helpers

    alg = find(getattr(cfg, "algo", None))
    total = total_steps or getattr(cfg, "steps", 0) or rec.get("step", 0)
    if rec.get("step", 0) == 0:
        lines = [f"Evaluated the {alg.makes if alg else 'policy'} before training (step 0)"]
    elif rec.get("diverged"):
        return [f"Step {rec['step']}: diverged (the loss is not finite)"]
    elif alg is not None and alg.status is not None:
        lines = alg.status(cfg, rec, total)
    else:
        lines = [step_head(rec, total, getattr(cfg, "max_seconds", 0.0)) + f" · loss {rec.get('loss', NAN):.4f}"]
    if "eval/reward_mean" in rec:
        lines.append(heldout_line(rec, gold=shows_gold(cfg)))
    if "eval/accuracy" in rec:
        lines.append(pairs_line(rec))
    return lines


def run_name(out) -> str:
    """How a status line names a run folder: as typed when relative (the CLI's ``--out``), else by its
    name (no absolute server path in a line a page shows)."""
    p = Path(str(out))
    return p.name if p.is_absolute() else str(out)


def final_lines(trainer, out=None) -> list[str]:
    """The end of a run: its outcome, its folder (by name), the last held-out evaluation."""
    lines = [f"{trainer.status}: {trainer.message}." + (f" Run folder: {run_name(out)}" if out else "")]
    from rlhf_demo.algorithms import find

    alg = find(getattr(getattr(trainer, "cfg", None), "algo", None))
    restored, ev = getattr(trainer, "restored", None), trainer.last_eval
    if alg is not None and not alg.is_policy:  # a reward model: its held-out pairs
        if ev:
            lines.append(
                pairs_line(
                    {f"eval/{k}": ev[k] for k in ("accuracy", "margin", "loss")} | {"eval/n_pairs": ev["n"]}, "Held-out pairs at the end"
                )
            )
    elif restored:  # DPO's KL stop put an earlier policy back: report that one
        lines.append(heldout_line(restored, f"Held-out of the policy kept (step {restored['step']})", gold=shows_gold(trainer.cfg)))
    elif ev and all(math.isfinite(ev[k]) for k in ("reward_mean", "kl")):
        keys = ("reward_mean", "reward_sem", "kl", "distinct2", "on_topic", "gold_reward_mean")
        rec = {f"eval/{k}": ev[k] for k in keys if k in ev}
        lines.append(heldout_line(rec, "Held-out at the end", gold=shows_gold(getattr(trainer, "cfg", None))))
    return lines
