"""TRL's GRPOTrainer drives the steps; ``training.trl_callback`` turns them into our records, one per step.

Each record holds TRL's own metrics under TRL's names (``reward``, ``reward_std``, ``kl``,
``frac_reward_zero_std``, ``entropy``, ``completions/mean_length``, ``clip_ratio/region_mean``,
``loss``, ...) plus the names every policy trainer shares: ``reward_mean`` / ``reward_std`` (the
batch's mean and std of the reward trained on, as PPO's) and ``samples`` (the step's completions with
their rewards). TRL's ``kl`` is the batch mean of the per-token k3 estimate weighed by π/π_old (nats per
*token*, only when β > 0); ``eval/kl`` is the held-out exact KL per *response*, as in PPO and DPO.

At each step end it applies the run's stops (a Stop request, the time budget); at each log it
evaluates on held-out prompts when due (every ``eval_every`` steps, at the ``eval_at_seconds``
marks, every step once the held-out KL nears ``kl_stop``, and at the end) and applies the KL stop
(``training.trl_callback.kl_stop``: the last evaluated policy under it is put back). Evaluation time is kept
off the training clock.
"""

from __future__ import annotations

TRL_KEYS = (
    "loss",
    "grad_norm",
    "learning_rate",
    "reward",
    "reward_std",
    "frac_reward_zero_std",
    "kl",
    "entropy",
    "completions/mean_length",
    "clip_ratio/region_mean",
    "num_tokens",
    "epoch",
)
"""What TRL 1.16's GRPOTrainer logs per step that the panels and the run folder keep."""

__all__ = ["TRL_KEYS", "record"]


def record(logs: dict) -> dict:
    """A step's keys: TRL's metrics under TRL's names, and ``reward_mean`` / ``reward_std`` as PPO's."""
    rec = {k: logs[k] for k in TRL_KEYS if logs.get(k) is not None}
    if logs.get("reward") is not None:  # with num_iterations μ > 1, only the steps that generated
        rec["reward_mean"], rec["reward_std"] = logs["reward"], logs["reward_std"]
    return rec
