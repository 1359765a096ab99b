"""TRL's DPOTrainer drives the steps; ``training.trl_callback`` turns them into our records, one per step:
the run's stops, held-out evaluation when due (every step once the held-out KL nears the stop) and
the KL stop: the last evaluated policy under ``kl_stop`` is remembered, and once the held-out KL
passes it, training stops and that policy is put back (early stopping; DPO's KL keeps climbing).
What is DPO's here: which of TRL's metrics a record keeps (β on every record: ``DPOTrainer.fixed``).
"""

from __future__ import annotations

TRL_KEYS = (
    "loss",
    "grad_norm",
    "learning_rate",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
    "logits/chosen",
    "logits/rejected",
    "entropy",
    "mean_token_accuracy",
    "num_tokens",
    "epoch",
)


def record(logs: dict) -> dict:
    """A step's keys: TRL's metrics under TRL's names, then any other number it logged."""
    rec = {k: logs[k] for k in TRL_KEYS if k in logs}
    rec.update({k: v for k, v in logs.items() if k not in rec and isinstance(v, (int, float))})
    return rec


__all__ = ["TRL_KEYS", "record"]
