"""The reward model as the shared code sees it (``rlhf_demo.algorithms``): its config and trainer, its
status line, the record keys its card shows, its live plot and its panel. It makes a reward model, not
a policy: evaluated on held-out pairs, used as ``rm:RUN`` and never offered as a policy. Its memory is
not modelled yet."""

from __future__ import annotations

from rlhf_demo.algorithms import REWARD_MODEL, Algorithm
from rlhf_demo.reward_model.config import RewardConfig
from rlhf_demo.training.status import NAN, step_head


def status(cfg: RewardConfig, rec: dict, total: int) -> list[str]:
    """A step's headline: the Bradley–Terry loss, the pair accuracy and the margin of the batch."""
    return [
        step_head(rec, total, cfg.max_seconds)
        + f" · loss {rec.get('loss', NAN):.4f} · accuracy {rec.get('accuracy', NAN):.2f} · margin {rec.get('margin', NAN):+.3f}"
    ]


ALGORITHM = Algorithm(
    name="reward",
    label="Reward model",
    config=RewardConfig,
    trainer="rlhf_demo.reward_model.trainer:RewardTrainer",
    from_pairs=True,
    makes=REWARD_MODEL,
    what="a reward model (Bradley–Terry) trained on preference pairs",
    blurb="learn a score from preference pairs (Bradley–Terry), then use it as PPO's or GRPO's reward.",
    status=status,
    card_keys=("loss", "accuracy", "margin", "eval/accuracy", "eval/loss"),
    curves="rlhf_demo.plots.reward_model:REWARD_PANELS",
    symbol="triangle-up",
    panel="rlhf_demo.ui.training_reward",
)
