"""GRPO as the shared code sees it (``rlhf_demo.algorithms``): its config and trainer, its status line,
the record keys its card and comparison show, its live plot, its panel and its token inspector. Its memory is not modelled
yet (``peak_bytes`` None: the shared server checks its time and steps only)."""

from __future__ import annotations

from rlhf_demo.algorithms import Algorithm
from rlhf_demo.grpo.config import GRPOConfig
from rlhf_demo.training.status import NAN, step_head


def status(cfg: GRPOConfig, rec: dict, total: int) -> list[str]:
    """A step's headline: the loss, TRL's batch KL (k3, per token) and the batch reward."""
    return [
        step_head(rec, total, cfg.max_seconds)
        + f" · loss {rec.get('loss', NAN):.4f} · KL {rec.get('kl', NAN):.3f} nats/token"
        + (f" · batch reward {rec['reward_mean']:+.3f}" if "reward_mean" in rec else "")
    ]


ALGORITHM = Algorithm(
    name="grpo",
    label="GRPO",
    config=GRPOConfig,
    trainer="rlhf_demo.grpo.trainer:GRPOTrainer",
    from_pairs=False,
    what="a policy fine-tuned with GRPO from a reward function",
    blurb="sample G answers per prompt, score them, push each above or below its group's mean (no value model).",
    status=status,
    card_keys=("reward_mean", "kl", "loss", "eval/reward_mean", "eval/kl"),
    compare_keys=(("Batch reward", "reward_mean"), ("Batch KL, k3 per token", "kl")),
    curves="rlhf_demo.plots.training:GRPO_PANELS",
    bands=True,
    symbol="square",
    panel="rlhf_demo.ui.training_grpo",
    inspector="rlhf_demo.grpo.inspect:inspect",
)
