"""Status lines of a run, written once for both faces: the CLI prints them, the UI shows them.

Each function returns a list of lines (the first is the headline); the CLI joins them with
newlines, the UI with Markdown line breaks.
"""

from __future__ import annotations

import math
from pathlib import Path

NAN = float("nan")


def _eta(rec: dict, total: int, max_seconds: float) -> tuple[float, float]:
    step = max(int(rec.get("step", 0)), 1)
    per = rec.get("time_s", 0.0) / step
    left = max(0, total - step) * per
    if max_seconds:
        left = min(left, max(0.0, max_seconds - rec.get("time_s", 0.0)))
    return per, left


def heldout_line(rec: dict, prefix: str = "Held-out") -> str:
    gold = f", gold reward {rec['eval/gold_reward_mean']:+.3f}" if rec.get("eval/gold_reward_mean") is not None else ""
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
    """What one record says, for the trainer of ``cfg`` (PPO, GRPO, DPO or the reward model)."""
    total = total_steps or getattr(cfg, "steps", 0) or rec.get("step", 0)
    if rec.get("step", 0) == 0:
        lines = [f"Evaluated the {'reward model' if cfg.algo == 'reward' else 'policy'} before training (step 0)"]
    elif rec.get("diverged"):
        return [f"Step {rec['step']}: diverged (the loss is not finite)"]
    elif cfg.algo == "ppo":
        per, left = _eta(rec, total, cfg.max_seconds)
        lines = [
            f"Update {rec['step']}/{total} · training time {rec.get('time_s', 0):.0f} s ({per:.1f} s/update) · "
            f"ETA ≈ {left:.0f} s · batch reward {rec.get('reward_mean', NAN):+.3f}"
            + (f" (gold {rec['gold_reward_mean']:+.3f})" if "gold_reward_mean" in rec else "")
            + " · "
            f"KL {rec.get('objective/kl_exact', NAN):.2f} nats (k1 {rec.get('objective/kl', NAN):.2f}) · "
            f"β {rec.get('beta', NAN):.3f}"
        ]
        if rec.get("kl_budget/rollback"):
            lines.append(
                f"⟲ The batch showed the policy past the KL budget ({cfg.kl_budget:g} nats): the last update "
                "was undone (back to the policy before it)."
            )
        if rec.get("kl_budget/undone_at_check"):
            lines.append(
                f"⟲ Checked before evaluating: a fresh batch showed the last update past the KL budget "
                f"({rec['kl_budget/check_kl']:.2f} > {cfg.kl_budget:g} nats), so it was undone."
            )
    elif cfg.algo == "reward":
        per, left = _eta(rec, total, cfg.max_seconds)
        lines = [
            f"Step {rec['step']}/{total} · training time {rec.get('time_s', 0):.0f} s ({per:.1f} s/step) · "
            f"ETA ≈ {left:.0f} s · loss {rec.get('loss', NAN):.4f} · accuracy {rec.get('accuracy', NAN):.2f} · "
            f"margin {rec.get('margin', NAN):+.3f}"
        ]
    elif cfg.algo == "grpo":
        per, left = _eta(rec, total, cfg.max_seconds)
        lines = [
            f"Step {rec['step']}/{total} · training time {rec.get('time_s', 0):.0f} s ({per:.1f} s/step) · "
            f"ETA ≈ {left:.0f} s · loss {rec.get('loss', NAN):.4f} · KL {rec.get('kl', NAN):.3f} nats/token"
            + (f" · batch reward {rec['reward_mean']:+.3f}" if "reward_mean" in rec else "")
        ]
    else:
        per, left = _eta(rec, total, cfg.max_seconds)
        lines = [
            f"Step {rec['step']}/{total} · training time {rec.get('time_s', 0):.0f} s ({per:.1f} s/step) · "
            f"ETA ≈ {left:.0f} s · loss {rec.get('loss', NAN):.4f} · margin {rec.get('rewards/margins', NAN):+.3f} · "
            f"accuracy {rec.get('rewards/accuracies', NAN):.2f}"
        ]
    if "eval/reward_mean" in rec:
        lines.append(heldout_line(rec))
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
    restored, ev = getattr(trainer, "restored", None), trainer.last_eval
    if getattr(getattr(trainer, "cfg", None), "algo", "") == "reward":
        if ev:
            lines.append(
                pairs_line(
                    {f"eval/{k}": ev[k] for k in ("accuracy", "margin", "loss")} | {"eval/n_pairs": ev["n"]}, "Held-out pairs at the end"
                )
            )
    elif restored:  # DPO's KL stop put an earlier policy back: report that one
        lines.append(heldout_line(restored, f"Held-out of the policy kept (step {restored['step']})"))
    elif ev and all(math.isfinite(ev[k]) for k in ("reward_mean", "kl")):
        keys = ("reward_mean", "reward_sem", "kl", "distinct2", "on_topic", "gold_reward_mean")
        lines.append(heldout_line({f"eval/{k}": ev[k] for k in keys if k in ev}, "Held-out at the end"))
    return lines
