"""TRL's RewardTrainer drives the steps; ``training.trl_callback`` turns them into our records, one per step.

At each step end it applies the run's stops (a Stop request, the time budget); at each step's log it
writes TRL's metrics under TRL's names (``loss``, ``accuracy``, ``margin``, ``mean_reward``, ...) and
measures the held-out pairs when due (every ``eval_every`` steps, at the ``eval_at_seconds`` marks and
at the end, however the run ends: ``RewardTrainer.eval_if_stopped``). Held-out scoring is kept off the training clock.
"""

from __future__ import annotations

TRL_KEYS = ("loss", "grad_norm", "learning_rate", "accuracy", "margin", "mean_reward", "min_reward", "max_reward", "num_tokens", "epoch")
"""What TRL 1.16's RewardTrainer logs per step (``compute_loss``), averaged over the step's batch."""

__all__ = ["TRL_KEYS", "record"]


def record(logs: dict) -> dict:
    """A step's keys: TRL's metrics under TRL's names."""
    return {k: logs[k] for k in TRL_KEYS if k in logs}
