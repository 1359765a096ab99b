"""Status lines of a run, written once for both faces: the CLI prints them, the UI shows them.

Each function returns a list of lines (the first is the headline); the CLI joins them with
newlines, the UI with Markdown line breaks.
"""
from __future__ import annotations

import math

NAN = float("nan")


def _eta(rec: dict, total: int, max_seconds: float) -> tuple[float, float]:
    step = max(int(rec.get("step", 0)), 1)
    per = rec.get("time_s", 0.0) / step
    left = max(0, total - step) * per
    if max_seconds:
        left = min(left, max(0.0, max_seconds - rec.get("time_s", 0.0)))
    return per, left


def heldout_line(rec: dict, prefix: str = "Held-out") -> str:
    return (f"{prefix}: reward {rec['eval/reward_mean']:+.3f} ± {rec['eval/reward_sem']:.3f} (sem), "
            f"KL {rec['eval/kl']:.2f} nats, distinct-2 {rec['eval/distinct2']:.2f}")


def progress_lines(cfg, rec: dict, total_steps: int | None = None) -> list[str]:
    """What one record says, for the trainer of ``cfg`` (PPO or DPO)."""
    total = total_steps or getattr(cfg, "steps", 0) or rec.get("step", 0)
    if rec.get("step", 0) == 0:
        lines = ["Evaluated the policy before training (step 0)"]
    elif rec.get("diverged"):
        return [f"Step {rec['step']}: diverged (the loss is not finite)"]
    elif cfg.algo == "ppo":
        per, left = _eta(rec, total, cfg.max_seconds)
        lines = [f"Update {rec['step']}/{total} · training time {rec.get('time_s', 0):.0f} s ({per:.1f} s/update) · "
                 f"ETA ≈ {left:.0f} s · batch reward {rec.get('reward_mean', NAN):+.3f} · "
                 f"KL {rec.get('objective/kl_exact', NAN):.2f} nats (k1 {rec.get('objective/kl', NAN):.2f}) · "
                 f"β {rec.get('beta', NAN):.3f}"]
        if rec.get("kl_budget/rollback"):
            lines.append(f"⟲ The batch showed the policy past the KL budget ({cfg.kl_budget:g} nats): the last update "
                         "was undone (back to the policy before it).")
        if rec.get("kl_budget/undone_at_check"):
            lines.append(f"⟲ Checked before evaluating: a fresh batch showed the last update past the KL budget "
                         f"({rec['kl_budget/check_kl']:.2f} > {cfg.kl_budget:g} nats), so it was undone.")
    else:
        per, left = _eta(rec, total, cfg.max_seconds)
        lines = [f"Step {rec['step']}/{total} · training time {rec.get('time_s', 0):.0f} s ({per:.1f} s/step) · "
                 f"ETA ≈ {left:.0f} s · loss {rec.get('loss', NAN):.4f} · margin {rec.get('rewards/margins', NAN):+.3f} · "
                 f"accuracy {rec.get('rewards/accuracies', NAN):.2f}"]
    if "eval/reward_mean" in rec:
        lines.append(heldout_line(rec))
    return lines


def final_lines(trainer, out=None) -> list[str]:
    """The end of a run: its outcome, its folder, the last held-out evaluation."""
    lines = [f"{trainer.status}: {trainer.message}." + (f" Run folder: {out}" if out else "")]
    restored, ev = getattr(trainer, "restored", None), trainer.last_eval
    if restored:   # DPO's KL stop put an earlier policy back: report that one
        lines.append(heldout_line(restored, f"Held-out of the policy kept (step {restored['step']})"))
    elif ev and all(math.isfinite(ev[k]) for k in ("reward_mean", "kl")):
        lines.append(heldout_line({f"eval/{k}": ev[k] for k in ("reward_mean", "reward_sem", "kl", "distinct2")},
                                  "Held-out at the end"))
    return lines
