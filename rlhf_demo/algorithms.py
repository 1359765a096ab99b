"""The training algorithms by the names the faces use (``train --algo NAME``, ``/train_start``'s ``algo``):
each name's config class, and the one way a trainer is made from a validated config. The CLI, the
Training tab and the named API all ask here, so a name means the same algorithm everywhere.

Trainers are imported when one is made (each pulls in torch, and TRL for DPO, GRPO and the reward
model), so listing the algorithms stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable

from rlhf_demo.dpo.config import DPOConfig
from rlhf_demo.grpo.config import GRPOConfig
from rlhf_demo.ppo.config import PPOConfig
from rlhf_demo.reward_model.config import RewardConfig

CONFIGS = {"ppo": PPOConfig, "dpo": DPOConfig, "reward": RewardConfig, "grpo": GRPOConfig}
"""algo name → its config class (``TrainerConfig``: knobs, presets, ``validate()``)."""
FROM_PAIRS = ("dpo", "reward")
"""The algorithms that learn from preference pairs (given as ``pairs``); the others sample from prompts."""


def config_class(algo) -> type:
    """The config class of ``algo``; ValueError in one line for any other name."""
    if not isinstance(algo, str) or algo.strip().lower() not in CONFIGS:
        raise ValueError(f"algo must be one of {', '.join(CONFIGS)}; got {str(algo)[:40]!r}")
    return CONFIGS[algo.strip().lower()]


def make_trainer(
    cfg,
    *,
    pairs: list[dict] | None = None,
    prompts: list[str] | None = None,
    stop: Callable[[], bool] | None = None,
    progress: Callable[[float, str], None] | None = None,
):
    """The trainer of ``cfg.algo`` (loads the model). ``pairs``: preference rows (DPO, reward model; None:
    ``cfg.preferences``); ``prompts``: training prompts (PPO, GRPO; None: ``cfg.prompts``)."""
    if cfg.algo == "ppo":
        from rlhf_demo.ppo.trainer import PPOTrainer

        return PPOTrainer(cfg, prompts=prompts, stop=stop, progress=progress)
    if cfg.algo == "grpo":
        from rlhf_demo.grpo.trainer import GRPOTrainer

        return GRPOTrainer(cfg, prompts, stop=stop, progress=progress)
    if cfg.algo == "reward":
        from rlhf_demo.reward_model.trainer import RewardTrainer

        return RewardTrainer(cfg, pairs, stop=stop, progress=progress)
    if cfg.algo == "dpo":
        from rlhf_demo.dpo.trainer import DPOTrainer

        return DPOTrainer(cfg, pairs, stop=stop, progress=progress)
    raise ValueError(f"no trainer for algo {cfg.algo!r}")
