"""TRL's SFTTrainer drives the fine-tuning steps; ``training.trl_callback`` turns them into our records, one per step.

Each record holds TRL's own metrics under TRL's names (``loss``: the mean −log π of the kept answers'
tokens; ``mean_token_accuracy``; ``entropy``; ``num_tokens``; ...) and, on every record, what the
sampling round gave (``fixed``): ``bon/reward_all`` (the mean reward of all P × N samples of the
reference), ``bon/reward_kept`` (of the kept ones: what the policy imitates), ``bon/kept`` and
``bon/kl_bound`` (log N − (N−1)/N: best-of-N's own KL bound). ``eval/kl`` is the held-out exact KL per
response, as in PPO, DPO and GRPO.
"""

from __future__ import annotations

TRL_KEYS = ("loss", "grad_norm", "learning_rate", "entropy", "mean_token_accuracy", "num_tokens", "epoch")
"""What TRL 1.16's SFTTrainer logs per step that the panels and the run folder keep."""

ROUND_KEYS = ("bon/reward_all", "bon/reward_kept", "bon/kept", "bon/kl_bound")
"""The sampling round's figures, on every record."""

__all__ = ["ROUND_KEYS", "TRL_KEYS", "record", "round_record"]


def record(logs: dict) -> dict:
    """A step's keys: TRL's metrics under TRL's names."""
    return {k: logs[k] for k in TRL_KEYS if logs.get(k) is not None}


def round_record(stats: dict, bound: float) -> dict:
    """The sampling round's keys (``winners.Round.stats()`` and the best-of-N bound)."""
    return {
        "bon/reward_all": round(stats["reward_all"], 4),
        "bon/reward_kept": round(stats["reward_kept"], 4),
        "bon/kept": stats["kept"],
        "bon/kl_bound": round(bound, 4),
    }
