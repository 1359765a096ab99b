"""DPO as the shared code sees it (``rlhf_demo.algorithms``): its config and trainer, its status line,
the record keys its card and comparison show, its live plot, its panel and its memory model."""

from __future__ import annotations

from rlhf_demo.algorithms import Algorithm
from rlhf_demo.classroom.costs import logits_bytes
from rlhf_demo.classroom.limits import VOCAB
from rlhf_demo.dpo.config import DPOConfig
from rlhf_demo.training.status import NAN, step_head


def status(cfg: DPOConfig, rec: dict, total: int) -> list[str]:
    """A step's headline: the loss, the implicit-reward margin and the preference accuracy."""
    return [
        step_head(rec, total, cfg.max_seconds) + f" · loss {rec.get('loss', NAN):.4f} · margin {rec.get('rewards/margins', NAN):+.3f} · "
        f"accuracy {rec.get('rewards/accuracies', NAN):.2f}"
    ]


def peak_bytes(cfg: DPOConfig, vocab: int = VOCAB) -> float:
    """Bytes of DPO's largest tensors (float32): chosen and rejected rows (2·batch) of max_length
    logits, their log-softmax and gradients: 3 copies of 2·batch·max_length·V floats. (Measured on the
    tiny model: going from batch 4 × 32 tokens to 8 × 64 added 0.42 GB, this model 0.45 GB; the
    held-out evaluation adds a fixed ~0.6 GB, as in PPO.)"""
    return logits_bytes(2 * cfg.batch_size, cfg.max_length, 3, vocab)


ALGORITHM = Algorithm(
    name="dpo",
    label="DPO",
    config=DPOConfig,
    trainer="rlhf_demo.dpo.trainer:DPOTrainer",
    from_pairs=True,
    what="a policy fine-tuned with DPO from preference pairs",
    blurb="learn straight from preference pairs, no sampling during training.",
    status=status,
    card_keys=("loss", "rewards/margins", "rewards/accuracies", "eval/reward_mean", "eval/kl"),
    compare_keys=(("Loss", "loss"), ("Reward margin", "rewards/margins")),
    legacy_keys=(("eval/reward_mean", "reward_mean"), ("eval/kl", "kl")),  # DPO runs before the rename
    curves="rlhf_demo.plots.training:DPO_PANELS",
    peak_bytes=peak_bytes,
    peak_advice="batch_size × max_length",
    symbol="diamond",
    panel="rlhf_demo.ui.training_dpo",
    inspector="rlhf_demo.dpo.inspect:inspect",
)
